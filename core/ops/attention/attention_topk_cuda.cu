// Top-k attention's selection on CUDA (topk.cuh): each query row's threshold, the top_k-th largest
// of the scores its first segment allows. One warp per (batch, head, row), as in the simple
// kernels, scoring keys with their functions (warp_row.cuh) so that the forward and backward
// kernels, which compare their own recomputed scores with the threshold, agree with it to the bit.
//
// The k-th largest is found by radix select on the scores' bits: a score maps to an unsigned key
// that orders as the score does; from the top digit down, a histogram of the digit over the
// scores that share the digits fixed so far says which digit the k-th largest has, and how many
// larger scores the other bins hold. Four passes of 8 bits for f32, eight for f64; the result is
// the exact bits of one of the scores. A row's scores stay in shared memory between passes when
// they fit; a longer row recomputes them in every pass (topk.cuh, cache_bytes).
#include <algorithm>

#include "core/cuda/check.h"
#include "core/ops.h"
#include "core/ops/attention/radix_key.cuh"
#include "core/ops/attention/topk.cuh"
#include "core/ops/attention/warp_row.cuh"

namespace sparta::cuda::topk {
namespace {

using namespace warp_row;

constexpr int kRadixBits = 8, kBins = 1 << kRadixBits;
constexpr int kMaxWarps = 4;  // rows per thread block
constexpr int64_t kHistBytes = kBins * sizeof(unsigned);
constexpr int64_t kMaxSharedBytes = 160 << 10;

// q, k: (B, H, N, D) contiguous; threshold: (B, H, N). One warp per (b, h, query position); each
// warp has kHistBytes of histogram in shared memory, then (cached) room for cache_cap scores.
template <typename T, typename C, int DT>
__global__ void __launch_bounds__(kMaxWarps * 32)
    select_kernel(Segment s, int64_t rows_total, int64_t H, int64_t N, int64_t D, C scale, int64_t top_k,
                  bool cached, int64_t warp_bytes, const T* q, const T* k, C* threshold) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + warp;
  if (row >= rows_total) return;  // the whole warp
  unsigned* hist = reinterpret_cast<unsigned*>(smem + warp * warp_bytes);
  C* cache = reinterpret_cast<C*>(smem + warp * warp_bytes + kHistBytes);
  const int64_t bh = row / N, pos = row % N, head = bh % H;
  const int64_t p = s.q_index ? s.q_index[pos] : pos;
  if (p < 0) {  // a row the segment does not reach: nothing to select
    if (lane == 0) threshold[row] = neg_inf<C>();
    return;
  }
  const int64_t h = s.n_layouts == 1 ? 0 : head, i = p / s.block_q, r = p % s.block_q;
  const T* kb = k + bh * N * D;
  C qr[DT];
  load_row<DT>(q + row * D, D, lane, qr);

  // The allowed keys' count, and their scores when they are kept.
  int64_t n = 0;
  if (cached) {
    for_each_run<true, DT>(s, h, i, r, pos, qr, kb, D, scale, lane, [&](bool ok, C sc, unsigned ballot, int64_t) {
      if (ok) cache[n + __popc(ballot & ((1u << lane) - 1))] = sc;
      n += __popc(ballot);
    });
  } else {
    for_each_run<false, DT>(s, h, i, r, pos, qr, kb, D, scale, lane,
                            [&](bool, C, unsigned ballot, int64_t) { n += __popc(ballot); });
  }
  if (n <= top_k) {  // keeps every allowed key (none: the row sees nothing)
    if (lane == 0) threshold[row] = neg_inf<C>();
    return;
  }
  __syncwarp();

  using R = Radix<C>;
  using Key = typename R::Key;
  Key prefix = 0, fixed = 0;  // the digits found so far, and the bits they cover
  int64_t rank = top_k;       // the wanted score is the rank-th largest of those matching prefix
  for (int shift = int(sizeof(Key)) * 8 - kRadixBits; shift >= 0; shift -= kRadixBits) {
    for (int b = lane; b < kBins; b += 32) hist[b] = 0;
    __syncwarp();
    auto count = [&](C x) {
      const Key key = R::key(x);
      if ((key & fixed) == prefix) atomicAdd(&hist[unsigned((key >> shift) & Key(kBins - 1))], 1u);
    };
    if (cached) {
      for (int64_t x = lane; x < n; x += 32) count(cache[x]);
    } else {
      for_each_run<true, DT>(s, h, i, r, pos, qr, kb, D, scale, lane, [&](bool ok, C sc, unsigned, int64_t) {
        if (ok) count(sc);
      });
    }
    __syncwarp();
    // Lane j holds bins kBins-1-8j .. kBins-8-8j (from the top); the first lane whose running
    // count reaches rank holds the digit.
    constexpr int kPer = kBins / 32;
    unsigned mine[kPer], part = 0;
#pragma unroll
    for (int x = 0; x < kPer; ++x) {
      mine[x] = hist[kBins - 1 - (lane * kPer + x)];
      part += mine[x];
    }
    unsigned incl = part;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const unsigned up = __shfl_up_sync(kFullMask, incl, o);
      if (lane >= o) incl += up;
    }
    const int src = __ffs(__ballot_sync(kFullMask, int64_t(incl) >= rank)) - 1;
    int digit = 0;
    int64_t larger = 0;  // matching scores in the bins above the digit's
    if (lane == src) {
      int64_t cum = int64_t(incl - part);
#pragma unroll
      for (int x = 0; x < kPer; ++x) {
        if (cum + mine[x] >= rank) {
          digit = kBins - 1 - (lane * kPer + x);
          break;
        }
        cum += mine[x];
      }
      larger = cum;
    }
    digit = __shfl_sync(kFullMask, digit, src);
    rank -= __shfl_sync(kFullMask, larger, src);
    prefix |= Key(digit) << shift;
    fixed |= Key(kBins - 1) << shift;
    __syncwarp();  // every lane has read hist before the next pass clears it
  }
  if (lane == 0) threshold[row] = R::value(prefix);
}

// The most keys one query row can be allowed: its query block's entries' key blocks, summed.
int64_t longest_row(const attn::BlockLayout& L) {
  int64_t longest = 0;
  for (int h = 0; h < L.n_layouts; ++h) {
    const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(L.n_qblocks + 1);
    for (int64_t i = 0; i < L.n_qblocks; ++i) {
      int64_t keys = 0;
      for (int64_t e = rp[i]; e < rp[i + 1]; ++e) keys += L.kblock_len(L.col_idx[size_t(e)]);
      longest = std::max(longest, keys);
    }
  }
  return longest;
}

}  // namespace

void thresholds(const attn::BlockLayout& L, const Segment& s, double scale, const Tensor& q, const Tensor& k,
                const Tensor& threshold, int64_t cache_bytes) {
  const char* op = "sparse_attention";
  SPARTA_CHECK(L.top_k > 0, op, "top-k selection on a layout without top_k");
  SPARTA_CHECK(q.is_contiguous() && k.is_contiguous() && threshold.is_contiguous(), op,
               "top-k selection takes contiguous q, k and threshold");
  const int64_t B = q.shape(0), H = q.shape(1), N = q.shape(2), D = q.shape(3), rows = B * H * N;
  SPARTA_CHECK(threshold.numel() == rows && threshold.dtype() == accumulation_dtype(q.dtype()), op,
               "top-k threshold must be ", dtype_name(accumulation_dtype(q.dtype())), " with ", rows,
               " elements, got ", dtype_name(threshold.dtype()), " ", shape_str(threshold.shape()));
  if (rows == 0) return;

  // Shared memory: each warp's histogram, then its row's scores if the longest row fits.
  int optin = 0;
  SPARTA_CUDA_CHECK(op, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, q.device().index));
  const int64_t max_shared = std::min<int64_t>(kMaxSharedBytes, optin);
  const int64_t elem = q.dtype() == DType::f64 ? 8 : 4;
  const int64_t scores = longest_row(L) * elem, budget = cache_bytes < 0 ? max_shared : cache_bytes;
  const int64_t cached_warp = (kHistBytes + scores + 15) / 16 * 16;
  const bool cached = scores <= budget && cached_warp <= max_shared;
  const int64_t warp_bytes = cached ? cached_warp : kHistBytes;
  const int warps = int(std::clamp<int64_t>(max_shared / warp_bytes, 1, kMaxWarps));
  const int64_t shared = warps * warp_bytes;
  const unsigned grid = unsigned((rows + warps - 1) / warps);

  dispatch_slices(D, op, [&](auto slices) {
    constexpr int DT = decltype(slices)::value;
    SPARTA_CUDA_DISPATCH_FLOAT(q.dtype(), op, [&] {
      using T = scalar_t;
      using C = acc_t<T>;
      auto kernel = select_kernel<T, C, DT>;
      if (shared > (48 << 10)) {
        SPARTA_CUDA_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(shared)));
      }
      kernel<<<grid, warps * 32, size_t(shared), stream()>>>(s, rows, H, N, D, C(scale), L.top_k, cached, warp_bytes,
                                                             static_cast<const T*>(q.data_ptr()),
                                                             static_cast<const T*>(k.data_ptr()),
                                                             static_cast<C*>(threshold.data_ptr()));
      SPARTA_CUDA_LAUNCH_CHECK(op);
    });
  });
}

}  // namespace sparta::cuda::topk
