#pragma once
// Tensor-core block-sparse attention: FlashAttention-2 (Dao 2023) over a BlockLayout, bf16 and
// f16 with f32 accumulation. What it covers: flash.cuh; attention_cuda.cu dispatches.
//
// Tiles of 64 rows, 4 warps, each warp 16 rows of the tile (the M of mma.m16n8k16). On sm_90 the
// same kernels (kWg: head dims 64 and 128; not the deterministic dQ pass) issue the products
// as wgmma m64n64k16 of the whole warpgroup instead (see "wgmma" below); everything around the
// products is shared.
//
//   forward   one CTA per (batch, head, 64-query tile), over the tile's CSR entries (then over a
//             second segment's, when forward_pair gives one: fixed attention's summary keys): K and V tiles
//             stream through shared memory (cp.async, double-buffered); S = Q K^T and O += P V on
//             tensor cores (ldmatrix fragments; Q stays in registers); the online softmax in f32
//             registers over the raw scores' running max m, p = 2^(s scale log2 e - m scale log2 e)
//             in one FMA and one MUFU; lse = m scale + log(l), natural log.
//   dk, dv    one CTA per (batch, head, 64-key tile), over the key block's CSC list (the query
//             tiles that see it): each warp owns 16 keys and computes S^T = K Q^T, P^T from the
//             saved lse, dV += P^T dO, dP^T = V dO^T, dS^T = P^T (dP^T - delta), dK += dS^T Q.
//   dq        one CTA per query tile over its CSR list: S, P, dP = dO V^T, dS, dQ += dS K.
//             Every output tile has one writer and sums in a fixed order: deterministic, no
//             atomics, but S and dP are computed twice (7 tile products per step instead of 5).
//   fused     (the default; deterministic_algorithms() selects the pair above) the dk, dv kernel
//             also stores dS^T to shared memory, and its 4 warps compute the step's dQ = dS K,
//             16 queries each, and add it into an f32 buffer with vector atomics (FlashAttention-2's
//             scheme; on wgmma, one bulk reduce-add per warp, done in L2, into a buffer laid out
//             tile by tile in the accumulator layout, dq_tiled); a last pass scales and rounds
//             the buffer into dq. A key tile whose list is far longer than a CTA slot's share of
//             the launch (split_columns) runs as several CTAs that add dK and dV into f32
//             buffers, rounded the same way.
//
// Output tiles (O, dK, dV) leave through shared memory as 16-byte pieces of whole rows (stage_rows).
//
// Masks: per step (one 64 x 64 tile pair) each query row of the tile gets one 64-bit word, bit c
// set when key c of the tile is allowed: kFull allows every key (inside the sequence), kCausal
// k <= q, kPartial copies the entry's precomputed bits (BlockLayout::mask_bits), and rows/keys
// past the sequence end are cleared. A step's words go to shared memory when its tiles are
// prefetched, a partial entry's as asynchronous copies in the tiles' group (stage_mask), so the
// loads of its bits overlap the current step's products; they are only consulted when the step
// needs them (a full interior tile skips the mask).
//
// Shared memory rows are padded to D + 8 elements, so the 8 rows an ldmatrix reads fall in
// different banks (a 128- or 256-byte stride would put them all in the same ones).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/cuda/async_copy.cuh"
#include "core/cuda/check.h"
#include "core/cuda/dependent_launch.cuh"
#include "core/cuda/types.cuh"
#include "core/attention/residue_order.h"
#include "core/ops/attention/flash.cuh"
#include "core/ops/attention/wgmma.cuh"

// What the kernel files share (attention_flash_forward.cu, attention_flash_backward.cu): tile
// constants, PTX wrappers, fragment helpers, the tile loader, a step's mask words, the kernels'
// parameters and their launch. Internal to those files (an unnamed namespace: each has its copy).
namespace sparta::cuda::flash {
namespace {

using attn::BlockLayout;

constexpr int kTile = 64;  // query and key rows of a tile
constexpr int kWarps = 4;
constexpr int kThreads = kWarps * 32;
constexpr float kLog2e = 1.4426950408889634f;

// ---- PTX wrappers -----------------------------------------------------------------------------

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// c (16 x 8, f32) += a (16 x 16, row) b (16 x 8, col). Fragments (g = lane / 4, t = lane % 4):
//   a: a0 (g, 2t..2t+1), a1 (g+8, 2t..), a2 (g, 2t+8..), a3 (g+8, 2t+8..)
//   b: b0 (k 2t..2t+1, n g), b1 (k 2t+8.., n g)
//   c: c0 c1 (g, 2t..2t+1), c2 c3 (g+8, 2t..2t+1)
template <typename T>
__device__ __forceinline__ void mma(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Two floats as a pair of T (lo in the low half: the lower column of a fragment).
template <typename T>
__device__ __forceinline__ uint32_t pack(float lo, float hi) {
  uint32_t u;
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    memcpy(&u, &v, 4);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    memcpy(&u, &v, 4);
  }
  return u;
}

// The A fragments of rows 16 w .. 16 w + 15, columns 16 ks .. 16 ks + 15 of a row-major tile.
template <int S, typename T>
__device__ __forceinline__ void load_a(uint32_t (&a)[4], const T* tile, int w, int ks, int lane) {
  ldmatrix_x4(a, smem_u32(tile + (w * 16 + (lane & 15)) * S + ks * 16 + (lane >> 4) * 8));
}

// B fragments of two n-tiles (rows 16 np .. 16 np + 15 of a row-major tile as n, columns 16 ks ..
// as k): the tile's rows are B's columns (K for S = Q K^T). r0 r1: n-tile 2 np; r2 r3: 2 np + 1.
template <int S, typename T>
__device__ __forceinline__ void load_b(uint32_t (&r)[4], const T* tile, int np, int ks, int lane) {
  ldmatrix_x4(r, smem_u32(tile + (np * 16 + (lane & 7) + ((lane >> 4) << 3)) * S + ks * 16 + ((lane >> 3) & 1) * 8));
}

// B fragments of two n-tiles with the tile's rows as k (rows 16 kk ..) and its columns as n
// (columns 16 dp ..): V for O += P V. r0 r1: n-tile 2 dp; r2 r3: 2 dp + 1.
template <int S, typename T>
__device__ __forceinline__ void load_b_trans(uint32_t (&r)[4], const T* tile, int kk, int dp, int lane) {
  ldmatrix_x4_trans(r, smem_u32(tile + (kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * S + dp * 16 + (lane >> 4) * 8));
}

// The A fragments of rows 16 m .. 16 m + 15, columns 16 kk .. 16 kk + 15 of A, from a tile that
// holds A transposed (its rows are A's columns): dS for dQ = dS K, from the dk/dv kernel's dS^T.
template <int S, typename T>
__device__ __forceinline__ void load_a_trans(uint32_t (&a)[4], const T* tile, int m, int kk, int lane) {
  ldmatrix_x4_trans(a, smem_u32(tile + (kk * 16 + (lane & 7) + (lane >> 4) * 8) * S + m * 16 + ((lane >> 3) & 1) * 8));
}

// dst[0..1] += v[0..1] in global memory, one vector atomic where the GPU has it.
__device__ __forceinline__ void atomic_add2(float* dst, float v0, float v1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  atomicAdd(reinterpret_cast<float2*>(dst), make_float2(v0, v1));
#else
  atomicAdd(dst, v0);
  atomicAdd(dst + 1, v1);
#endif
}

// The A fragment of columns 16 kk .. 16 kk + 15 from an accumulator of 8-column n-tiles.
template <typename T, int NT>
__device__ __forceinline__ void acc_to_a(uint32_t (&a)[4], const float (&c)[NT][4], int kk) {
  a[0] = pack<T>(c[2 * kk][0], c[2 * kk][1]);
  a[1] = pack<T>(c[2 * kk][2], c[2 * kk][3]);
  a[2] = pack<T>(c[2 * kk + 1][0], c[2 * kk + 1][1]);
  a[3] = pack<T>(c[2 * kk + 1][2], c[2 * kk + 1][3]);
}

// A residue-class segment's rows (strided attention's classes) read and written in place through
// the order's closed form (strided attention at 16K on the H200: the gathered copies and their
// scatter-adds had been a third of its time).
using RowMap = attn::ResidueOrder;

// Output tiles leave through shared memory: the accumulator layout gives each thread 4-byte pieces
// of two rows, so stored straight to global memory every warp store touches 8 rows; staged, the
// stores are whole 16-byte chunks of contiguous rows (local attention at 16K: its dK, dV stores
// took 39 of 406 us fwd+bwd on the H200).
//
// The warp's 16 rows of acc (rows 16 w + lane / 4 and + 8, columns 8 nt + 2 (lane % 4) and + 1),
// times a factor per row, as T into a 64-row staging tile whose rows of D + 8 elements put the
// 8 rows of a store in different banks.
template <typename T, int D>
__device__ __forceinline__ void stage_rows(T* stage, const float (&acc)[D / 8][4], float f0, float f1, int w, int lane) {
  const int r0 = w * 16 + (lane >> 2), c0 = 2 * (lane & 3);
#pragma unroll
  for (int h = 0; h < 2; ++h)
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt)
      *reinterpret_cast<uint32_t*>(stage + (r0 + 8 * h) * (D + 8) + nt * 8 + c0) =
          pack<T>(acc[nt][2 * h] * (h ? f1 : f0), acc[nt][2 * h + 1] * (h ? f1 : f0));
}
// Rows 0 .. n_rows - 1 of a staging tile to dst (contiguous rows of D elements), 16 bytes a thread.
template <typename T, int D>
__device__ __forceinline__ void copy_rows(T* dst, const T* stage, int n_rows, int tid) {
  constexpr int C = D / 8;  // 16-byte chunks per row
#pragma unroll
  for (int x = tid; x < kTile * C; x += kThreads) {
    const int r = x / C, c = x % C;
    if (r < n_rows)
      *reinterpret_cast<uint4*>(dst + r * D + c * 8) = *reinterpret_cast<const uint4*>(stage + r * (D + 8) + c * 8);
  }
}

// A permuted segment's dk and dv added into the rows map(t0 + r) (r < n_rows) that another segment
// wrote (one writer per row), summed in f32, 16 bytes of each a thread: load() reads the rows
// before the tiles are staged, so their latency overlaps the staging; add() adds the staged tiles
// and writes.
template <typename T, int D>
struct MappedRows {
  static constexpr int C = D / 8, kPer = kTile * C / kThreads;
  int64_t at[kPer];  // element offset of the thread's piece i, or -1 past n_rows
  uint4 a[kPer], b[kPer];
  __device__ __forceinline__ void load(const T* x, const T* y, const RowMap& map, int64_t t0, int n_rows, int tid) {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      const int idx = tid + i * kThreads, r = idx / C, c = idx % C;
      at[i] = r < n_rows ? map(t0 + r) * D + c * 8 : -1;
      if (at[i] >= 0) {
        a[i] = *reinterpret_cast<const uint4*>(x + at[i]);
        b[i] = *reinterpret_cast<const uint4*>(y + at[i]);
      }
    }
  }
  __device__ __forceinline__ void add(T* x, const T* sx, T* y, const T* sy, int tid) const {
#pragma unroll
    for (int i = 0; i < kPer; ++i) {
      if (at[i] < 0) continue;
      const int idx = tid + i * kThreads, off = idx / C * (D + 8) + idx % C * 8;
      *reinterpret_cast<uint4*>(x + at[i]) = sum(a[i], *reinterpret_cast<const uint4*>(sx + off));
      *reinterpret_cast<uint4*>(y + at[i]) = sum(b[i], *reinterpret_cast<const uint4*>(sy + off));
    }
  }
  __device__ __forceinline__ static uint4 sum(uint4 u, const uint4& v) {
    T* uv = reinterpret_cast<T*>(&u);
    const T* vv = reinterpret_cast<const T*>(&v);
#pragma unroll
    for (int k = 0; k < 8; ++k) uv[k] = convert<T>(convert<float>(uv[k]) + convert<float>(vv[k]));
    return u;
  }
};

// Rows 0 .. n_rows - 1 of a staging tile to the rows map(t0 + r) of dst: a permuted segment's
// output, written in token order.
template <typename T, int D>
__device__ __forceinline__ void copy_rows(T* dst, const T* stage, const RowMap& map, int64_t t0, int n_rows, int tid) {
  constexpr int C = D / 8;
#pragma unroll
  for (int x = tid; x < kTile * C; x += kThreads) {
    const int r = x / C, c = x % C;
    if (r < n_rows)
      *reinterpret_cast<uint4*>(dst + map(t0 + r) * D + c * 8) = *reinterpret_cast<const uint4*>(stage + r * (D + 8) + c * 8);
  }
}
// dst row r = stage row r + prior[r] * dst row r (the staged rows already weighted): a segment's
// output merged with the one another segment left in dst.
template <typename T, int D>
__device__ __forceinline__ void merge_rows(T* dst, const T* stage, const float* prior, int n_rows, int tid) {
  constexpr int C = D / 8, kPer = kTile * C / kThreads;
  uint4 old[kPer];
#pragma unroll
  for (int i = 0; i < kPer; ++i) {  // every read first: one latency for all of them
    const int x = tid + i * kThreads;
    if (x / C < n_rows) old[i] = *reinterpret_cast<const uint4*>(dst + x / C * D + x % C * 8);
  }
#pragma unroll
  for (int i = 0; i < kPer; ++i) {
    const int x = tid + i * kThreads, r = x / C, c = x % C;
    if (r >= n_rows) continue;
    const uint4 a = *reinterpret_cast<const uint4*>(stage + r * (D + 8) + c * 8);
    const T* av = reinterpret_cast<const T*>(&a);
    T* ov = reinterpret_cast<T*>(&old[i]);
    const float w = prior[r];
#pragma unroll
    for (int k = 0; k < 8; ++k) ov[k] = convert<T>(fmaf(w, convert<float>(ov[k]), convert<float>(av[k])));
    *reinterpret_cast<uint4*>(dst + r * D + c * 8) = old[i];
  }
}

// acc (the warp's 16 rows x D) += P T, P the warp's 16 x 64 scores in registers (rounded to T), T
// a row-major 64 x D tile: O += P V in the forward, dQ += dS K in the dq pass (mma.sync).
template <int S, typename T, int D>
__device__ __forceinline__ void mma_scores_tile(float (&acc)[D / 8][4], const float (&p)[8][4], const T* tile, int lane) {
#pragma unroll
  for (int kk = 0; kk < 4; ++kk) {
    uint32_t a[4];
    acc_to_a<T>(a, p, kk);
#pragma unroll
    for (int d2 = 0; d2 < D / 16; ++d2) {
      uint32_t b[4];
      load_b_trans<S>(b, tile, kk, d2, lane);
      mma<T>(acc[2 * d2], a, b[0], b[1]);
      mma<T>(acc[2 * d2 + 1], a, b[2], b[3]);
    }
  }
}

__device__ __forceinline__ float quad_max(float v) {
  v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
  return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// 2^x in one MUFU instruction (exp2f adds a range test and two multiplies to keep denormal
// results, which a probability never needs); 2^-inf = 0.
__device__ __forceinline__ float exp2_fast(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Rows [row0, row0 + 64) of a (rows, D) matrix into a padded shared tile, or a swizzled wgmma
// tile (kWg: D = 64, or D = 128 as two 64-column halves of 8 KB, each its own swizzled tile, so
// that a product over 64 columns reads one half as it reads a whole D = 64 tile); rows >= n_valid become zeros (no NaN from stale shared memory can reach a
// product). Thread tid copies 16-byte chunk tid % (D / 8) of rows tid / (D / 8) + i * (rows per
// pass): its source and destination offsets are fixed for the kernel and step by constants, so
// they are computed once (the per-step address arithmetic was 40% of the forward's instructions).
template <int D, bool kWg>
struct TileLoader {
  static constexpr int kChunks = D / 8, kRowsPerPass = kThreads / kChunks, kPasses = kTile / kRowsPerPass;
  static constexpr uint32_t kDstStep = kRowsPerPass * (kWg ? 128 : (D + 8) * 2), kSrcStep = kRowsPerPass * D * 2;
  static_assert(kTile % kRowsPerPass == 0);
  static_assert(!kWg || D == 64 || D == 128);
  uint32_t dst, src;  // bytes from the tile's start and from its first source row
  int row;
  __device__ explicit TileLoader(int tid) : row(tid / kChunks) {
    const int c = tid % kChunks;
    // A 128-byte swizzle depends on the row mod 8 only: rows 8 or 16 apart share it.
    dst = kWg ? uint32_t(c / 8 * kTile * 128) + swizzle_offset(row, c % 8 * 16) : uint32_t(row * (D + 8) * 2 + c * 16);
    src = uint32_t(row * D * 2 + c * 16);
  }
  // `safe`: any valid address (the zero-filled chunks' source, which is not read).
  template <typename T>
  __device__ __forceinline__ void operator()(T* tile, const T* rows, int n_valid, const T* safe) const {
    const uint32_t d = smem_u32(tile) + dst;
    const char* g = reinterpret_cast<const char*>(rows) + src;
    if (n_valid >= kTile) {
#pragma unroll
      for (int i = 0; i < kPasses; ++i) cp_async16(d + i * kDstStep, g + i * kSrcStep, true);
    } else {
#pragma unroll
      for (int i = 0; i < kPasses; ++i) {
        const bool ok = row + i * kRowsPerPass < n_valid;
        cp_async16(d + i * kDstStep, ok ? g + i * kSrcStep : reinterpret_cast<const char*>(safe), ok);
      }
    }
  }
  // Rows map(t0 + r) of `rows` (r < 64; zeros from n_valid on): a permuted segment's tile, read in
  // place. With rows2 and tile2, the same rows of a second matrix (K and V, Q and dO), each row
  // mapped once.
  template <typename T>
  __device__ __forceinline__ void operator()(T* tile, const T* rows, const RowMap& map, int64_t t0, int n_valid) const {
    mapped<false>(tile, rows, tile, rows, map, t0, n_valid);
  }
  template <typename T>
  __device__ __forceinline__ void operator()(T* tile, const T* rows, T* tile2, const T* rows2, const RowMap& map,
                                             int64_t t0, int n_valid) const {
    mapped<true>(tile, rows, tile2, rows2, map, t0, n_valid);
  }
  template <bool kTwo, typename T>
  __device__ __forceinline__ void mapped(T* tile, const T* rows, T* tile2, const T* rows2, const RowMap& map, int64_t t0,
                                         int n_valid) const {
    const uint32_t d = smem_u32(tile) + dst, d2 = smem_u32(tile2) + dst;
    const uint32_t chunk = src - uint32_t(row * D * 2);  // the thread's 16 bytes of a row
    const char* g = reinterpret_cast<const char*>(rows) + chunk;
    const char* g2 = reinterpret_cast<const char*>(rows2) + chunk;
#pragma unroll
    for (int i = 0; i < kPasses; ++i) {
      const int r = row + i * kRowsPerPass;
      const bool ok = r < n_valid;
      const int64_t at = ok ? map(t0 + r) * (D * 2) : 0;
      cp_async16(d + i * kDstStep, g + at, ok);
      if constexpr (kTwo) cp_async16(d2 + i * kDstStep, g2 + at, ok);
    }
  }
};

// The first 1024-byte aligned address at or after p (wgmma's swizzled tiles need it).
__device__ __forceinline__ unsigned char* align_1024(unsigned char* p) {
  return p + ((1024 - (smem_u32(p) & 1023)) & 1023);
}

__device__ __forceinline__ int clamp_len(int64_t n) { return n < 0 ? 0 : n > kTile ? kTile : int(n); }

// One step: the tile pair (queries qt0 .. qt0 + q_len, keys kt0 .. kt0 + kv_len) of entry e,
// which lists (query block i, key block j).
struct Step {
  int64_t e, i, j, qt0, kt0;
  int q_len, kv_len, kind;
  int seg;  // the forward's second segment (Params::s2) when 1
  // The entry's mask_offset, read with its kind rather than after it: a partial entry's words then
  // wait on one load fewer (the chain starts each CTA and follows the block list's reads).
  int64_t moff;
  // Whether the kernels must test the mask words (else every pair of the 64 x 64 tiles is allowed).
  __device__ bool masked() const { return kind != BlockLayout::kFull || q_len < kTile || kv_len < kTile; }
};

// Bit c: query row r of the step may attend key c (see the file comment).
__device__ __forceinline__ uint64_t mask_word(const Segment& s, const Step& st, int r) {
  if (r >= st.q_len || st.kv_len == 0) return 0;
  const uint64_t valid = st.kv_len >= 64 ? ~uint64_t(0) : (uint64_t(1) << st.kv_len) - 1;
  if (st.kind == BlockLayout::kFull) return valid;
  if (st.kind == BlockLayout::kCausal) {
    if (s.q_pos || s.k_pos) {  // permuted or gathered indices: causality is between positions
      const int64_t qp = s.q_pos ? s.q_pos[st.qt0 + r] : st.qt0 + r;
      uint64_t bits = 0;
      for (int c = 0; c < st.kv_len; ++c)
        bits |= uint64_t((s.k_pos ? s.k_pos[st.kt0 + c] : st.kt0 + c) <= qp) << c;
      return bits;
    }
    const int64_t d = st.qt0 + r - st.kt0;  // keys c <= d are allowed
    if (d < 0) return 0;
    if (d >= 63) return valid;
    return valid & ((uint64_t(2) << d) - 1);
  }
  // The entry's bits are row-major over its block's own lengths, from an arbitrary bit offset.
  const int64_t cols = min(s.block_k, s.n_keys - st.j * s.block_k);
  const int64_t b = st.moff + (st.qt0 - st.i * s.block_q + r) * cols + (st.kt0 - st.j * s.block_k);
  const uint64_t* w = s.mask_bits + (b >> 6);
  const int sh = int(b & 63);
  uint64_t bits = w[0] >> sh;
  if (sh != 0 && sh + st.kv_len > 64) bits |= w[1] << (64 - sh);  // only read a word that holds our bits
  return bits & valid;
}

// Row r's mask word of step st into *dst (shared memory), issued with the step's tile loads and
// ready when they are: a partial entry's row that is one whole word (every row of a full-length
// key tile: BlockLayout keeps each entry's bits word-aligned) as an asynchronous copy, so its
// latency overlaps the current step (loaded into a register, the shifts after the load had been
// the kernels' longest single stall: 4% of the dk/dv kernel's samples at fixed 16K, H200); any
// other word computed here. Unmasked steps read no word and get none.
__device__ __forceinline__ void stage_mask(const Segment& s, const Step& st, int r, uint64_t* dst) {
  if (!st.masked()) return;
  if (st.kind == BlockLayout::kPartial && r < st.q_len && st.kv_len == kTile) {
    // The tile's offsets in its block are 0 or 64, its row's under 128: 32-bit arithmetic.
    const int cols = int(min(s.block_k, s.n_keys - st.j * s.block_k));
    const int off = (int(st.qt0 - st.i * s.block_q) + r) * cols + int(st.kt0 - st.j * s.block_k);
    if (((st.moff + off) & 63) == 0) return cp_async8(smem_u32(dst), s.mask_bits + ((st.moff + off) >> 6));
  }
  *dst = mask_word(s, st, r);
}

struct Params {
  Segment s;
  // The forward's optional second segment, in the same query order with the same query blocks (a
  // plain segment and one over gathered keys, as fixed attention's): its rows continue each query
  // tile's walk and online softmax, so the union needs no merge. k2, v2: its keys, (B, H, Nk2, D).
  bool has_s2;
  Segment s2;
  const void *k2, *v2;
  int64_t Nk2;
  const void *q, *k, *v, *dout;
  void *o, *dq, *dk, *dv;
  const float *lse_in, *delta;
  const float* lse2_in;  // the dk/dv kernel's lse: lse log2(e), +inf where lse is -inf (lse_log2_kernel)
  float* lse_out;
  float* dq_acc;  // the fused backward's f32 dQ sums (unscaled), (B, H, N, D), zeroed before
  // The fused backward's split of long CSC lists: each key tile's list runs as kv_chunks CTAs of
  // chunk_steps steps (kv_chunks = 1: one CTA per key tile, which writes dk and dv). Split, the
  // CTAs add their unscaled dK and dV into dk_acc, dv_acc (f32, (B, H, Nk, D), zeroed before).
  int64_t kv_chunks, chunk_steps;
  float *dk_acc, *dv_acc;
  // The segment's rows of q, k, v, dout, lse, delta, dq, dk, dv through this map (the kernels'
  // kGather instances: a residue-class segment on tensors in token order).
  RowMap map;
  int64_t H, N, Nk;  // N: query rows (q, o, dq, lse, delta); Nk: key rows (k, v, dk, dv)
  float scale, scale_log2;  // scale_log2 = scale * log2(e)
};

// Entries of query block i (CSR) or key block j (CSC) of the layout of head `head`.
__device__ __forceinline__ const int64_t* row_ptr_of(const Segment& s, int64_t head) {
  return s.row_ptr + (s.n_layouts == 1 ? 0 : head) * (s.n_qblocks + 1);
}
__device__ __forceinline__ const int64_t* col_ptr_of(const Segment& s, int64_t head) {
  return s.col_ptr + (s.n_layouts == 1 ? 0 : head) * (s.n_kblocks + 1);
}

// Row stride of the kernels' shared tiles, in elements: padded for ldmatrix, 64 for wgmma.
template <int D, bool kWg>
constexpr int kStride = kWg ? D : D + 8;

// The query tile a CTA of the forward or dq pass owns: tiles of a (batch, head) in reverse, so the
// long rows of a causal pattern start first and the short ones fill the tail.
struct QueryTile {
  int64_t bh, head, i, qt0;
  int q_len;
  __device__ QueryTile(const Segment& s, int64_t H, int64_t N) {
    const int64_t n_tiles = (N + kTile - 1) / kTile;
    const int64_t t = n_tiles - 1 - int64_t(blockIdx.x) % n_tiles;
    bh = int64_t(blockIdx.x) / n_tiles;
    head = bh % H;
    i = t * kTile / s.block_q;
    qt0 = t * kTile;
    q_len = clamp_len(min((i + 1) * s.block_q, N) - qt0);
  }
  // Step x of the CSR row: entry first_entry + x / (block_k / 64), key tile x % (block_k / 64).
  __device__ Step step(const Segment& s, int64_t first_entry, int64_t x) const {
    const int kt = s.block_k == 2 * kTile ? 1 : 0;  // log2 of the tiles per block (blocks are 64 or 128)
    Step st;
    st.e = first_entry + (x >> kt);
    st.i = i;
    st.j = s.col_idx[st.e];
    st.qt0 = qt0;
    st.q_len = q_len;
    st.kt0 = st.j * s.block_k + (x & kt) * kTile;
    st.kv_len = clamp_len(min((st.j + 1) * s.block_k, s.n_keys) - st.kt0);
    st.kind = s.kind[st.e];
    st.moff = s.mask_offset[st.e];
    st.seg = 0;
    return st;
  }
};
// ---- launch -----------------------------------------------------------------------------------

struct Shape4 {
  int64_t B, H, N, D;
};
inline Shape4 shape_of(const Tensor& q) { return {q.shape(0), q.shape(1), q.shape(2), q.shape(3)}; }

// The map of a segment whose residue_stride is set, over its n tokens.
inline RowMap row_map(const Segment& s) {
  return s.residue_stride > 0 ? RowMap::of(s.seq_len, s.residue_stride) : RowMap{};
}

inline Params params_of(const Segment& s, double scale, const Tensor& q, const Tensor& k) {
  Params p;
  std::memset(&p, 0, sizeof(p));
  p.s = s;
  p.H = q.shape(1);
  p.N = q.shape(2);
  p.Nk = k.shape(2);
  p.scale = float(scale);
  p.scale_log2 = float(scale * 1.4426950408889634);
  p.kv_chunks = 1;
  p.chunk_steps = int64_t(1) << 62;
  return p;
}

inline unsigned grid_of(int64_t bh, int64_t rows, const char* op) {
  const int64_t n = bh * ((rows + kTile - 1) / kTile);
  SPARTA_CHECK(n < (int64_t(1) << 31), op, "too many tiles for one launch: ", n);
  return unsigned(n);
}

// Runs f with T (the device element type) and D bound.
template <typename F>
void dispatch(DType dt, int64_t D, const char* op, F&& f) {
  auto by_dim = [&](auto tag) {
    using T = decltype(tag);
    if (D == 64) return f(T(), std::integral_constant<int, 64>());
    if (D == 128) return f(T(), std::integral_constant<int, 128>());
    SPARTA_FAIL(op, "no tensor-core kernel for head dimension ", D);
  };
  return by_dtype(dt, op, by_dim);
}

// Whether this call runs the wgmma kernels: head dim 64 or 128 on a compute capability 9.0 device
// (the build's sm_90a code), unless SPARTA_FLASH_WGMMA=0 (for A/B comparisons).
inline bool use_wgmma(int64_t D) {
  if (D != 64 && D != 128) return false;
  if (const char* v = std::getenv("SPARTA_FLASH_WGMMA"); v != nullptr && v[0] == '0') return false;
  int dev = 0, major = 0, minor = 0;
  SPARTA_CUDA_CHECK("sparse_attention", cudaGetDevice(&dev));
  SPARTA_CUDA_CHECK("sparse_attention", cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  SPARTA_CUDA_CHECK("sparse_attention", cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  return major == 9 && minor == 0;
}

// The parameters of a residue-class segment read in place (reads_in_place): q, k, v in token
// order, their rows through the segment's map.
inline Params in_place_params(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                              const char* op) {
  SPARTA_CHECK(reads_in_place(s, q) && q.shape(2) == s.seq_len, op, "not a residue-class segment the kernels read in place");
  Params p = params_of(s, scale, q, k);
  p.map = row_map(s);
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  return p;
}

// dependent: through launch_dependent (the kernel keeps its rules: core/cuda/dependent_launch.cuh).
template <typename Kernel>
void launch(Kernel kernel, unsigned grid, size_t smem, const Params& p, const char* op, bool dependent = false) {
  // Above 48 KiB a kernel must opt in to its dynamic shared memory (per device: set every launch).
  SPARTA_CUDA_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  if (dependent) {
    launch_dependent(op, kernel, dim3(grid), dim3(kThreads), smem, stream(), p);
  } else {
    kernel<<<grid, kThreads, smem, stream()>>>(p);
  }
  SPARTA_CUDA_LAUNCH_CHECK(op);
}
}  // namespace
}  // namespace sparta::cuda::flash
