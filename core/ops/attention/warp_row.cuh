#pragma once
// Device helpers of the simple attention kernels (attention_cuda.cu), where one warp owns one row:
// a row of D values is spread over the lanes (lane owns d = lane + 32 t), and a dot product is the
// lanes' parts summed by a warp reduction. The top-k selection (attention_topk_cuda.cu) scores
// keys with the same functions.
//
// Note [bit-identical scores]
// Top-k keeps the scores >= a per-row threshold that the selection kernel found among scores it
// computed itself; the forward and backward kernels recompute those scores and compare. The k-th
// key survives only if every kernel gets its score to the last bit, so score() is the one way to
// score a pair: explicit fused multiply-adds in d order (no contraction left to the compiler), the
// xor butterfly of warp_sum (every lane ends with the same sum, whatever the lane), and the scale
// applied with a round-to-nearest multiply the compiler cannot fuse into what follows.
#include <cstdint>
#include <type_traits>

#include "core/attention/block_layout.h"
#include "core/error.h"
#include "core/cuda/types.cuh"
#include "core/ops/attention/device_layout.cuh"

namespace sparta::cuda::warp_row {

constexpr unsigned kFullMask = 0xffffffffu;

// Host: runs f with DT, the 32-wide slices of the head dimension per lane, rounded up to 1, 2, 4 or 8.
template <typename F>
void dispatch_slices(int64_t D, const char* op, F&& f) {
  SPARTA_CHECK(D >= 1 && D <= 256, op, "head dimension ", D, " is outside [1, 256]");
  if (D <= 32) return f(std::integral_constant<int, 1>());
  if (D <= 64) return f(std::integral_constant<int, 2>());
  if (D <= 128) return f(std::integral_constant<int, 4>());
  return f(std::integral_constant<int, 8>());
}


template <typename C>
__device__ __forceinline__ C warp_sum(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

template <typename C>
__device__ __forceinline__ C cmax(C a, C b) {
  return a < b ? b : a;
}

template <typename C>
__device__ __forceinline__ C warp_max(C v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = cmax(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}

__device__ __forceinline__ float exp_c(float x) { return ::expf(x); }
__device__ __forceinline__ double exp_c(double x) { return ::exp(x); }
__device__ __forceinline__ float log_c(float x) { return ::logf(x); }
__device__ __forceinline__ double log_c(double x) { return ::log(x); }
__device__ __forceinline__ float fma_c(float a, float b, float c) { return ::fmaf(a, b, c); }
__device__ __forceinline__ double fma_c(double a, double b, double c) { return ::fma(a, b, c); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double mul_rn(double a, double b) { return __dmul_rn(a, b); }

__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

template <typename C>
__device__ __forceinline__ C neg_inf() {
  return -C(INFINITY);
}

// Whether entry e (of kind `kind`) allows row r, column c of its block: query at position qp,
// key at position kp; cols is the key block's length (the mask bits' row length).
__device__ __forceinline__ bool entry_allows(const Segment& s, int64_t e, uint8_t kind, int64_t r, int64_t c,
                                             int64_t cols, int64_t qp, int64_t kp) {
  if (kind == attn::BlockLayout::kFull) return true;
  if (kind == attn::BlockLayout::kCausal) return kp <= qp;
  const int64_t b = s.mask_offset[e] + r * cols + c;
  return (s.mask_bits[b >> 6] >> (b & 63)) & 1u;
}

// Lane's slice of a row of D values: d = lane + 32 t, zero past D.
template <int DT, typename T, typename C>
__device__ __forceinline__ void load_row(const T* row, int64_t D, int lane, C (&out)[DT]) {
#pragma unroll
  for (int t = 0; t < DT; ++t) {
    const int64_t d = lane + 32 * t;
    out[t] = d < D ? convert<C>(row[d]) : C(0);
  }
}

template <int DT, typename T, typename C>
__device__ __forceinline__ void store_row(T* row, int64_t D, int lane, const C (&in)[DT], C mul) {
#pragma unroll
  for (int t = 0; t < DT; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < D) row[d] = convert<T>(in[t] * mul);
  }
}

// The lane's part of a dot product of its slice with a row in memory.
template <int DT, typename T, typename C>
__device__ __forceinline__ C dot_part(const C (&a)[DT], const T* row, int64_t D, int lane) {
  C s = 0;
#pragma unroll
  for (int t = 0; t < DT; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < D) s = fma_c(a[t], convert<C>(row[d]), s);
  }
  return s;
}

// The same with both slices in registers (as load_row gives them): the same terms in the same
// order, so the same bits as dot_part.
template <int DT, typename C>
__device__ __forceinline__ C dot_part(const C (&a)[DT], const C (&b)[DT], int64_t D, int lane) {
  C s = 0;
#pragma unroll
  for (int t = 0; t < DT; ++t) {
    const int64_t d = lane + 32 * t;
    if (d < D) s = fma_c(a[t], b[t], s);
  }
  return s;
}

// scale * (q . k) from the lanes' parts of q . k (Note [bit-identical scores]); every lane gets it.
template <typename C>
__device__ __forceinline__ C score(C part, C scale) {
  return mul_rn(warp_sum(part), scale);
}

// The walk of one row (query block i, row r of it, at position pos) over one segment's entries:
// calls visit(ok, sc, ballot, kp) for every run of 32 keys that has an allowed key, on every lane:
// lane j's key is allowed (ok), its score sc (-inf where not allowed, and everywhere without
// kScores), ballot the allowed lanes, kp lane j's key position. The simple forward, the simple dq and
// the top-k selection all walk rows with it.
template <bool kScores, int DT, typename T, typename C, typename F>
__device__ __forceinline__ void for_each_run(const Segment& s, int64_t h, int64_t i, int64_t r, int64_t pos,
                                             const C (&qr)[DT], const T* kb, int64_t D, C scale, int lane,
                                             F&& visit) {
  const int64_t* rp = s.row_ptr + h * (s.n_qblocks + 1);
  for (int64_t e = rp[i]; e < rp[i + 1]; ++e) {
    const int64_t k0 = int64_t(s.col_idx[e]) * s.block_k, cols = imin(s.block_k, s.n_keys - k0);
    const uint8_t kind = s.kind[e];
    for (int64_t c0 = 0; c0 < cols; c0 += 32) {
      const int64_t c = c0 + lane;
      int64_t kp = 0;
      bool ok = false;
      if (c < cols) {
        kp = s.k_pos ? s.k_pos[k0 + c] : k0 + c;
        ok = entry_allows(s, e, kind, r, c, cols, pos, kp);
      }
      const unsigned ballot = __ballot_sync(kFullMask, ok);
      if (ballot == 0) continue;
      C sc = neg_inf<C>();
      if constexpr (kScores) {
        for (unsigned b = ballot; b; b &= b - 1) {
          const int src = __ffs(b) - 1;
          const int64_t kpb = __shfl_sync(kFullMask, kp, src);
          const C sb = score(dot_part<DT>(qr, kb + kpb * D, D, lane), scale);
          if (lane == src) sc = sb;
        }
      }
      visit(ok, sc, ballot, kp);
    }
  }
}

}  // namespace sparta::cuda::warp_row
