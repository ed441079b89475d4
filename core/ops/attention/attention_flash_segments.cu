// A whole BlockLayout through the tensor-core kernels, one segment at a time (flash.cuh).
//
// A segment in token order runs on q, k, v as they are. A permuted segment (strided attention's
// residue classes, where "every l-th token back" becomes block-dense causal attention) runs on
// copies of q, k, v gathered into its order; a segment of gathered keys (fixed attention's summary
// cells) on copies of just those keys. So every segment is block-dense work for the kernels,
// which never see a permutation except through the positions of causal diagonal tiles. At head
// dim 64 on wgmma the residue classes are read in place instead (reads_in_place: the kernels map
// each row through the permutation's closed form, and write or add their results in token order),
// and strided attention's forward merges the token-order segment's result into theirs in its
// epilogue (forward_merged), so it runs no copies, scatter-adds or merge pass.
//
// The segments cover disjoint sets of pairs, so the softmax over their union is the merge of the
// per-segment results through their log-sum-exps (as in split-KV decoding):
//   lse = log sum_s exp(lse_s),   o = sum_s exp(lse_s - lse) o_s.
// Backward needs no merge: with the union's lse and delta = rowsum(dO * O), each segment's
// P = exp(S - lse) is already the union's probability, so the segments' dq, dk, dv are added in
// token order, segment after segment (one writer per row per pass: deterministic). The fused
// (default) backward lets the segments whose queries are in token order add dq into one f32
// buffer, and the forward walks a plain segment and one over gathered keys (fixed attention) in
// one kernel, whose online softmax covers both (no merge).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/types.cuh"
#include "core/determinism.h"
#include "core/ops/attention/flash.cuh"

namespace sparta::cuda::flash {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxSegments = 8;

unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

// dst[bh, r] = src[bh, pos[r]] for r < dst_rows, in 16-byte chunks (`chunks` per row); with src2,
// dst2 (threads total .. 2 total - 1) the same rows of a second matrix (k and v in one launch).
__global__ void gather_rows_kernel(const uint4* src, uint4* dst, const uint4* src2, uint4* dst2, const int64_t* pos,
                                   int64_t total, int64_t src_rows, int64_t dst_rows, int chunks) {
  int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= total) {
    if (!src2 || x >= 2 * total) return;
    x -= total;
    src = src2;
    dst = dst2;
  }
  const int64_t c = x % chunks, r = (x / chunks) % dst_rows, bh = x / chunks / dst_rows;
  dst[x] = src[(bh * src_rows + pos[r]) * chunks + c];
}

// dst[bh, r] = src[bh, pos[r]] for one f32 per row (lse, delta).
__global__ void gather_f32_kernel(const float* src, float* dst, const int64_t* pos, int64_t total, int64_t src_rows,
                                  int64_t dst_rows) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= total) return;
  const int64_t r = x % dst_rows, bh = x / dst_rows;
  dst[x] = src[bh * src_rows + pos[r]];
}

// dst[bh, pos[r]] += src[bh, r] (pos null: r), 8 elements a thread, summed in f32. pos is injective,
// so every destination element has one writer.
template <typename T>
__global__ void add_rows_kernel(const T* src, T* dst, const int64_t* pos, int64_t total, int64_t src_rows,
                                int64_t dst_rows, int chunks) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= total) return;
  const int64_t c = x % chunks, r = (x / chunks) % src_rows, bh = x / chunks / src_rows;
  const int64_t to = (bh * dst_rows + (pos ? pos[r] : r)) * chunks + c;
  const uint4 a = reinterpret_cast<const uint4*>(src)[x];
  uint4& b = reinterpret_cast<uint4*>(dst)[to];
  const T* av = reinterpret_cast<const T*>(&a);
  uint4 sum = b;
  T* sv = reinterpret_cast<T*>(&sum);
#pragma unroll
  for (int i = 0; i < 8; ++i) sv[i] = convert<T>(convert<float>(sv[i]) + convert<float>(av[i]));
  b = sum;
}

struct MergeArgs {
  int n;
  const void* o[kMaxSegments];
  const float* lse[kMaxSegments];
  const int64_t* q_index[kMaxSegments];  // token -> the segment's row (null: identity; -1: absent)
  int64_t rows[kMaxSegments];
};

// o[bh, t] = sum_s exp(lse_s - lse) o_s[bh, q_index_s[t]], 8 elements a thread; the thread of a
// row's first chunk also writes lse[bh, t].
template <typename T>
__global__ void merge_kernel(const MergeArgs a, T* o, float* lse, int64_t total, int64_t N, int chunks) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (x >= total) return;
  const int64_t c = x % chunks, t = (x / chunks) % N, bh = x / chunks / N;
  int64_t row[kMaxSegments];
  float l[kMaxSegments], mx = -INFINITY;
  for (int s = 0; s < a.n; ++s) {
    row[s] = a.q_index[s] ? a.q_index[s][t] : t;
    l[s] = row[s] < 0 ? -INFINITY : a.lse[s][bh * a.rows[s] + row[s]];
    mx = fmaxf(mx, l[s]);
  }
  float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f}, total_w = 0.f;
  if (mx != -INFINITY) {
    for (int s = 0; s < a.n; ++s) {
      if (l[s] == -INFINITY) continue;
      const float w = __expf(l[s] - mx);
      total_w += w;
      const uint4 v = reinterpret_cast<const uint4*>(a.o[s])[(bh * a.rows[s] + row[s]) * chunks + c];
      const T* e = reinterpret_cast<const T*>(&v);
#pragma unroll
      for (int i = 0; i < 8; ++i) acc[i] += w * convert<float>(e[i]);
    }
  }
  const float inv = total_w > 0.f ? 1.f / total_w : 0.f;
  uint4 out;
  T* ov = reinterpret_cast<T*>(&out);
#pragma unroll
  for (int i = 0; i < 8; ++i) ov[i] = convert<T>(acc[i] * inv);
  reinterpret_cast<uint4*>(o)[x] = out;
  if (c == 0) lse[bh * N + t] = total_w > 0.f ? mx + logf(total_w) : -INFINITY;
}

int64_t bh_of(const Tensor& t) { return t.shape(0) * t.shape(1); }

// x's rows in the order `pos` gives (rows of them); x itself when pos is null. With x2 (of x's
// shape), its rows too, into *y2, in the same launch.
Tensor gather_rows(const Tensor& x, const int64_t* pos, int64_t rows, const char* op, const Tensor* x2 = nullptr,
                   Tensor* y2 = nullptr) {
  if (!pos) {
    if (x2) *y2 = *x2;
    return x;
  }
  auto like = [&](const Tensor& t) { return Tensor::empty({t.shape(0), t.shape(1), rows, t.shape(3)}, t.dtype(), t.device()); };
  Tensor y = like(x);
  if (x2) *y2 = like(*x2);
  const int chunks = int(x.shape(3) * dtype_size(x.dtype()) / 16);
  const int64_t total = bh_of(x) * rows * chunks;
  if (total == 0) return y;
  gather_rows_kernel<<<blocks_for(x2 ? 2 * total : total), kThreads, 0, stream()>>>(
      static_cast<const uint4*>(x.data_ptr()), static_cast<uint4*>(y.data_ptr()),
      x2 ? static_cast<const uint4*>(x2->data_ptr()) : nullptr, x2 ? static_cast<uint4*>(y2->data_ptr()) : nullptr, pos,
      total, x.shape(2), rows, chunks);
  SPARTA_CUDA_LAUNCH_CHECK(op);
  return y;
}

// x: one f32 per row of q (B, H, N), of any shape (lse is (B, H, N), delta flat).
Tensor gather_f32(const Tensor& x, const Tensor& q, const int64_t* pos, int64_t rows, const char* op) {
  if (!pos) return x;
  Tensor y = Tensor::empty({q.shape(0), q.shape(1), rows}, x.dtype(), x.device());
  const int64_t total = bh_of(q) * rows;
  if (total == 0) return y;
  gather_f32_kernel<<<blocks_for(total), kThreads, 0, stream()>>>(
      static_cast<const float*>(x.data_ptr()), static_cast<float*>(y.data_ptr()), pos, total, q.shape(2), rows);
  SPARTA_CUDA_LAUNCH_CHECK(op);
  return y;
}

void add_rows(const Tensor& src, const Tensor& dst, const int64_t* pos, const char* op) {
  const int chunks = int(src.shape(3) / 8);
  const int64_t total = bh_of(src) * src.shape(2) * chunks;
  if (total == 0) return;
  by_dtype(src.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    add_rows_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(static_cast<const T*>(src.data_ptr()),
                                                                     static_cast<T*>(dst.data_ptr()), pos, total,
                                                                     src.shape(2), dst.shape(2), chunks);
  });
  SPARTA_CUDA_LAUNCH_CHECK(op);
}

// A segment's query rows (its seq_len) and its q and k orders as device pointers (null: identity).
struct Order {
  const int64_t *q_pos, *k_pos;
  int64_t q_rows, k_rows;
};
Order order_of(const Segment& s) { return {s.q_pos, s.k_pos, s.seq_len, s.n_keys}; }

}  // namespace

bool is_plain(const Segment& s, int64_t N) { return !s.q_pos && !s.k_pos && s.seq_len == N && s.n_keys == N; }

// Whether s2 can continue the rows of a plain first segment s in one forward walk: queries in token
// order over the same blocks.
bool pairs_with_first(const Segment& s, const Segment& s2) {
  return !s2.q_pos && s2.seq_len == s.seq_len && s2.block_q == s.block_q;
}

int max_segments() { return kMaxSegments; }

void forward_layout(const DeviceLayout& dl, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& o, const Tensor& lse) {
  const char* op = "sparse_attention";
  const int64_t N = q.shape(2);
  if (dl.n_segments == 1 && is_plain(dl.host_segments[0], N)) return forward(dl.host_segments[0], scale, q, k, v, o, lse);
  if (dl.n_segments == 2 && is_plain(dl.host_segments[0], N) && pairs_with_first(dl.host_segments[0], dl.host_segments[1])) {
    // One walk over both rows (fixed attention: the block's own keys, then the summary keys).
    const Segment& s2 = dl.host_segments[1];
    Tensor v2;
    const Tensor k2 = gather_rows(k, s2.k_pos, s2.n_keys, op, &v, &v2);
    return forward_pair(dl.host_segments[0], &s2, scale, q, k, v, k2, v2, o, lse);
  }
  if (dl.n_segments == 2 && is_plain(dl.host_segments[0], N) && reads_in_place(dl.host_segments[1], q)) {
    // Strided attention: the residue classes' result, written in token order, then the token-order
    // segment's merged into it in its epilogue (no merge pass).
    forward_in_place(dl.host_segments[1], scale, q, k, v, o, lse);
    return forward_merged(dl.host_segments[0], scale, q, k, v, o, lse);
  }
  SPARTA_CHECK(dl.n_segments <= kMaxSegments, op, "a layout of ", dl.n_segments, " segments (at most ", kMaxSegments,
               ")");
  std::vector<Tensor> outs, lses;  // kept alive until the merge has been queued
  MergeArgs a{};
  a.n = dl.n_segments;
  for (int i = 0; i < dl.n_segments; ++i) {
    const Segment& s = dl.host_segments[size_t(i)];
    const Order ord = order_of(s);
    outs.push_back(Tensor::empty({q.shape(0), q.shape(1), ord.q_rows, q.shape(3)}, q.dtype(), q.device()));
    lses.push_back(Tensor::empty({q.shape(0), q.shape(1), ord.q_rows}, DType::f32, q.device()));
    const bool in_place = reads_in_place(s, q);  // its o and lse come in token order
    if (in_place) {
      forward_in_place(s, scale, q, k, v, outs.back(), lses.back());
    } else {
      const Tensor qs = gather_rows(q, ord.q_pos, ord.q_rows, op);
      Tensor vs;
      const Tensor ks = gather_rows(k, ord.k_pos, ord.k_rows, op, &v, &vs);
      forward(s, scale, qs, ks, vs, outs.back(), lses.back());
    }
    a.o[i] = outs.back().data_ptr();
    a.lse[i] = static_cast<const float*>(lses.back().data_ptr());
    a.q_index[i] = in_place ? nullptr : s.q_index;
    a.rows[i] = ord.q_rows;
  }
  const int chunks = int(q.shape(3) / 8);
  const int64_t total = bh_of(q) * N * chunks;
  if (total == 0) return;
  by_dtype(q.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    merge_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(a, static_cast<T*>(o.data_ptr()),
                                                                  static_cast<float*>(lse.data_ptr()), total, N, chunks);
  });
  SPARTA_CUDA_LAUNCH_CHECK(op);
}

void backward_layout(const DeviceLayout& dl, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& lse, const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                     const Tensor& dv, const Tensor& lse2, const Tensor& zeroed_sums) {
  const char* op = "sparse_attention_backward";
  const int64_t N = q.shape(2);
  // The first segment writes the gradients when it is in token order over every key; otherwise
  // every segment adds into zeros.
  const bool first_writes = is_plain(dl.host_segments[0], N);
  if (!first_writes) {
    for (const Tensor* g : {&dq, &dk, &dv})
      SPARTA_CUDA_CHECK(op, cudaMemsetAsync(g->data_ptr(), 0, size_t(g->numel()) * dtype_size(g->dtype()), stream()));
  }
  // The fused backward: segments with queries in token order add their dq into one f32 buffer,
  // rounded into dq once (no per-segment dq copy to add), before the other segments add theirs.
  const bool fused = !deterministic_algorithms();
  auto in_order = [&](const Segment& s) { return fused && !s.q_pos && s.seq_len == N; };
  Tensor sums;
  if (fused) sums = zeroed_sums.defined() ? zeroed_sums : dq_sums(q);
  for (int i = 0; i < dl.n_segments; ++i) {
    const Segment& s = dl.host_segments[size_t(i)];
    if (!in_order(s)) continue;
    if (i == 0 && first_writes) {
      backward(s, scale, q, k, v, lse, delta, dout, dq, dk, dv, lse2, sums);
      continue;
    }
    // Keys gathered in the segment's order (fixed attention's summary keys): their dk, dv are
    // added into the rows they came from by the backward itself.
    Tensor vs;
    const Tensor ks = gather_rows(k, s.k_pos, s.n_keys, op, &v, &vs);
    backward(s, scale, q, ks, vs, lse, delta, dout, dq, dk, dv, lse2, sums, s.k_pos);
  }
  if (fused) round_dq_sums(sums, scale, dq);
  for (int i = 0; i < dl.n_segments; ++i) {
    const Segment& s = dl.host_segments[size_t(i)];
    if (in_order(s)) continue;
    if (i == 0 && first_writes) {
      backward(s, scale, q, k, v, lse, delta, dout, dq, dk, dv, lse2);
      continue;
    }
    if (fused && reads_in_place(s, q)) {  // no gathered copies, no scatter-adds
      backward_in_place(s, scale, q, k, v, lse, delta, dout, dq, dk, dv, lse2);
      continue;
    }
    const Order ord = order_of(s);
    const Tensor qs = gather_rows(q, ord.q_pos, ord.q_rows, op), dos = gather_rows(dout, ord.q_pos, ord.q_rows, op);
    const Tensor ls = gather_f32(lse, q, ord.q_pos, ord.q_rows, op), ds = gather_f32(delta, q, ord.q_pos, ord.q_rows, op);
    Tensor vs;
    const Tensor ks = gather_rows(k, ord.k_pos, ord.k_rows, op, &v, &vs);
    Tensor gq = Tensor::empty(qs.shape(), q.dtype(), q.device());
    Tensor gk = Tensor::empty(ks.shape(), k.dtype(), k.device()), gv = Tensor::empty(vs.shape(), v.dtype(), v.device());
    backward(s, scale, qs, ks, vs, ls, ds, dos, gq, gk, gv);
    add_rows(gq, dq, ord.q_pos, op);
    add_rows(gk, dk, ord.k_pos, op);
    add_rows(gv, dv, ord.k_pos, op);
  }
}

}  // namespace sparta::cuda::flash
