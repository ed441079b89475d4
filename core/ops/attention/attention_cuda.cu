// CUDA kernels of block-sparse attention (attention.h): simple and exact, one warp per
// (batch, head, row), f32 accumulation (f64 for f64), for every layout and dtype. The entry points
// at the end send what the tensor-core kernels cover (bf16/f16, head dim 64/128, single-segment
// layouts of 64 or 128 blocks in token order: flash.cuh) to attention_flash_*.cu instead.
//
// A warp owns one sequence position and walks every segment of the layout itself (the position's
// index in a permuted segment through q_index / k_index), so the segments' union needs no merge
// pass: the online softmax runs over all of them at once, which is what merging their
// log-sum-exps computes. Inside an entry the lanes test 32 keys (or queries) at a time against
// the entry's kind and mask bits; the allowed ones are visited through a ballot, each dot product
// a warp reduction over head-dimension slices (lane owns d = lane + 32 t).
//
// Backward recomputes P = exp(s - lse): dq per query row over its CSR entries, dk and dv per key
// row over the CSC lists, so every output row has one writer (no atomics, deterministic).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/types.cuh"
#include "core/ops.h"
#include "core/attention/residue_order.h"
#include "core/ops/attention/attention.h"
#include "core/ops/attention/device_layout.cuh"
#include "core/ops/attention/flash.cuh"
#include "core/ops/attention/topk.cuh"
#include "core/ops/attention/warp_row.cuh"

namespace sparta {
namespace cuda {
namespace {

using attn::BlockLayout;
using namespace warp_row;

constexpr int kWarps = 4;  // rows per thread block

}  // namespace

namespace {

std::shared_ptr<const DeviceLayout> upload(const BlockLayout& L, Device dev) {
  std::vector<const BlockLayout*> segs;
  for (const BlockLayout* s = &L; s; s = s->next.get()) segs.push_back(s);
  std::vector<char> host;
  auto put = [&](const auto& v) -> int64_t {  // byte offset, or -1 for an empty array
    if (v.empty()) return -1;
    const size_t at = (host.size() + 15) / 16 * 16, bytes = v.size() * sizeof(v[0]);
    host.resize(at + bytes);
    std::memcpy(host.data() + at, v.data(), bytes);
    return int64_t(at);
  };
  struct Offsets {
    int64_t row_ptr, col_idx, kind, col_ptr, row_idx, csc_entry, mask_offset, mask_bits, q_pos, k_pos, q_index, k_index,
        csc_kind, csc_moff;
  };
  std::vector<Offsets> offs;
  for (const BlockLayout* s : segs) {
    // The flash kernels pack a step's list fields in 32 bits: a block index times 8, a mask offset in words.
    SPARTA_CHECK(std::max(s->n_qblocks, s->n_kblocks) < (int64_t(1) << 29) && s->mask_bits.size() < (size_t(1) << 32),
                 "sparse_attention", "a layout too large for the GPU kernels: ", s->n_qblocks, " x ", s->n_kblocks,
                 " blocks, ", s->mask_bits.size(), " mask words");
    std::vector<uint8_t> csc_kind(s->csc_entry.size());
    std::vector<int64_t> csc_moff(s->csc_entry.size());
    for (size_t c = 0; c < s->csc_entry.size(); ++c) {
      csc_kind[c] = s->full[size_t(s->csc_entry[c])];
      csc_moff[c] = s->mask_offset[size_t(s->csc_entry[c])];
    }
    offs.push_back({put(s->row_ptr), put(s->col_idx), put(s->full), put(s->col_ptr), put(s->row_idx),
                    put(s->csc_entry), put(s->mask_offset), put(s->mask_bits), put(s->q_pos), put(s->k_pos),
                    put(s->q_index), put(s->k_index), put(csc_kind), put(csc_moff)});
  }
  const size_t table = (host.size() + 15) / 16 * 16;
  host.resize(table + segs.size() * sizeof(Segment));

  auto out = std::make_shared<DeviceLayout>();
  out->blob = Tensor::empty({int64_t(host.size())}, DType::u8, dev);
  char* base = static_cast<char*>(out->blob.data_ptr());
  for (size_t i = 0; i < segs.size(); ++i) {
    const BlockLayout& s = *segs[i];
    const Offsets& o = offs[i];
    auto at = [&](int64_t off) -> const void* { return off < 0 ? nullptr : base + off; };
    Segment d;
    d.seq_len = s.seq_len;
    d.block_q = s.block_q;
    d.block_k = s.block_k;
    d.n_qblocks = s.n_qblocks;
    d.n_kblocks = s.n_kblocks;
    d.n_keys = s.n_keys;
    d.n_layouts = s.n_layouts;
    d.max_col_entries = d.total_col_entries = 0;
    for (int h = 0; h < s.n_layouts; ++h)
      for (int64_t j = 0; j < s.n_kblocks; ++j) {
        const size_t at = size_t(h * (s.n_kblocks + 1) + j);
        d.max_col_entries = std::max(d.max_col_entries, s.col_ptr[at + 1] - s.col_ptr[at]);
      }
    if (!s.col_ptr.empty()) d.total_col_entries = s.col_ptr.back() - s.col_ptr.front();
    d.row_ptr = static_cast<const int64_t*>(at(o.row_ptr));
    d.col_idx = static_cast<const int32_t*>(at(o.col_idx));
    d.kind = static_cast<const uint8_t*>(at(o.kind));
    d.col_ptr = static_cast<const int64_t*>(at(o.col_ptr));
    d.row_idx = static_cast<const int32_t*>(at(o.row_idx));
    d.csc_entry = static_cast<const int64_t*>(at(o.csc_entry));
    d.mask_offset = static_cast<const int64_t*>(at(o.mask_offset));
    d.mask_bits = static_cast<const uint64_t*>(at(o.mask_bits));
    d.csc_kind = static_cast<const uint8_t*>(at(o.csc_kind));
    d.csc_moff = static_cast<const int64_t*>(at(o.csc_moff));
    d.q_pos = static_cast<const int64_t*>(at(o.q_pos));
    d.k_pos = static_cast<const int64_t*>(at(o.k_pos));
    d.q_index = static_cast<const int64_t*>(at(o.q_index));
    d.k_index = static_cast<const int64_t*>(at(o.k_index));
    d.residue_stride = attn::residue_stride(s);
    std::memcpy(host.data() + table + i * sizeof(Segment), &d, sizeof(Segment));
    out->host_segments.push_back(d);
  }
  // From pageable memory the copy has taken the bytes when it returns: host may go.
  SPARTA_CUDA_CHECK("sparse_attention",
                    cudaMemcpyAsync(base, host.data(), host.size(), cudaMemcpyHostToDevice, stream()));
  out->segments = reinterpret_cast<const Segment*>(base + table);
  out->n_segments = int(segs.size());
  return out;
}

// ---- forward ----------------------------------------------------------------------------------

// q, k, v, o: (B, H, N, D) contiguous; lse: (B, H, N). One warp per (b, h, query position).
// threshold: (B, H, N), top-k layouts only (else null): the first segment keeps only the scores
// >= the row's threshold (attention_topk_cuda.cu found it), as the CPU does. (Top-k layouts the
// tensor-core kernels take go to attention_topk_flash.cu instead.)
template <typename T, typename C, int DT>
__global__ void __launch_bounds__(kWarps * 32)
    forward_kernel(const Segment* segs, int n_segs, int64_t rows_total, int64_t H, int64_t N, int64_t D, C scale,
                   const T* q, const T* k, const T* v, const C* threshold, T* o, C* lse) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows_total) return;  // the whole warp
  const int64_t bh = row / N, pos = row % N, head = bh % H;
  const T* kb = k + bh * N * D;
  const T* vb = v + bh * N * D;
  C qr[DT], acc[DT];
  load_row<DT>(q + row * D, D, lane, qr);
#pragma unroll
  for (int t = 0; t < DT; ++t) acc[t] = 0;
  C m = neg_inf<C>(), l = 0;
  for (int si = 0; si < n_segs; ++si) {
    const Segment& s = segs[si];
    const int64_t p = s.q_index ? s.q_index[pos] : pos;
    if (p < 0) continue;
    const int64_t h = s.n_layouts == 1 ? 0 : head, i = p / s.block_q, r = p % s.block_q;
    const C row_thr = threshold && si == 0 ? threshold[row] : neg_inf<C>();
    for_each_run<true, DT>(s, h, i, r, pos, qr, kb, D, scale, lane, [&](bool ok, C sc, unsigned, int64_t kp) {
      // Top-k drops the scores below the threshold (written `!(<)` as on the CPU, so that a NaN
      // score is kept and shows).
      ok = ok && !(sc < row_thr);
      const unsigned kept = __ballot_sync(kFullMask, ok);
      if (kept == 0) return;
      if (!ok) sc = neg_inf<C>();
      // The online softmax: rescale what was accumulated when the running max grows.
      const C m_new = cmax(m, warp_max(sc));
      const C alpha = exp_c(m - m_new);
      const C pr = ok ? exp_c(sc - m_new) : C(0);
      l = l * alpha + warp_sum(pr);
      m = m_new;
#pragma unroll
      for (int t = 0; t < DT; ++t) acc[t] *= alpha;
      for (unsigned b = kept; b; b &= b - 1) {
        const int src = __ffs(b) - 1;
        const int64_t kpb = __shfl_sync(kFullMask, kp, src);
        const C pb = __shfl_sync(kFullMask, pr, src);
        const T* vr = vb + kpb * D;
#pragma unroll
        for (int t = 0; t < DT; ++t) {
          const int64_t d = lane + 32 * t;
          if (d < D) acc[t] += pb * convert<C>(vr[d]);
        }
      }
    });
  }
  // A row that sees no key: o = 0, lse = -inf (as on the CPU).
  store_row<DT>(o + row * D, D, lane, acc, l > 0 ? C(1) / l : C(0));
  if (lane == 0) lse[row] = l > 0 ? m + log_c(l) : neg_inf<C>();
}

// ---- backward ---------------------------------------------------------------------------------

// delta = rowsum(dO * O), the softmax backward's row term. One warp per row.
template <typename T, typename C, int DT>
__global__ void __launch_bounds__(kWarps * 32)
    delta_kernel(int64_t rows_total, int64_t D, const T* o, const T* dout, C* delta) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows_total) return;
  C dor[DT];
  load_row<DT>(dout + row * D, D, lane, dor);
  const C s = warp_sum(dot_part<DT>(dor, o + row * D, D, lane));
  if (lane == 0) delta[row] = s;
}

// dq_r = scale * sum_k P_rk (dO_r . v_k - delta_r) k_k over the row's entries. One warp per row.
template <typename T, typename C, int DT>
__global__ void __launch_bounds__(kWarps * 32)
    dq_kernel(const Segment* segs, int n_segs, int64_t rows_total, int64_t H, int64_t N, int64_t D, C scale,
              const T* q, const T* k, const T* v, const T* dout, const C* lse, const C* delta, const C* threshold,
              T* dq) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows_total) return;
  const int64_t bh = row / N, pos = row % N, head = bh % H;
  const T* kb = k + bh * N * D;
  const T* vb = v + bh * N * D;
  C qr[DT], dor[DT], acc[DT];
  load_row<DT>(q + row * D, D, lane, qr);
  load_row<DT>(dout + row * D, D, lane, dor);
#pragma unroll
  for (int t = 0; t < DT; ++t) acc[t] = 0;
  const C row_lse = lse[row], row_delta = delta[row];
  // A row that saw no key has P = 0 everywhere.
  for (int si = 0; si < n_segs && row_lse != neg_inf<C>(); ++si) {
    const Segment& s = segs[si];
    const int64_t p = s.q_index ? s.q_index[pos] : pos;
    if (p < 0) continue;
    const int64_t h = s.n_layouts == 1 ? 0 : head, i = p / s.block_q, r = p % s.block_q;
    // Top-k: the forward's threshold, saved, so that exactly the forward's scores pass.
    const C row_thr = threshold && si == 0 ? threshold[row] : neg_inf<C>();
    for_each_run<false, DT>(s, h, i, r, pos, qr, kb, D, scale, lane, [&](bool, C, unsigned ballot, int64_t kp) {
      for (unsigned b = ballot; b; b &= b - 1) {
        const int src = __ffs(b) - 1;
        const int64_t kpb = __shfl_sync(kFullMask, kp, src);
        const T* kr = kb + kpb * D;
        const C sc = score(dot_part<DT>(qr, kr, D, lane), scale);
        if (sc < row_thr) continue;  // the same value on every lane
        const C dp = warp_sum(dot_part<DT>(dor, vb + kpb * D, D, lane));
        const C pr = exp_c(sc - row_lse);
        const C ds = pr * (dp - row_delta) * scale;
#pragma unroll
        for (int t = 0; t < DT; ++t) {
          const int64_t d = lane + 32 * t;
          if (d < D) acc[t] += ds * convert<C>(kr[d]);
        }
      }
    });
  }
  store_row<DT>(dq + row * D, D, lane, acc, C(1));
}

// dv_k = sum_q P_qk dO_q and dk_k = scale * sum_q dS_qk q_q over the queries of the key's CSC
// entries, in every segment that holds the key. One warp per (b, h, key position).
template <typename T, typename C, int DT>
__global__ void __launch_bounds__(kWarps * 32)
    dkdv_kernel(const Segment* segs, int n_segs, int64_t rows_total, int64_t H, int64_t N, int64_t D, C scale,
                const T* q, const T* k, const T* v, const T* dout, const C* lse, const C* delta, const C* threshold,
                T* dk, T* dv) {
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= rows_total) return;
  const int64_t bh = row / N, pos = row % N, head = bh % H;
  const T* qb = q + bh * N * D;
  const T* ob = dout + bh * N * D;
  const C* lb = lse + bh * N;
  const C* db = delta + bh * N;
  const C* tb = threshold ? threshold + bh * N : nullptr;
  C kr[DT], vr[DT], gk[DT], gv[DT];
  load_row<DT>(k + row * D, D, lane, kr);
  load_row<DT>(v + row * D, D, lane, vr);
#pragma unroll
  for (int t = 0; t < DT; ++t) gk[t] = gv[t] = 0;
  for (int si = 0; si < n_segs; ++si) {
    const Segment& s = segs[si];
    const int64_t kidx = s.k_index ? s.k_index[pos] : pos;
    if (kidx < 0) continue;  // a key this segment does not gather
    const int64_t h = s.n_layouts == 1 ? 0 : head, j = kidx / s.block_k, c = kidx % s.block_k;
    const int64_t cols = imin(s.block_k, s.n_keys - j * s.block_k);
    const int64_t* cp = s.col_ptr + h * (s.n_kblocks + 1);
    for (int64_t x = cp[j]; x < cp[j + 1]; ++x) {
      const int64_t i = s.row_idx[x], e = s.csc_entry[x], q0 = i * s.block_q;
      const int64_t rows = imin(s.block_q, s.seq_len - q0);
      const uint8_t kind = s.kind[e];
      for (int64_t r0 = 0; r0 < rows; r0 += 32) {
        const int64_t r = r0 + lane;
        int64_t qp = 0;
        bool ok = false;
        C my_lse = 0, my_delta = 0, my_thr = neg_inf<C>();
        if (r < rows) {
          qp = s.q_pos ? s.q_pos[q0 + r] : q0 + r;
          ok = entry_allows(s, e, kind, r, c, cols, qp, pos);
          if (ok) {
            my_lse = lb[qp];
            my_delta = db[qp];
            if (tb && si == 0) my_thr = tb[qp];  // top-k: the first segment's saved threshold
            ok = my_lse != neg_inf<C>();
          }
        }
        for (unsigned b = __ballot_sync(kFullMask, ok); b; b &= b - 1) {
          const int src = __ffs(b) - 1;
          const int64_t qpb = __shfl_sync(kFullMask, qp, src);
          const C row_lse = __shfl_sync(kFullMask, my_lse, src), row_delta = __shfl_sync(kFullMask, my_delta, src);
          const C row_thr = __shfl_sync(kFullMask, my_thr, src);
          C qv[DT], dov[DT];
          load_row<DT>(qb + qpb * D, D, lane, qv);
          // The forward's score to the bit (Note [bit-identical scores]): q . k, q first.
          const C sc = score(dot_part<DT>(qv, kr, D, lane), scale);
          if (sc < row_thr) continue;  // the same value on every lane
          load_row<DT>(ob + qpb * D, D, lane, dov);
          const C pr = exp_c(sc - row_lse);
          const C ds = pr * (warp_sum(dot_part<DT>(dov, vr, D, lane)) - row_delta) * scale;
#pragma unroll
          for (int t = 0; t < DT; ++t) {
            gv[t] += pr * dov[t];
            gk[t] += ds * qv[t];
          }
        }
      }
    }
  }
  store_row<DT>(dk + row * D, D, lane, gk, C(1));
  store_row<DT>(dv + row * D, D, lane, gv, C(1));
}

// ---- launch -----------------------------------------------------------------------------------

struct Dims {
  int64_t B, H, N, D;
  int64_t rows() const { return B * H * N; }
  unsigned grid() const { return unsigned((rows() + kWarps - 1) / kWarps); }
};

Dims dims_of(const Tensor& q) { return {q.shape(0), q.shape(1), q.shape(2), q.shape(3)}; }

// Top-k layouts come with the per-row threshold (B, H, N) in the accumulation type, others without.
void check_top_k(const BlockLayout& L, const Tensor& lse, const Tensor& threshold, const char* op) {
  SPARTA_CHECK((L.top_k > 0) == threshold.defined(), op, "top_k = ", L.top_k, " but the threshold tensor is ",
               threshold.defined() ? "given" : "missing");
  if (!threshold.defined()) return;
  SPARTA_CHECK(threshold.dtype() == lse.dtype() && threshold.numel() == lse.numel() && threshold.is_contiguous() &&
                   threshold.device() == lse.device(),
               op, "the top-k threshold must be like lse: ", dtype_name(lse.dtype()), " ", shape_str(lse.shape()),
               " contiguous on ", lse.device().str(), ", got ", dtype_name(threshold.dtype()), " ",
               shape_str(threshold.shape()), " on ", threshold.device().str());
}

// Passes by kernel family (attention_kernel_counts).
struct Counts {
  std::atomic<int64_t> flash_forward{0}, flash_backward{0}, simple_forward{0}, simple_backward{0};
};
Counts g_counts;

}  // namespace

const char* attention_kernel_for(const attn::BlockLayout& L, const Tensor& q) {
  return flash::unsupported(L, q) ? "simple" : "flash";
}

AttentionKernelCounts attention_kernel_counts() {
  AttentionKernelCounts c;
  c.flash_forward = g_counts.flash_forward.load();
  c.flash_backward = g_counts.flash_backward.load();
  c.flash_backward_split = flash::split_backward_launches();
  c.flash_in_place = flash::in_place_launches();
  c.simple_forward = g_counts.simple_forward.load();
  c.simple_backward = g_counts.simple_backward.load();
  return c;
}

// The device copy of a layout, made on first use and kept while the layout object lives (entries
// of dead layouts are dropped at the next lookup). Never destroyed: device memory must not be
// freed after the CUDA runtime has shut down at exit.
std::shared_ptr<const DeviceLayout> device_layout(const LayoutPtr& L, Device dev) {
  struct Entry {
    std::weak_ptr<const BlockLayout> owner;
    const BlockLayout* key;
    int device;
    std::shared_ptr<const DeviceLayout> copy;
  };
  static std::mutex& mu = *new std::mutex;
  static std::vector<Entry>& cache = *new std::vector<Entry>;
  std::lock_guard<std::mutex> lock(mu);
  cache.erase(std::remove_if(cache.begin(), cache.end(), [](const Entry& e) { return e.owner.expired(); }),
              cache.end());
  for (const Entry& e : cache)
    if (e.key == L.get() && e.device == dev.index) return e.copy;
  cache.push_back({L, L.get(), dev.index, upload(*L, dev)});
  return cache.back().copy;
}

void sparse_attention_forward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                              const Tensor& o, const Tensor& lse, const Tensor& threshold, Tensor* selection) {
  const char* op = "sparse_attention";
  check_top_k(*L, lse, threshold, op);
  const Dims dm = dims_of(q);
  if (dm.rows() == 0) return;
  const auto dl = device_layout(L, q.device());
  if (!flash::unsupported(*L, q, scale, {&k, &v, &o})) {
    if (threshold.defined()) {
      const Tensor kept = topk::flash_forward(L, scale, q, k, v, o, lse, threshold);
      if (selection) *selection = kept;
    } else {
      flash::forward_layout(*dl, scale, q, k, v, o, lse);
    }
    ++g_counts.flash_forward;
    return;
  }
  ++g_counts.simple_forward;
  // Top-k (the tensor-core kernels refuse it): each row's threshold first, from the first segment.
  if (threshold.defined()) topk::thresholds(*L, dl->host_segments[0], scale, q, k, threshold);
  dispatch_slices(dm.D, op, [&](auto slices) {
    constexpr int DT = decltype(slices)::value;
    SPARTA_CUDA_DISPATCH_FLOAT(q.dtype(), op, [&] {
      using T = scalar_t;
      using C = acc_t<T>;
      forward_kernel<T, C, DT><<<dm.grid(), kWarps * 32, 0, stream()>>>(
          dl->segments, dl->n_segments, dm.rows(), dm.H, dm.N, dm.D, C(scale), static_cast<const T*>(q.data_ptr()),
          static_cast<const T*>(k.data_ptr()), static_cast<const T*>(v.data_ptr()),
          threshold.defined() ? static_cast<const C*>(threshold.data_ptr()) : nullptr, static_cast<T*>(o.data_ptr()),
          static_cast<C*>(lse.data_ptr()));
      SPARTA_CUDA_LAUNCH_CHECK(op);
    });
  });
}

void sparse_attention_backward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                               const Tensor& o, const Tensor& lse, const Tensor& threshold, const Tensor& dout,
                               const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& selection) {
  const char* op = "sparse_attention_backward";
  check_top_k(*L, lse, threshold, op);
  const Dims dm = dims_of(q);
  if (dm.rows() == 0) return;
  const auto dl = device_layout(L, q.device());
  Tensor delta = Tensor::empty({dm.rows()}, lse.dtype(), q.device());
  const bool use_flash = !flash::unsupported(*L, q, scale, {&k, &v, &o, &dout});
  ++(use_flash ? g_counts.flash_backward : g_counts.simple_backward);
  if (use_flash && threshold.defined()) {
    return topk::flash_backward(L, scale, q, k, v, o, lse, threshold, dout, delta, dq, dk, dv, selection);
  }
  dispatch_slices(dm.D, op, [&](auto slices) {
    constexpr int DT = decltype(slices)::value;
    SPARTA_CUDA_DISPATCH_FLOAT(q.dtype(), op, [&] {
      using T = scalar_t;
      using C = acc_t<T>;
      const T *qp = static_cast<const T*>(q.data_ptr()), *kp = static_cast<const T*>(k.data_ptr()),
              *vp = static_cast<const T*>(v.data_ptr()), *op_ = static_cast<const T*>(o.data_ptr()),
              *dop = static_cast<const T*>(dout.data_ptr());
      const C* lp = static_cast<const C*>(lse.data_ptr());
      C* delta_p = static_cast<C*>(delta.data_ptr());
      const C* thr_p = threshold.defined() ? static_cast<const C*>(threshold.data_ptr()) : nullptr;
      if (use_flash) {
        const Tensor sums = flash::backward_dq_sums(q);
        const Tensor lse2 = flash::row_terms(o, dout, lse, delta, sums);
        flash::backward_layout(*dl, scale, q, k, v, lse, delta, dout, dq, dk, dv, lse2, sums);
        return;
      }
      delta_kernel<T, C, DT><<<dm.grid(), kWarps * 32, 0, stream()>>>(dm.rows(), dm.D, op_, dop, delta_p);
      SPARTA_CUDA_LAUNCH_CHECK(op);
      dq_kernel<T, C, DT><<<dm.grid(), kWarps * 32, 0, stream()>>>(dl->segments, dl->n_segments, dm.rows(), dm.H,
                                                                   dm.N, dm.D, C(scale), qp, kp, vp, dop, lp,
                                                                   delta_p, thr_p, static_cast<T*>(dq.data_ptr()));
      SPARTA_CUDA_LAUNCH_CHECK(op);
      dkdv_kernel<T, C, DT><<<dm.grid(), kWarps * 32, 0, stream()>>>(
          dl->segments, dl->n_segments, dm.rows(), dm.H, dm.N, dm.D, C(scale), qp, kp, vp, dop, lp, delta_p, thr_p,
          static_cast<T*>(dk.data_ptr()), static_cast<T*>(dv.data_ptr()));
      SPARTA_CUDA_LAUNCH_CHECK(op);
    });
  });
}

}  // namespace cuda

// ---- primitives -------------------------------------------------------------------------------
Tensors SparseAttention::eval_cuda(const Tensors& in) {
  const Tensor q = contiguous(in[0].detach()), k = contiguous(in[1].detach()), v = contiguous(in[2].detach());
  const Shape rows(q.shape().begin(), q.shape().end() - 1);
  Tensor o = Tensor::empty(q.shape(), q.dtype(), q.device());
  Tensor lse = Tensor::empty(rows, accumulation_dtype(q.dtype()), q.device());
  Tensor threshold = layout_->top_k > 0 ? Tensor::empty(rows, lse.dtype(), q.device()) : Tensor(), selection;
  cuda::sparse_attention_forward(layout_, scale_, q, k, v, o, lse, threshold, &selection);
  if (selection.defined()) return {o, lse, threshold, selection};
  if (threshold.defined()) return {o, lse, threshold};
  return {o, lse};
}

Tensors SparseAttentionBackward::eval_cuda(const Tensors& in) {
  Tensors c;
  for (const Tensor& t : in) c.push_back(contiguous(t.detach()));
  const Device dev = c[0].device();
  Tensor dq = Tensor::empty(c[0].shape(), c[0].dtype(), dev), dk = Tensor::empty(c[1].shape(), c[1].dtype(), dev),
         dv = Tensor::empty(c[2].shape(), c[2].dtype(), dev);
  const Tensor threshold = c.size() > 6 ? c[6] : Tensor(), selection = c.size() > 7 ? c[7] : Tensor();
  cuda::sparse_attention_backward(layout_, scale_, c[0], c[1], c[2], c[3], c[4], threshold, cast(c[5], c[0].dtype()),
                                  dq, dk, dv, selection);
  return {dq, dk, dv};
}

}  // namespace sparta
