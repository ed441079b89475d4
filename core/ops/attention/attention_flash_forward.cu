// The tensor-core forward of block-sparse attention: one CTA per (batch, head, 64-query tile)
// over the tile's CSR row(s), and unsupported(), which decides whether these kernels run. The
// kernel family: flash_kernels.cuh.
#include <atomic>
#include <cstring>

#include "core/ops/attention/flash_kernels.cuh"
#include "core/ops/attention/topk.cuh"

namespace sparta::cuda::flash {
namespace {

// ---- forward ----------------------------------------------------------------------------------

template <typename T, int D, bool kWg>
constexpr size_t forward_smem() {
  return size_t(5 * kTile * kStride<D, kWg>) * sizeof(T) + 2 * kTile * sizeof(uint64_t) + (kWg ? 1024 : 0);
}

// q, k, v, o: (B, H, N, D); lse: (B, H, N). Grid: B * H * ceil(N / 64) CTAs of 128 threads.
// kWg: the products on wgmma (sm_90a), Q read from shared memory at every step; at D = 128 each
// tile is two 64-column halves (TileLoader), S sums its 8 k-steps over both and O is two 64 x 64
// accumulators, one per half of V (2 CTAs per SM: 82 KB of shared memory each). kGather:
// a residue-class segment on q, k, v in token order, its rows read through p.map (o, lse are
// written in token order through it). kMerge: o and lse hold another segment's result for every row
// (a residue-class segment's, written first), which the epilogue merges this one's into.
template <typename T, int D, bool kWg, bool kGather = false, bool kMerge = false>
// (The row map's arithmetic needs registers: kGather runs 4 CTAs per SM, where 5 spilled 136 bytes.)
__global__ void __launch_bounds__(kThreads, kWg ? (D == 128 ? 2 : kGather ? 4 : 5) : (D == 64 ? 3 : 2))
    forward_kernel(const Params p) {
  constexpr int S = kStride<D, kWg>, KS = D / 16, kHalves = D / 64;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = kWg ? align_1024(smem_raw) : smem_raw;
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kTile * S;      // [2][64][S]
  T* sV = sK + 2 * kTile * S;  // [2][64][S]
  uint64_t* sMask = reinterpret_cast<uint64_t*>(sV + 2 * kTile * S);  // [2][64]

  const Segment& s = p.s;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  // Launched the ordinary way (all before it is done), except kMerge, whose main loop may overlap
  // the segment before it and which waits for it at the epilogue.
  if constexpr (!kMerge) let_dependents_start();
  const TileLoader<D, kWg> load(tid);
  const QueryTile qt(s, p.H, p.N);
  const int64_t base = qt.bh * p.N * D, kbase = qt.bh * p.Nk * D;
  const T* q = static_cast<const T*>(p.q) + base;
  // Q first: its load needs no block list, so it overlaps the list's reads below.
  if constexpr (kGather) {
    load(sQ, q, p.map, qt.qt0, qt.q_len);
  } else {
    load(sQ, q + qt.qt0 * D, qt.q_len, q);
  }
  cp_async_commit();
  const int64_t* rp = row_ptr_of(s, qt.head);
  const int64_t first = rp[qt.i], n1 = (rp[qt.i + 1] - first) * (s.block_k / kTile);
  int64_t first2 = 0, n_steps = n1;  // steps n1 .. n_steps - 1 walk the second segment's row
  if (p.has_s2) {
    const int64_t* rp2 = row_ptr_of(p.s2, qt.head);
    first2 = rp2[qt.i];
    n_steps += (rp2[qt.i + 1] - first2) * (p.s2.block_k / kTile);
  }
  const T* k = static_cast<const T*>(p.k) + kbase;
  const T* v = static_cast<const T*>(p.v) + kbase;
  const T* k2 = p.has_s2 ? static_cast<const T*>(p.k2) + qt.bh * p.Nk2 * D : k;
  const T* v2 = p.has_s2 ? static_cast<const T*>(p.v2) + qt.bh * p.Nk2 * D : v;
  T* o = static_cast<T*>(p.o) + base;
  float* lse = p.lse_out + qt.bh * p.N;
  const int r0 = w * 16 + (lane >> 2), c0 = 2 * (lane & 3);  // this thread's rows r0, r0 + 8
  // Step x: entry x / (block_k / 64) of the row (then of the second segment's), key tile x % that
  // of its block. The fields of 32 steps at a time are read together, lane l of each warp holding
  // step base + l's (key block * 8 + segment * 4 + kind, mask offset in words), and a step takes
  // its own by shuffles (read step by step, the loads stalled each step's prefetch).
  uint32_t lane_jk = 0, lane_mword = 0;
  auto read_fields = [&](int64_t base) {
    if constexpr (kMerge) return;
    const int64_t x = base + lane;
    if (x < n_steps) {
      const bool two = x >= n1;  // (fields picked one by one: a reference to either segment copied it)
      const int64_t e = two ? first2 + ((x - n1) >> (p.s2.block_k == 2 * kTile ? 1 : 0))
                            : first + (x >> (s.block_k == 2 * kTile ? 1 : 0));
      lane_jk = uint32_t((two ? p.s2.col_idx : s.col_idx)[e]) * 8u + (two ? 4u : 0u) + (two ? p.s2.kind : s.kind)[e];
      lane_mword = uint32_t((two ? p.s2.mask_offset : s.mask_offset)[e] >> 6);
    }
  };
  auto step = [&](int64_t x) {  // (its fields read: x is in the lanes' batch)
    if constexpr (kMerge) return qt.step(s, first, x);  // (its own reads: the lanes' made it spill 84 bytes)
    const int src = int(x & 31);
    const uint32_t jk = __shfl_sync(0xffffffffu, lane_jk, src);
    const bool two = jk & 4u;
    const int64_t xs = two ? x - n1 : x, bk = two ? p.s2.block_k : s.block_k, nk = two ? p.s2.n_keys : s.n_keys;
    Step st;
    st.e = -1;  // (not needed)
    st.i = qt.i;
    st.j = jk >> 3;
    st.qt0 = qt.qt0;
    st.q_len = qt.q_len;
    st.kt0 = st.j * bk + (bk == 2 * kTile ? (xs & 1) : 0) * kTile;
    st.kv_len = clamp_len(min((st.j + 1) * bk, nk) - st.kt0);
    st.kind = int(jk & 3u);
    st.seg = two;
    st.moff = int64_t(__shfl_sync(0xffffffffu, lane_mword, src)) << 6;  // (unread unless partial)
    return st;
  };

  if (n_steps == 0) {  // a query block that sees no key: o = 0, lse = -inf (as on the CPU)
    for (int h = 0; h < 2 && !kMerge; ++h) {  // (kMerge: o and lse hold the prior result already)
      const int r = r0 + 8 * h;
      if (r >= qt.q_len) continue;
      const int64_t row = kGather ? p.map(qt.qt0 + r) : qt.qt0 + r;  // (kGather: its token)
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) *reinterpret_cast<uint32_t*>(o + row * D + nt * 8 + c0) = 0;
      if ((lane & 3) == 0) lse[row] = -INFINITY;
    }
    cp_async_wait<0>();  // Q's copy lands before the CTA's shared memory goes
    return;
  }

  auto prefetch = [&](const Step& st, int buf) -> uint64_t {
    const T* kk = st.seg ? k2 : k;
    const T* vv = st.seg ? v2 : v;
    if constexpr (kGather) {
      load(sK + buf * kTile * S, kk, sV + buf * kTile * S, vv, p.map, st.kt0, st.kv_len);
    } else {
      load(sK + buf * kTile * S, kk + st.kt0 * D, st.kv_len, kk);
      load(sV + buf * kTile * S, vv + st.kt0 * D, st.kv_len, vv);
    }
    cp_async_commit();
    return st.masked() && tid < kTile ? mask_word(st.seg ? p.s2 : s, st, tid) : uint64_t(0);
  };

  read_fields(0);
  Step cur = step(0);
  const uint64_t word0 = prefetch(cur, 0);
  if (tid < kTile) sMask[tid] = word0;
  cp_async_wait<1>();  // Q has landed (step 0 may still be in flight)
  __syncthreads();
  uint32_t qa[kWg ? 1 : KS][4];  // wgmma reads Q from shared memory instead
  // wgmma descriptors, computed once: a step adds whole tiles and 16-column or 16-row offsets.
  const uint64_t dQ = kWg ? wg_desc(smem_u32(sQ)) : 0, dK0 = kWg ? wg_desc(smem_u32(sK)) : 0,
                 dV0 = kWg ? wg_desc(smem_u32(sV)) : 0;
  if constexpr (!kWg) {
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) load_a<S>(qa[ks], sQ, w, ks, lane);
  }

  float acc[D / 8][4];
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};  // running max (raw scores) and partial sums

  for (int64_t x = 0; x < n_steps; ++x) {
    const int buf = int(x & 1);
    Step next = cur;
    uint64_t next_word = 0;  // the next step's mask word: its loads overlap this step's products
    if (x + 1 < n_steps) {
      if (((x + 1) & 31) == 0) read_fields(x + 1);
      next = step(x + 1);
      next_word = prefetch(next, buf ^ 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    if constexpr (kWg) fence_proxy_async();
    __syncthreads();
    const T* tK = sK + buf * kTile * S;
    const T* tV = sV + buf * kTile * S;

    // S = Q K^T: 16 x 64 per warp, eight n-tiles of 8 keys.
    float sc[8][4];  // wgmma's first product overwrites it (kZero)
    if constexpr (!kWg) {
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) sc[nt][0] = sc[nt][1] = sc[nt][2] = sc[nt][3] = 0.f;
    }
    if constexpr (kWg) {
      const uint64_t dK = dK0 + buf * kHalves * kDescTile;
      wg_fence();
      wg_mma_ss<T, 0, 0, true>(sc, dQ, dK);
#pragma unroll
      for (int ks = 1; ks < KS; ++ks) wg_mma_ss<T, 0, 0>(sc, dQ + k_step(ks), dK + k_step(ks));
      wg_commit();
      wg_wait<0>();
    } else {
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          load_b<S>(b, tK, np, ks, lane);
          mma<T>(sc[2 * np], qa[ks], b[0], b[1]);
          mma<T>(sc[2 * np + 1], qa[ks], b[2], b[3]);
        }
      }
    }
    // Mask the raw scores. The scale folds into the exponent's multiply-add below (its max is
    // the raw scores' max because the scale is positive: unsupported() sends other scales away).
    if (cur.masked()) {
      const uint64_t w0 = sMask[buf * kTile + r0] >> c0, w1 = sMask[buf * kTile + r0 + 8] >> c0;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int x2 = 0; x2 < 2; ++x2) {
          if (!((w0 >> (nt * 8 + x2)) & 1u)) sc[nt][x2] = -INFINITY;
          if (!((w1 >> (nt * 8 + x2)) & 1u)) sc[nt][2 + x2] = -INFINITY;
        }
    }
    // The online softmax: when a row's running max grows, what was accumulated is rescaled by
    // alpha = 2^((m_old - m_new) scale log2 e). A row with nothing allowed yet keeps m = -inf; its
    // exponents subtract 0 instead (-inf - -inf would be NaN), and its p and alpha are 0 (acc and l
    // are 0 anyway). Once the max settles (most steps of a long row) alpha is 1 in every row of
    // the warp and the rescale is skipped.
    float m_sub[2], alpha[2];
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = -INFINITY;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) mx = fmaxf(mx, fmaxf(sc[nt][2 * h], sc[nt][2 * h + 1]));
      const float m_new = fmaxf(m[h], quad_max(mx));
      m_sub[h] = m_new == -INFINITY ? 0.f : m_new * p.scale_log2;
      alpha[h] = exp2_fast(m[h] * p.scale_log2 - m_sub[h]);  // exactly 1 when the max holds
      m[h] = m_new;
      l[h] *= alpha[h];
    }
    if (__any_sync(0xffffffffu, alpha[0] != 1.f || alpha[1] != 1.f)) {
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        acc[nt][0] *= alpha[0];
        acc[nt][1] *= alpha[0];
        acc[nt][2] *= alpha[1];
        acc[nt][3] *= alpha[1];
      }
    }
#pragma unroll
    for (int nt = 0; nt < 8; ++nt)
#pragma unroll
      for (int x2 = 0; x2 < 4; ++x2) {
        const float pr = exp2_fast(fmaf(sc[nt][x2], p.scale_log2, -m_sub[x2 >> 1]));
        sc[nt][x2] = pr;
        l[x2 >> 1] += pr;
      }
    // O += P V, P rounded to T in registers.
    if constexpr (kWg) {
      uint32_t pa[4][4];
#pragma unroll
      for (int kk = 0; kk < 4; ++kk) acc_to_a<T>(pa[kk], sc, kk);
      const uint64_t dV = dV0 + buf * kHalves * kDescTile;
      wg_fence();
#pragma unroll
      for (int hf = 0; hf < kHalves; ++hf)  // O's columns 64 hf .. from V's half hf
#pragma unroll
        for (int kk = 0; kk < 4; ++kk) wg_mma_rs<T, 1>(half_of(acc, hf), pa[kk], dV + hf * kDescTile + kk * kDescRows16);
      wg_commit();
      wg_wait<0>();
    } else {
      mma_scores_tile<S, T, D>(acc, sc, tV, lane);
    }
    // The next step's mask slot was last read by step x - 1, before this step's first barrier.
    if (tid < kTile) sMask[(buf ^ 1) * kTile + tid] = next_word;
    __syncthreads();  // every warp is done with buffer `buf` before the next prefetch refills it
    cur = next;
  }

  // O through shared memory (the K tiles are free: the loop ended on a barrier after every read).
  if constexpr (kMerge) {  // the prior segment's o and lse, written by the kernel before
    wait_for_prior_grid();
    let_dependents_start();
  }
  float inv[2];
  float* sPrior = reinterpret_cast<float*>(sMask);  // merging: each row's weight of the prior o (sMask is free)
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const float lt = quad_sum(l[h]);
    const int r = r0 + 8 * h;
    inv[h] = lt > 0 ? 1.f / lt : 0.f;
    float row_lse = lt > 0 ? m[h] * p.scale + logf(lt) : -INFINITY;
    if constexpr (kMerge) {  // the union's softmax: the two results weighted by their shares of exp(lse)
      const float prior = __shfl_sync(0xffffffffu, r < qt.q_len && (lane & 3) == 0 ? lse[qt.qt0 + r] : -INFINITY, lane & ~3);
      const float mx = fmaxf(row_lse, prior);
      const float w0 = mx == -INFINITY ? 0.f : __expf(row_lse - mx), w1 = mx == -INFINITY ? 0.f : __expf(prior - mx);
      const float total = w0 + w1;
      inv[h] *= total > 0 ? w0 / total : 0.f;
      if ((lane & 3) == 0) sPrior[r] = total > 0 ? w1 / total : 0.f;
      row_lse = total > 0 ? mx + logf(total) : -INFINITY;
    }
    if (r < qt.q_len && (lane & 3) == 0) lse[(kGather ? p.map(qt.qt0 + r) : qt.qt0 + r)] = row_lse;
  }
  stage_rows<T, D>(sK, acc, inv[0], inv[1], w, lane);
  __syncthreads();
  if constexpr (kGather) {
    copy_rows<T, D>(o, sK, p.map, qt.qt0, qt.q_len, tid);  // into token order
  } else if constexpr (kMerge) {
    merge_rows<T, D>(o + qt.qt0 * D, sK, sPrior, qt.q_len, tid);
  } else {
    copy_rows<T, D>(o + qt.qt0 * D, sK, qt.q_len, tid);
  }
}
}  // namespace

const char* unsupported(const attn::BlockLayout& L, const Tensor& q, double scale,
                        std::initializer_list<const Tensor*> others) {
  if (const char* env = std::getenv("SPARTA_ATTENTION_KERNEL")) {
    if (std::strcmp(env, "simple") == 0) return "SPARTA_ATTENTION_KERNEL=simple";
  }
  if (!(scale > 0)) return "the scale is not positive";
  if (q.dtype() != DType::bf16 && q.dtype() != DType::f16) return "dtype is not bf16 or f16";
  if (q.dim() != 4 || (q.shape(3) != 64 && q.shape(3) != 128)) return "head dimension is not 64 or 128";
  int n_segments = 0;
  for (const attn::BlockLayout* s = &L; s; s = s->next.get()) {
    if (s->block_q != s->block_k || (s->block_q != 64 && s->block_q != 128)) return "blocks are not 64 x 64 or 128 x 128";
    if (s->top_k != 0) {
      if (const char* why = topk::flash_unsupported(*s, q.shape(3))) return why;
    }
    if (++n_segments > max_segments()) return "too many segments";
  }
  auto ok = [](const Tensor& t) {
    return t.is_contiguous() && reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
  };
  if (!ok(q)) return "q is not contiguous and 16-byte aligned";
  for (const Tensor* t : others)
    if (!ok(*t)) return "an input is not contiguous and 16-byte aligned";
  return nullptr;
}
void forward(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
             const Tensor& lse) {
  forward_pair(s, nullptr, scale, q, k, v, k, v, o, lse);
}

std::atomic<int64_t> g_in_place_launches{0};
int64_t in_place_launches() { return g_in_place_launches.load(); }
void count_in_place_launch() { ++g_in_place_launches; }

bool reads_in_place(const Segment& s, const Tensor& q) {
  return s.residue_stride > 0 && use_wgmma(q.shape(3));
}

void forward_in_place(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                      const Tensor& lse) {
  const char* op = "sparse_attention";
  const Shape4 sh = shape_of(q);
  Params p = in_place_params(s, scale, q, k, v, op);
  p.o = o.data_ptr();
  p.lse_out = static_cast<float*>(lse.data_ptr());
  dispatch(q.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    launch(forward_kernel<T, D, true, true>, grid_of(sh.B * sh.H, sh.N, op), forward_smem<T, D, true>(), p, op);
  });
  count_in_place_launch();
}

void forward_merged(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& o,
                    const Tensor& lse) {
  const char* op = "sparse_attention";
  SPARTA_CHECK(use_wgmma(q.shape(3)) && !s.q_pos && !s.k_pos, op,
               "merging into a prior result takes a segment in token order, at head dim 64 or 128 on wgmma");
  const Shape4 sh = shape_of(q);
  Params p = params_of(s, scale, q, k);
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = o.data_ptr();
  p.lse_out = static_cast<float*>(lse.data_ptr());
  dispatch(q.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    launch(forward_kernel<T, D, true, false, true>, grid_of(sh.B * sh.H, sh.N, op), forward_smem<T, D, true>(), p, op,
           true);
  });
}

void forward_pair(const Segment& s, const Segment* s2, double scale, const Tensor& q, const Tensor& k,
                  const Tensor& v, const Tensor& k2, const Tensor& v2, const Tensor& o, const Tensor& lse) {
  const char* op = "sparse_attention";
  const Shape4 sh = shape_of(q);
  Params p = params_of(s, scale, q, k);
  if (s2) {
    SPARTA_CHECK(s2->block_q == s.block_q && s2->seq_len == s.seq_len && !s2->q_pos, op,
                 "a second segment must share the first one's query blocks and order");
    p.has_s2 = true;
    p.s2 = *s2;
    p.k2 = k2.data_ptr();
    p.v2 = v2.data_ptr();
    p.Nk2 = k2.shape(2);
  }
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  p.o = o.data_ptr();
  p.lse_out = static_cast<float*>(lse.data_ptr());
  dispatch(q.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    if (use_wgmma(D)) {
      launch(forward_kernel<T, D, true>, grid_of(sh.B * sh.H, sh.N, op), forward_smem<T, D, true>(), p, op);
      return;
    }
    launch(forward_kernel<T, D, false>, grid_of(sh.B * sh.H, sh.N, op), forward_smem<T, D, false>(), p, op);
  });
}
}  // namespace sparta::cuda::flash
