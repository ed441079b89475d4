// The tensor-core backward of block-sparse attention: the dq pass, the dk/dv pass (fused with dq
// by default), delta, and the f32 sums' rounding. The kernel family: flash_kernels.cuh.
#include <algorithm>
#include <atomic>

#include "core/determinism.h"
#include "core/ops/attention/flash_kernels.cuh"

namespace sparta::cuda::flash {
namespace {

// ---- backward: dq -----------------------------------------------------------------------------

template <typename T, int D>
constexpr size_t dq_smem() {
  return size_t(6 * kTile * (D + 8)) * sizeof(T) + 2 * kTile * sizeof(uint64_t);
}

// dq = scale * sum over the row's entries of dS K, dS = P (dO V^T - delta), P = exp(S - lse).
template <typename T, int D>
__global__ void __launch_bounds__(kThreads) dq_kernel(const Params p) {
  constexpr int S = D + 8, KS = D / 16;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sdO = sQ + kTile * S;
  T* sK = sdO + kTile * S;     // [2][64][S]
  T* sV = sK + 2 * kTile * S;  // [2][64][S]
  uint64_t* sMask = reinterpret_cast<uint64_t*>(sV + 2 * kTile * S);  // [2][64]

  const Segment& s = p.s;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const TileLoader<D, false> load(tid);
  const QueryTile qt(s, p.H, p.N);
  const int64_t* rp = row_ptr_of(s, qt.head);
  const int64_t first = rp[qt.i], n_steps = (rp[qt.i + 1] - first) * (s.block_k / kTile);
  const int64_t base = qt.bh * p.N * D, kbase = qt.bh * p.Nk * D;
  const T* q = static_cast<const T*>(p.q) + base;
  const T* k = static_cast<const T*>(p.k) + kbase;
  const T* v = static_cast<const T*>(p.v) + kbase;
  const T* dout = static_cast<const T*>(p.dout) + base;
  T* dq = static_cast<T*>(p.dq) + base;
  const int r0 = w * 16 + (lane >> 2), c0 = 2 * (lane & 3);

  // This thread's two rows: lse in log2 units (+inf where P is 0: a row that sees nothing, or a
  // row past the end) and delta.
  float lse2[2], delta[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = r0 + 8 * h;
    const float x = r < qt.q_len ? p.lse_in[qt.bh * p.N + qt.qt0 + r] : -INFINITY;
    lse2[h] = x == -INFINITY ? INFINITY : x * kLog2e;
    delta[h] = r < qt.q_len ? p.delta[qt.bh * p.N + qt.qt0 + r] : 0.f;
  }

  float acc[D / 8][4];
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.f;

  if (n_steps > 0) {
    auto prefetch = [&](const Step& st, int buf) {  // K, V and mask words of step st into buffer buf
      load(sK + buf * kTile * S, k + st.kt0 * D, st.kv_len, k);
      load(sV + buf * kTile * S, v + st.kt0 * D, st.kv_len, v);
      if (tid < kTile) stage_mask(s, st, tid, sMask + buf * kTile + tid);
      cp_async_commit();
    };
    load(sQ, q + qt.qt0 * D, qt.q_len, q);
    load(sdO, dout + qt.qt0 * D, qt.q_len, dout);
    cp_async_commit();
    Step cur = qt.step(s, first, 0);
    prefetch(cur, 0);

    for (int64_t x = 0; x < n_steps; ++x) {
      const int buf = int(x & 1);
      Step next = cur;
      if (x + 1 < n_steps) {
        next = qt.step(s, first, x + 1);
        prefetch(next, buf ^ 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      __syncthreads();
      const T* tK = sK + buf * kTile * S;
      const T* tV = sV + buf * kTile * S;

      // S = Q K^T and dP = dO V^T (16 x 64 per warp).
      float sc[8][4], dp[8][4];
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int x2 = 0; x2 < 4; ++x2) sc[nt][x2] = dp[nt][x2] = 0.f;
#pragma unroll
      for (int ks = 0; ks < KS; ++ks) {
        uint32_t a[4];
        load_a<S>(a, sQ, w, ks, lane);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          load_b<S>(b, tK, np, ks, lane);
          mma<T>(sc[2 * np], a, b[0], b[1]);
          mma<T>(sc[2 * np + 1], a, b[2], b[3]);
        }
        load_a<S>(a, sdO, w, ks, lane);
#pragma unroll
        for (int np = 0; np < 4; ++np) {
          uint32_t b[4];
          load_b<S>(b, tV, np, ks, lane);
          mma<T>(dp[2 * np], a, b[0], b[1]);
          mma<T>(dp[2 * np + 1], a, b[2], b[3]);
        }
      }
      // P = 2^(s scale log2 e - lse2) where allowed, dS = P (dP - delta), into sc. Unmasked
      // steps (the interior of a pattern) skip the mask test altogether.
      auto to_ds = [&](auto masked_tag) {
        constexpr bool kMasked = decltype(masked_tag)::value;
        uint64_t w0 = 0, w1 = 0;
        if constexpr (kMasked) {
          w0 = sMask[buf * kTile + r0] >> c0;
          w1 = sMask[buf * kTile + r0 + 8] >> c0;
        }
#pragma unroll
        for (int nt = 0; nt < 8; ++nt)
#pragma unroll
          for (int x2 = 0; x2 < 4; ++x2) {
            const int h = x2 >> 1;
            float pr = exp2_fast(fmaf(sc[nt][x2], p.scale_log2, -lse2[h]));
            if constexpr (kMasked) {
              if (!(((h ? w1 : w0) >> (nt * 8 + (x2 & 1))) & 1u)) pr = 0.f;
            }
            sc[nt][x2] = pr * (dp[nt][x2] - delta[h]);
          }
      };
      if (cur.masked()) {
        to_ds(std::true_type());
      } else {
        to_ds(std::false_type());
      }
      // dQ += dS K (dS rounded to T in registers; the scale is applied once at the end).
      mma_scores_tile<S, T, D>(acc, sc, tK, lane);
      __syncthreads();
      cur = next;
    }
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int r = r0 + 8 * h;
    if (r >= qt.q_len) continue;
    T* row = dq + (qt.qt0 + r) * D;
#pragma unroll
    for (int nt = 0; nt < D / 8; ++nt)
      *reinterpret_cast<uint32_t*>(row + nt * 8 + c0) =
          pack<T>(acc[nt][2 * h] * p.scale, acc[nt][2 * h + 1] * p.scale);
  }
}

// ---- backward: dk, dv -------------------------------------------------------------------------

// Queries per inner chunk of the dk/dv kernel: 64 for D = 64; 32 for D = 128, where the two
// 16 x 128 accumulators already take 128 registers per thread.
template <int D>
constexpr int kChunkQ = D <= 64 ? 64 : 32;

template <typename T, int D, bool kDq, bool kWg = false>
constexpr size_t dkdv_smem() {
  // kWg adds the f32 dQ staging tile of the bulk reduce at D = 64: 76800 bytes in all, which is
  // exactly 3 CTAs per SM (with the 1 KB the driver reserves per CTA, 3 x 77824 = 228 KB). At
  // D = 128 the step's own Q and dO tiles take the staging (kStageInTiles), so two CTAs fit an SM.
  return size_t(6 * kTile * kStride<D, kWg>) * sizeof(T) + 2 * kTile * (2 * sizeof(float) + sizeof(uint64_t)) +
         (kDq ? size_t(kTile * kStride<kTile, kWg>) * sizeof(T) : 0) +
         (kWg ? 1024 + (D == 64 ? kTile * D * sizeof(float) : 0) : 0);
}

// dv = sum P^T dO and dk = scale * sum dS^T Q over the query tiles of the key block's CSC list;
// kDq: also p.dq_acc += dS K for each of those query tiles. kWg: the products on wgmma (sm_90a,
// D = 64 or 128: at 128 tiles of two 64-column halves as in the forward, dK and dV two 64 x 64
// accumulators each): five with kDq, four without (the deterministic pass, whose dq kernel is
// mma.sync).
// kGather: a residue-class segment on tensors in token order (q, k, v, dout, lse, delta read
// through p.map), which adds its dk, dv into their rows (p.dq_acc stays in the segment's order).
template <typename T, int D, bool kDq, bool kWg = false, bool kGather = false>
__global__ void __launch_bounds__(kThreads, kWg && D == 64 ? 3 : 2) dkdv_kernel(const Params p) {
  static_assert(!kWg || D == 64 || D == 128);
  static_assert(!kGather || (kWg && kDq));
  constexpr int S = kStride<D, kWg>, KS = D / 16, QC = kWg ? kTile : kChunkQ<D>, NT = QC / 8,
                SDS = kStride<kTile, kWg>, kHalves = D / 64;
  // The step's dQ staged in its own Q and dO tiles (free once dK's and dV's products are done)
  // rather than a tile of its own; the next prefetch into them waits for the reduce to read them.
  constexpr bool kStageInTiles = kWg && kDq && D == 128;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  unsigned char* smem = kWg ? align_1024(smem_raw) : smem_raw;
  T* sK = reinterpret_cast<T*>(smem);
  T* sV = sK + kTile * S;
  T* sQ = sV + kTile * S;       // [2][64][S]
  T* sdO = sQ + 2 * kTile * S;  // [2][64][S]
  float* sLse = reinterpret_cast<float*>(sdO + 2 * kTile * S);  // [2][64]
  float* sDelta = sLse + 2 * kTile;                              // [2][64]
  uint64_t* sMask = reinterpret_cast<uint64_t*>(sDelta + 2 * kTile);  // [2][64]
  T* sdS = reinterpret_cast<T*>(sMask + 2 * kTile);  // kDq: [64 keys][SDS], dS^T (1024-aligned)
  float* sdQ = reinterpret_cast<float*>(sdS + kTile * SDS);  // kWg, D = 64: [64 queries][D] f32, dQ to reduce

  const Segment& s = p.s;
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const TileLoader<D, kWg> load(tid);
  // CTAs in (batch x head, chunk, key tile) order: the CTAs resident at once share a few heads'
  // q and dO in L2 (chunk-major order had every head's in flight, and thrashed it).
  const int64_t n_tiles = (s.n_keys + kTile - 1) / kTile, t = int64_t(blockIdx.x) % n_tiles;
  const int64_t chunk = int64_t(blockIdx.x) / n_tiles % p.kv_chunks, bh = int64_t(blockIdx.x) / n_tiles / p.kv_chunks;
  const int64_t head = bh % p.H;
  const int64_t j = t * kTile / s.block_k, kt0 = t * kTile;
  const int kv_len = clamp_len(min((j + 1) * s.block_k, s.n_keys) - kt0);
  const int qtiles = int(s.block_q / kTile);
  const int qt_log2 = qtiles == 2 ? 1 : 0;  // blocks are 64 or 128 (unsupported() sends others away)
  const int64_t base = bh * p.N * D, kbase = bh * p.Nk * D;
  const T* k = static_cast<const T*>(p.k) + kbase;
  const T* v = static_cast<const T*>(p.v) + kbase;
  // K and V first: their loads need no list, so they overlap the list's reads below.
  if constexpr (kGather) {
    load(sK, k, sV, v, p.map, kt0, kv_len);
    // The dk, dv rows the epilogue adds into, towards L2 now: read then, they were the kernel's
    // longest stall (a quarter of its warp stall samples at 16K on the H200).
    if (tid < 2 * kTile && (tid & (kTile - 1)) < kv_len)
      prefetch_l2(static_cast<const T*>(tid < kTile ? p.dk : p.dv) + kbase + p.map(kt0 + (tid & (kTile - 1))) * D);
  } else {
    load(sK, k + kt0 * D, kv_len, k);
    load(sV, v + kt0 * D, kv_len, v);
  }
  cp_async_commit();
  const int64_t* cp = col_ptr_of(s, head);
  // This CTA's chunk of the list (chunk_steps is even, so a chunk starts on a query block).
  const int64_t x0 = chunk * p.chunk_steps, first = cp[j] + x0 / qtiles;
  const int64_t n_steps = min((cp[j + 1] - cp[j]) * qtiles - x0, p.chunk_steps);
  const bool split = p.dk_acc != nullptr;  // dK, dV added into f32 sums (split lists, gathered keys)
  if (n_steps <= 0) cp_async_wait<0>();  // the copies land before the CTA's shared memory goes
  if (split && n_steps <= 0) return;  // the accumulators hold this chunk's zeros already
  const T* q = static_cast<const T*>(p.q) + base;
  const T* dout = static_cast<const T*>(p.dout) + base;
  const float* lse = p.lse2_in + bh * p.N;
  const float* delta = p.delta + bh * p.N;
  T* dk = static_cast<T*>(p.dk) + kbase;
  T* dv = static_cast<T*>(p.dv) + kbase;
  const int kr0 = w * 16 + (lane >> 2), c0 = 2 * (lane & 3);  // this thread's keys kr0, kr0 + 8

  // Step x of the CSC list: entry at first + x / qtiles, query tile x % qtiles of its block. Its
  // fields are read at one index (csc_kind, csc_moff: no load waits on the entry's index).
  auto step = [&](int64_t x) {
    const int64_t at = first + (x >> qt_log2);
    Step st;
    st.e = -1;  // (not needed)
    st.i = s.row_idx[at];
    st.j = j;
    st.qt0 = st.i * s.block_q + (x & qt_log2) * kTile;
    st.q_len = clamp_len(min((st.i + 1) * s.block_q, p.N) - st.qt0);
    st.kt0 = kt0;
    st.kv_len = kv_len;
    st.kind = s.csc_kind[at];
    st.moff = s.csc_moff[at];
    return st;
  };
  auto prefetch = [&](const Step& st, int buf) {
    if constexpr (kGather) {
      load(sQ + buf * kTile * S, q, sdO + buf * kTile * S, dout, p.map, st.qt0, st.q_len);
    } else {
      load(sQ + buf * kTile * S, q + st.qt0 * D, st.q_len, q);
      load(sdO + buf * kTile * S, dout + st.qt0 * D, st.q_len, dout);
    }
    if constexpr (kGather) {
      const int r = tid & (kTile - 1);  // lse of row r (threads 0 .. 63), delta (64 .. 127)
      const int64_t at = r < st.q_len ? p.map(st.qt0 + r) : 0;
      cp_async4(smem_u32((tid < kTile ? sLse : sDelta) + buf * kTile + r), (tid < kTile ? lse : delta) + at, r < st.q_len);
    } else if (tid < kTile) {
      cp_async4(smem_u32(sLse + buf * kTile + tid), tid < st.q_len ? lse + st.qt0 + tid : lse, tid < st.q_len);
    } else {
      const int r = tid - kTile;
      cp_async4(smem_u32(sDelta + buf * kTile + r), r < st.q_len ? delta + st.qt0 + r : delta, r < st.q_len);
    }
    // (The mask slot was last read by step x - 1, before the barrier that ended it.)
    if (tid < kTile) stage_mask(s, st, tid, sMask + buf * kTile + tid);
    cp_async_commit();
  };

  // wgmma descriptors, computed once (see the forward).
  const uint64_t dKd = kWg ? wg_desc(smem_u32(sK)) : 0, dVd = kWg ? wg_desc(smem_u32(sV)) : 0,
                 dQ0 = kWg ? wg_desc(smem_u32(sQ)) : 0, ddO0 = kWg ? wg_desc(smem_u32(sdO)) : 0,
                 dSd = kWg ? wg_desc(smem_u32(sdS)) : 0;

  float gk[D / 8][4], gv[D / 8][4];
#pragma unroll
  for (int nt = 0; nt < D / 8; ++nt)
#pragma unroll
    for (int x2 = 0; x2 < 4; ++x2) gk[nt][x2] = gv[nt][x2] = 0.f;

  // Up to here only inputs were read (K, V, the layout): lse2, delta and the zeroed dq sums come
  // from the kernel before, which a dependent launch may still be running.
  wait_for_prior_grid();
  let_dependents_start();
  if (n_steps > 0) {
    Step cur = step(0);
    prefetch(cur, 0);

    for (int64_t x = 0; x < n_steps; ++x) {
      const int buf = int(x & 1);
      Step next = cur;
      if (x + 1 < n_steps) {
        if constexpr (kStageInTiles) {  // step x - 1's dQ staging is in buffer buf ^ 1
          if (lane == 0) bulk_wait_read();
          __syncthreads();
        }
        next = step(x + 1);
        prefetch(next, buf ^ 1);
        cp_async_wait<1>();
      } else {
        cp_async_wait<0>();
      }
      if constexpr (kWg) fence_proxy_async();
      __syncthreads();
      const T* tQ = sQ + buf * kTile * S;
      const T* tdO = sdO + buf * kTile * S;
      const float* tLse = sLse + buf * kTile;
      const float* tDelta = sDelta + buf * kTile;
      const bool masked = cur.masked();
      const uint64_t* tMask = sMask + buf * kTile;

      uint32_t pa[kWg ? 4 : 1][4], da[kWg ? 4 : 1][4];  // wgmma's register A operands of dV, dK
#pragma unroll
      for (int qc = 0; qc < kTile / QC; ++qc) {
        // S^T = K Q^T and dP^T = V dO^T: 16 keys x QC queries per warp.
        float st[NT][4], dpt[NT][4];  // wgmma's first products overwrite them (kZero)
        if constexpr (!kWg) {
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int x2 = 0; x2 < 4; ++x2) st[nt][x2] = dpt[nt][x2] = 0.f;
        }
        if constexpr (kWg) {
          const uint64_t dQb = dQ0 + buf * kHalves * kDescTile, ddOb = ddO0 + buf * kHalves * kDescTile;
          wg_fence();
          wg_mma_ss<T, 0, 0, true>(st, dKd, dQb);
          wg_mma_ss<T, 0, 0, true>(dpt, dVd, ddOb);
#pragma unroll
          for (int ks = 1; ks < KS; ++ks) {
            wg_mma_ss<T, 0, 0>(st, dKd + k_step(ks), dQb + k_step(ks));
            wg_mma_ss<T, 0, 0>(dpt, dVd + k_step(ks), ddOb + k_step(ks));
          }
          wg_commit();
          wg_wait<0>();
        } else {
#pragma unroll
          for (int ks = 0; ks < KS; ++ks) {
            uint32_t a[4];
            load_a<S>(a, sK, w, ks, lane);
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
              uint32_t b[4];
              load_b<S>(b, tQ + qc * QC * S, np, ks, lane);
              mma<T>(st[2 * np], a, b[0], b[1]);
              mma<T>(st[2 * np + 1], a, b[2], b[3]);
            }
            load_a<S>(a, sV, w, ks, lane);
#pragma unroll
            for (int np = 0; np < NT / 2; ++np) {
              uint32_t b[4];
              load_b<S>(b, tdO + qc * QC * S, np, ks, lane);
              mma<T>(dpt[2 * np], a, b[0], b[1]);
              mma<T>(dpt[2 * np + 1], a, b[2], b[3]);
            }
          }
        }
        // P^T where allowed (the mask words are per query, a bit per key) and dS^T; unmasked
        // steps skip the mask test.
        auto to_ds = [&](auto masked_tag) {
          constexpr bool kMasked = decltype(masked_tag)::value;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int x1 = 0; x1 < 2; ++x1) {
              const int qi = qc * QC + nt * 8 + c0 + x1;
              const float l2 = tLse[qi];
              const float dl = tDelta[qi];
              uint64_t qmask = 0;
              if constexpr (kMasked) qmask = tMask[qi] >> kr0;
#pragma unroll
              for (int h = 0; h < 2; ++h) {
                const int x2 = 2 * h + x1;
                float pr = exp2_fast(fmaf(st[nt][x2], p.scale_log2, -l2));
                if constexpr (kMasked) {
                  if (!((qmask >> (8 * h)) & 1u)) pr = 0.f;
                }
                st[nt][x2] = pr;
                dpt[nt][x2] = pr * (dpt[nt][x2] - dl);
              }
            }
        };
        if (masked) {
          to_ds(std::true_type());
        } else {
          to_ds(std::false_type());
        }
        if constexpr (kDq) {  // dS^T as T, the values dK's product below rounds to as well
          // Swizzled (kWg, one chunk of 64 queries): row r's 16-byte chunk nt sits at chunk
          // nt ^ (r % 8), and r % 8 = lane / 4 for both of the thread's rows, so the address is
          // a fixed base and an XOR per chunk.
          unsigned char* row0 = reinterpret_cast<unsigned char*>(sdS) + (kWg ? kr0 * 128 + 2 * c0 : 0);
          const int xs = (lane >> 2) << 4;
#pragma unroll
          for (int nt = 0; nt < NT; ++nt)
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              const int r = kr0 + 8 * h, c = qc * QC + nt * 8 + c0;
              void* at = kWg ? static_cast<void*>(row0 + h * 8 * 128 + ((nt << 4) ^ xs)) : sdS + r * SDS + c;
              *static_cast<uint32_t*>(at) = pack<T>(dpt[nt][2 * h], dpt[nt][2 * h + 1]);
            }
        }
        // dV += P^T dO and dK += dS^T Q over the chunk's queries. On wgmma they stay in flight
        // (pa, da live until the wait) while dS^T is published and dQ = dS K is issued below.
        if constexpr (kWg) {
#pragma unroll
          for (int kk = 0; kk < 4; ++kk) {
            acc_to_a<T>(pa[kk], st, kk);
            acc_to_a<T>(da[kk], dpt, kk);
          }
          const uint64_t dQb = dQ0 + buf * kHalves * kDescTile, ddOb = ddO0 + buf * kHalves * kDescTile;
          wg_fence();
#pragma unroll
          for (int hf = 0; hf < kHalves; ++hf) {  // dV's and dK's columns 64 hf .. from half hf
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
              wg_mma_rs<T, 1>(half_of(gv, hf), pa[kk], ddOb + hf * kDescTile + kk * kDescRows16);
              wg_mma_rs<T, 1>(half_of(gk, hf), da[kk], dQb + hf * kDescTile + kk * kDescRows16);
            }
          }
          wg_commit();
          if constexpr (!kDq) wg_wait<0>();  // no dQ to overlap: pa, da and the tiles are free after
        } else {
#pragma unroll
          for (int kk = 0; kk < QC / 16; ++kk) {
            uint32_t pa[4], da[4];
            acc_to_a<T>(pa, st, kk);
            acc_to_a<T>(da, dpt, kk);
#pragma unroll
            for (int d2 = 0; d2 < D / 16; ++d2) {
              uint32_t b[4];
              load_b_trans<S>(b, tdO + qc * QC * S, kk, d2, lane);
              mma<T>(gv[2 * d2], pa, b[0], b[1]);
              mma<T>(gv[2 * d2 + 1], pa, b[2], b[3]);
              load_b_trans<S>(b, tQ + qc * QC * S, kk, d2, lane);
              mma<T>(gk[2 * d2], da, b[0], b[1]);
              mma<T>(gk[2 * d2 + 1], da, b[2], b[3]);
            }
          }
        }
      }
      if constexpr (kDq) {
        // dQ of the step's query tile: warp w takes queries 16 w .. 16 w + 15 over all 64 keys,
        // 64 columns of D at a time (bounds the live accumulators), and adds them into dq_acc.
        if constexpr (kWg) fence_proxy_async();
        __syncthreads();  // every warp's dS^T rows are in sdS
        float* dq_rows = kWg ? nullptr : p.dq_acc + bh * p.N * D + cur.qt0 * D;
        const int q0 = w * 16 + (lane >> 2);
#pragma unroll
        for (int half = 0; half < D / 64; ++half) {
          float dqa[8][4];  // wgmma's first product overwrites it (kZero)
          if constexpr (!kWg) {
#pragma unroll
            for (int nt = 0; nt < 8; ++nt) dqa[nt][0] = dqa[nt][1] = dqa[nt][2] = dqa[nt][3] = 0.f;
          }
          if constexpr (kWg) {  // A = dS from dS^T (M-major), B = K's half (N-major): both transposed
            const uint64_t dKh = dKd + half * kDescTile;
            wg_fence();
            wg_mma_ss<T, 1, 1, true>(dqa, dSd, dKh);
#pragma unroll
            for (int kk = 1; kk < 4; ++kk) wg_mma_ss<T, 1, 1>(dqa, dSd + kk * kDescRows16, dKh + kk * kDescRows16);
            wg_commit();
            wg_wait<0>();  // dV and dK's group too: pa and da are free again
          } else {
#pragma unroll
            for (int kk = 0; kk < 4; ++kk) {
              uint32_t a[4];
              load_a_trans<SDS>(a, sdS, w, kk, lane);
#pragma unroll
              for (int d2 = 0; d2 < 4; ++d2) {
                uint32_t b[4];
                load_b_trans<S>(b, sK, kk, half * 4 + d2, lane);
                mma<T>(dqa[2 * d2], a, b[0], b[1]);
                mma<T>(dqa[2 * d2 + 1], a, b[2], b[3]);
              }
            }
          }
          if constexpr (kWg) {
            // The warp's 16 rows into its 4 KB of staging, then one bulk reduce-add of them into
            // the same 4 KB of dq_acc, whose sums are tile-major in the accumulator layout
            // (dq_tiled, tile_round_kernel): 8 runs of 512 bytes, one 16-byte store per thread
            // each, which cover every bank once (row-major, the 8 rows of a store fell in the
            // same 8 banks). Rows past the sequence add zeros there (their P is 0). At D = 128 a
            // warp's 16 rows are [16 n-tiles][lane][4]: half h is its 4 KB from h * 4 KB.
            float* mine;
            if constexpr (kStageInTiles) {  // warps 0, 1 in the step's Q tile, 2, 3 in its dO tile
              mine = reinterpret_cast<float*>((w < 2 ? sQ : sdO) + buf * kTile * S) + (w & 1) * 16 * D + half * 8 * 128;
            } else {
              mine = sdQ + w * 16 * D;
              if (lane == 0) bulk_wait_read();  // the warp's previous reduce has read these rows
              __syncwarp();
            }
#pragma unroll
            for (int nt = 0; nt < 8; ++nt)
              *reinterpret_cast<float4*>(mine + (nt * 32 + lane) * 4) = make_float4(dqa[nt][0], dqa[nt][1], dqa[nt][2], dqa[nt][3]);
            fence_proxy_async();
            __syncwarp();
            float* tile = p.dq_acc + (bh * ((p.N + kTile - 1) / kTile) + cur.qt0 / kTile) * kTile * D;
            if (lane == 0 && w * 16 < cur.q_len)
              bulk_reduce_add_f32(tile + w * 16 * D + half * 8 * 128, mine, 16 * 64 * sizeof(float));
          } else {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
              if (q0 + 8 * h >= cur.q_len) continue;
              float* row = dq_rows + (q0 + 8 * h) * D + half * 64 + c0;
#pragma unroll
              for (int nt = 0; nt < 8; ++nt) atomic_add2(row + nt * 8, dqa[nt][2 * h], dqa[nt][2 * h + 1]);
            }
          }
        }
      }
      __syncthreads();
      cur = next;
    }
  }

  if (split) {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = kr0 + 8 * h;
      if (r >= kv_len) continue;
      float* ka = p.dk_acc + kbase + (kt0 + r) * D + c0;
      float* va = p.dv_acc + kbase + (kt0 + r) * D + c0;
#pragma unroll
      for (int nt = 0; nt < D / 8; ++nt) {
        atomic_add2(ka + nt * 8, gk[nt][2 * h], gk[nt][2 * h + 1]);
        atomic_add2(va + nt * 8, gv[nt][2 * h], gv[nt][2 * h + 1]);
      }
    }
  } else {
    // dK and dV through shared memory, in the Q and dO tiles (free: the loop ended on a barrier
    // after every product; without steps, the K and V copies were waited for above; with the dQ
    // staging in them, once its last reduces have read it).
    if constexpr (kStageInTiles) {
      if (lane == 0) bulk_wait_read();
      __syncthreads();
    }
    T* stage_k = sQ;
    T* stage_v = sQ + kTile * (D + 8);
    [[maybe_unused]] MappedRows<T, D> rows;
    if constexpr (kGather) rows.load(dk, dv, p.map, kt0, kv_len, tid);
    stage_rows<T, D>(stage_k, gk, p.scale, p.scale, w, lane);
    stage_rows<T, D>(stage_v, gv, 1.f, 1.f, w, lane);
    __syncthreads();
    if constexpr (kGather) {
      rows.add(dk, stage_k, dv, stage_v, tid);
    } else {
      copy_rows<T, D>(dk + kt0 * D, stage_k, kv_len, tid);
      copy_rows<T, D>(dv + kt0 * D, stage_v, kv_len, tid);
    }
  }
  if constexpr (kWg) {
    if (lane == 0) bulk_wait_all();  // the last reduce-add is done before the CTA's memory goes
  }
}

// lse in log2 units, as the dk/dv kernel takes it: lse log2(e), +inf where lse = -inf (a row that
// sees nothing: its P = 2^(s - inf) = 0), so its exponent is one FMA per element.
__device__ __forceinline__ float lse_in_log2(float lse) { return lse == -INFINITY ? INFINITY : lse * kLog2e; }

// delta[r] = rowsum(dO * O) of row r (the softmax backward's row term), D / 8 threads per row, each
// 16 bytes of both; and lse2[r] = lse_in_log2(lse[r]) (one launch for the backward's row terms).
// Thread x also zeroes floats 8 x .. 8 x + 7 of `zero` (n_zero of them, a multiple of 8; the grid
// covers them): the fused backward's dq sums, here rather than in a launch of their own (at 16K
// on the H200 a memset of them took 20 us, about as long as this kernel).
template <typename T, int D>
__global__ void delta_kernel(int64_t rows, const T* __restrict__ o, const T* __restrict__ dout, float* __restrict__ delta,
                             const float* __restrict__ lse, float* __restrict__ lse2, float* __restrict__ zero,
                             int64_t n_zero) {
  constexpr int kLanes = D / 8;
  // Blocks in reverse: the last rows read and the last sums zeroed, the first heads', are still in
  // L2 when the dk/dv kernel, which walks the heads in order, starts (and the first rows read are
  // the last heads', whose o the forward has just written).
  const int64_t x = int64_t(gridDim.x - 1 - blockIdx.x) * blockDim.x + threadIdx.x, r = x / kLanes;
  wait_for_prior_grid();  // (row_terms launches it dependent: o and dout may come from the kernel before)
  let_dependents_start();
  if (x * 8 < n_zero) {
    float4* z = reinterpret_cast<float4*>(zero + x * 8);
    z[0] = z[1] = make_float4(0.f, 0.f, 0.f, 0.f);
  }
  float sum = 0.f;
  if (r < rows) {
    const uint4 a = reinterpret_cast<const uint4*>(o)[x], b = reinterpret_cast<const uint4*>(dout)[x];
    const T* av = reinterpret_cast<const T*>(&a);
    const T* bv = reinterpret_cast<const T*>(&b);
#pragma unroll
    for (int i = 0; i < 8; ++i) sum = fmaf(convert<float>(av[i]), convert<float>(bv[i]), sum);
  }
#pragma unroll
  for (int off = kLanes / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (r < rows && x % kLanes == 0) {
    delta[r] = sum;
    lse2[r] = lse_in_log2(lse[r]);
  }
}

// out = lse_in_log2(lse), n rows.
__global__ void lse_log2_kernel(int64_t n, const float* __restrict__ lse, float* __restrict__ out) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = lse_in_log2(lse[i]);
}

// From the f32 sums of dk (rows 0 .. rows - 1 over every (batch, head), scaled) and of dv (the next
// rows, unscaled), 4 elements a thread: their rows r of dk, dv, (bh, r % k_rows) written, or with
// add_to, added into rows (bh, add_to[r % k_rows]) of tensors of out_rows rows (a segment over
// gathered keys: add_to is injective, so each destination has one writer).
template <typename T, int D>
__global__ void kv_sums_kernel(int64_t rows, int64_t k_rows, int64_t out_rows, float scale, const float* __restrict__ acc,
                               T* __restrict__ dk, T* __restrict__ dv, const int64_t* __restrict__ add_to) {
  const int64_t x = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4;
  if (x >= 2 * rows * D) return;
  const bool is_v = x >= rows * D;
  const int64_t e = is_v ? x - rows * D : x, row = e / D, bh = row / k_rows, r = row % k_rows;
  const float f = is_v ? 1.f : scale;
  const float4 a = *reinterpret_cast<const float4*>(acc + x);
  float y[4] = {a.x * f, a.y * f, a.z * f, a.w * f};
  uint2* at = reinterpret_cast<uint2*>((is_v ? dv : dk) + (bh * out_rows + (add_to ? add_to[r] : r)) * D + e % D);
  if (add_to) {
    const uint2 old = *at;
    const T* ov = reinterpret_cast<const T*>(&old);
#pragma unroll
    for (int i = 0; i < 4; ++i) y[i] += convert<float>(ov[i]);
  }
  *at = make_uint2(pack<T>(y[0], y[1]), pack<T>(y[2], y[3]));
}

// out = T(scale * acc), n elements (a multiple of 4: D is).
template <typename T>
__global__ void acc_round_kernel(int64_t n, float scale, const float* __restrict__ acc, T* __restrict__ out) {
  for (int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 4; i < n; i += int64_t(gridDim.x) * blockDim.x * 4) {
    const float4 a = *reinterpret_cast<const float4*>(acc + i);
    uint2 r;
    r.x = pack<T>(a.x * scale, a.y * scale);
    r.y = pack<T>(a.z * scale, a.w * scale);
    *reinterpret_cast<uint2*>(out + i) = r;
  }
}

// dq (B, H, N, D) = T(scale * sums) from the wgmma backward's tile-major sums: per 64-row query
// tile (bh * n_tiles + t), per warp's 16 rows, [n-tile nt][lane][4], the thread's accumulators
// (rows lane / 4 and + 8, columns 8 nt + 2 (lane % 4) and + 1). One CTA of 128 threads per tile:
// 16-byte reads of the sums in order, a transpose through shared memory (rows of D + 8 floats: the
// 8-byte stores of a half warp fall in different banks), 16-byte row writes of dq.
// kMapAdd: the sums of a residue-class segment (in its order) are added into dq's rows map(row)
// (token order), which the other segments have written.
template <typename T, bool kMapAdd = false, int D = 64>
__global__ void __launch_bounds__(128) tile_round_kernel(int64_t N, int64_t n_tiles, float scale,
                                                         const float* __restrict__ acc, T* __restrict__ out, RowMap map) {
  constexpr int RS = D + 8, NT = D / 8;
  __shared__ __align__(16) float tile[kTile * RS];
  const int tid = threadIdx.x;
  // Tiles in reverse: the dk/dv kernel walks the heads in order, so its last heads' sums are the
  // ones still in L2.
  const unsigned tile_at = gridDim.x - 1 - blockIdx.x;
  const int64_t bh = tile_at / n_tiles, t = tile_at % n_tiles;
  wait_for_prior_grid();  // the sums come from the dk/dv kernel (launched dependent after it)
  let_dependents_start();
  const float4* src = reinterpret_cast<const float4*>(acc) + int64_t(tile_at) * kTile * D / 4;
#pragma unroll
  for (int k = 0; k < kTile * D / 4 / 128; ++k) {
    const int i = k * 128 + tid;  // chunk i: warp region i / (32 NT), n-tile i / 32 % NT, lane i % 32
    const float4 a = src[i];
    const int lane = i % 32, r = i / (32 * NT) * 16 + lane / 4, c = i / 32 % NT * 8 + 2 * (lane % 4);
    *reinterpret_cast<float2*>(tile + r * RS + c) = make_float2(a.x, a.y);
    *reinterpret_cast<float2*>(tile + (r + 8) * RS + c) = make_float2(a.z, a.w);
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < kTile * NT / 128; ++k) {
    const int i = k * 128 + tid, r = i / NT, c = i % NT * 8;  // row r, columns c .. c + 7
    const int64_t row = t * kTile + r;
    if (row >= N) continue;
    const float4 a = *reinterpret_cast<const float4*>(tile + r * RS + c);
    const float4 b = *reinterpret_cast<const float4*>(tile + r * RS + c + 4);
    float x[8] = {a.x * scale, a.y * scale, a.z * scale, a.w * scale, b.x * scale, b.y * scale, b.z * scale, b.w * scale};
    uint4* at = reinterpret_cast<uint4*>(out + (bh * N + (kMapAdd ? map(row) : row)) * D + c);
    if constexpr (kMapAdd) {
      const uint4 old = *at;
      const T* ov = reinterpret_cast<const T*>(&old);
#pragma unroll
      for (int i = 0; i < 8; ++i) x[i] += convert<float>(ov[i]);
    }
    *at = make_uint4(pack<T>(x[0], x[1]), pack<T>(x[2], x[3]), pack<T>(x[4], x[5]), pack<T>(x[6], x[7]));
  }
}
std::atomic<int64_t> g_split_launches{0};

// The fused backward's split of long CSC lists (Params::kv_chunks): a launch takes as long as its
// longest CTA, and some layouts give one key tile far more of the work than a CTA slot's share
// (fixed attention's summary keys: every later query sees them). Lists longer than half a slot's
// share run as chunks.
void split_columns(Params& p, const Segment& s, int64_t bh, int ctas_per_sm) {
  int dev = 0, sms = 0;
  SPARTA_CUDA_CHECK("sparse_attention_backward", cudaGetDevice(&dev));
  SPARTA_CUDA_CHECK("sparse_attention_backward", cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  const int64_t steps_per_entry = (s.block_q / kTile) * (s.block_k / kTile);  // over the block's key tiles
  const int64_t total = bh / s.n_layouts * s.total_col_entries * steps_per_entry;
  const int64_t longest = s.max_col_entries * (s.block_q / kTile);  // one key tile's list
  const int64_t share = total / (int64_t(sms) * ctas_per_sm);
  if (longest <= std::max<int64_t>(16, share / 2)) return;
  // Chunks of an eighth of a share: more CTAs per head, so fewer heads' q and dO in flight at once
  // (fixed attention at 16K on the H200: 1.55 ms fwd+bwd with half-share chunks, 1.44 with these;
  // 1.135 / 1.148 / 1.163 / 1.434 ms with these, 40, 64 and 128 steps, on 2026-12-04's kernels).
  const int64_t chunk = std::max<int64_t>(16, share / 8) / 2 * 2;
  p.chunk_steps = chunk;
  p.kv_chunks = (longest + chunk - 1) / chunk;
  ++g_split_launches;
}

// out = T(scale * acc), n elements.
template <typename T>
void round_acc(int64_t n, float scale, const float* acc, const Tensor& out, const char* op) {
  const int64_t blocks = std::min<int64_t>((n / 4 + 255) / 256, 132 * 16);
  if (blocks == 0) return;
  acc_round_kernel<T><<<unsigned(blocks), 256, 0, stream()>>>(n, scale, acc, static_cast<T*>(out.data_ptr()));
  SPARTA_CUDA_LAUNCH_CHECK(op);
}

// Whether the fused backward's dq sums are tile-major (the wgmma kernel's, tile_round_kernel) rather
// than row-major, and their size in floats: whole 64-row tiles when tile-major.
bool dq_tiled(const Tensor& q) { return use_wgmma(q.shape(3)); }
int64_t dq_sums_size(const Tensor& q) {
  if (!dq_tiled(q)) return q.numel();
  return q.shape(0) * q.shape(1) * (q.shape(2) + kTile - 1) / kTile * kTile * q.shape(3);
}

// dq = T(scale * sums), sums in dq_tiled's layout.
template <typename T>
void round_sums(const float* sums, float scale, const Tensor& dq, const char* op) {
  if (!dq_tiled(dq)) return round_acc<T>(dq.numel(), scale, sums, dq, op);
  const int64_t N = dq.shape(2), n_tiles = (N + kTile - 1) / kTile, tiles = dq.shape(0) * dq.shape(1) * n_tiles;
  if (tiles == 0) return;
  SPARTA_CHECK(tiles < (int64_t(1) << 31), op, "too many tiles for one launch: ", tiles);
  auto kernel = dq.shape(3) == 64 ? tile_round_kernel<T, false, 64> : tile_round_kernel<T, false, 128>;
  launch_dependent(op, kernel, dim3(unsigned(tiles)), dim3(128), 0, stream(), N, n_tiles, scale, sums,
                   static_cast<T*>(dq.data_ptr()), RowMap{});
  SPARTA_CUDA_LAUNCH_CHECK(op);
}
}  // namespace

int64_t split_backward_launches() { return g_split_launches.load(); }
Tensor row_terms(const Tensor& o, const Tensor& dout, const Tensor& lse, const Tensor& delta, const Tensor& sums) {
  const char* op = "sparse_attention_backward";
  const Shape4 sh = shape_of(o);
  const int64_t rows = sh.B * sh.H * sh.N, n_zero = sums.defined() ? sums.numel() : 0;
  SPARTA_CHECK(n_zero % 8 == 0, op, "the dq sums are not whole rows");
  const int64_t threads = std::max(rows * (sh.D / 8), n_zero / 8);
  Tensor lse2 = Tensor::empty({rows}, DType::f32, o.device());
  if (threads == 0) return lse2;
  dispatch(o.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    launch_dependent(op, delta_kernel<T, D>, dim3(unsigned((threads + 255) / 256)), dim3(256), 0, stream(), rows,
                     static_cast<const T*>(o.data_ptr()), static_cast<const T*>(dout.data_ptr()),
                     static_cast<float*>(delta.data_ptr()), static_cast<const float*>(lse.data_ptr()),
                     static_cast<float*>(lse2.data_ptr()), n_zero ? static_cast<float*>(sums.data_ptr()) : nullptr,
                     n_zero);
  });
  SPARTA_CUDA_LAUNCH_CHECK(op);
  return lse2;
}

Tensor lse_log2(const Tensor& lse) {
  Tensor out = Tensor::empty({lse.numel()}, DType::f32, lse.device());
  const int64_t rows = lse.numel();
  if (rows > 0) {
    lse_log2_kernel<<<unsigned((rows + 255) / 256), 256, 0, stream()>>>(rows, static_cast<const float*>(lse.data_ptr()),
                                                                        static_cast<float*>(out.data_ptr()));
    SPARTA_CUDA_LAUNCH_CHECK("sparse_attention_backward");
  }
  return out;
}

Tensor dq_sums(const Tensor& q, bool zeroed) {
  Tensor acc = Tensor::empty({dq_sums_size(q)}, DType::f32, q.device());
  if (zeroed)
    SPARTA_CUDA_CHECK("sparse_attention_backward",
                      cudaMemsetAsync(acc.data_ptr(), 0, size_t(acc.numel()) * sizeof(float), stream()));
  return acc;
}

Tensor backward_dq_sums(const Tensor& q) { return deterministic_algorithms() ? Tensor() : dq_sums(q, false); }

void round_dq_sums(const Tensor& sums, double scale, const Tensor& dq) {
  by_dtype(dq.dtype(), "sparse_attention_backward", [&](auto tag) {
    round_sums<decltype(tag)>(static_cast<const float*>(sums.data_ptr()), float(scale), dq, "sparse_attention_backward");
  });
}

namespace {
// The backward's tensors into p (whose q, k, v are set); lse2: lse2_in, or lse_log2(lse) made here,
// which the caller keeps until its launches are queued.
void set_backward(Params& p, const Tensor& lse, const Tensor& delta, const Tensor& dout, const Tensor& dq,
                  const Tensor& dk, const Tensor& dv, const Tensor& lse2_in, Tensor& lse2) {
  p.dout = dout.data_ptr();
  p.lse_in = static_cast<const float*>(lse.data_ptr());
  p.delta = static_cast<const float*>(delta.data_ptr());
  lse2 = lse2_in.defined() ? lse2_in : lse_log2(lse);
  p.lse2_in = static_cast<const float*>(lse2.data_ptr());
  p.dq = dq.data_ptr();
  p.dk = dk.data_ptr();
  p.dv = dv.data_ptr();
}
}  // namespace

void backward(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& lse,
              const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk, const Tensor& dv,
              const Tensor& lse2_in, const Tensor& dq_sum, const int64_t* add_to) {
  const char* op = "sparse_attention_backward";
  const Shape4 sh = shape_of(q);
  Params p = params_of(s, scale, q, k);
  p.q = q.data_ptr();
  p.k = k.data_ptr();
  p.v = v.data_ptr();
  Tensor lse2;
  set_backward(p, lse, delta, dout, dq, dk, dv, lse2_in, lse2);
  dispatch(q.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    SPARTA_CHECK(!add_to || !deterministic_algorithms(), op, "the deterministic backward writes dk, dv (no add_to)");
    if (deterministic_algorithms()) {
      const unsigned grid = grid_of(sh.B * sh.H, s.n_keys, op);
      if (use_wgmma(D)) {
        launch(dkdv_kernel<T, D, false, true>, grid, dkdv_smem<T, D, false, true>(), p, op);
      } else {
        launch(dkdv_kernel<T, D, false>, grid, dkdv_smem<T, D, false>(), p, op);
      }
      launch(dq_kernel<T, D>, grid_of(sh.B * sh.H, sh.N, op), dq_smem<T, D>(), p, op);
      return;
    }
    const bool wg = use_wgmma(D);
    const bool own_dq = !dq_sum.defined();
    const int64_t n = dq_sums_size(q), nk = sh.B * sh.H * s.n_keys * D;
    split_columns(p, s, sh.B * sh.H, wg && D == 64 ? 3 : 2);
    const bool kv_sums = p.kv_chunks > 1 || add_to;  // dK, dV through f32 sums
    Tensor acc = Tensor::empty({(own_dq ? n : 0) + (kv_sums ? 2 * nk : 0)}, DType::f32, q.device());
    float* sums = static_cast<float*>(acc.data_ptr());
    p.dq_acc = own_dq ? sums : static_cast<float*>(dq_sum.data_ptr());
    if (kv_sums) {
      p.dk_acc = sums + (own_dq ? n : 0);
      p.dv_acc = p.dk_acc + nk;
    }
    if (acc.numel() > 0)
      SPARTA_CUDA_CHECK(op, cudaMemsetAsync(sums, 0, size_t(acc.numel()) * sizeof(float), stream()));
    const unsigned grid = grid_of(sh.B * sh.H * p.kv_chunks, s.n_keys, op);
    if (wg) {
      launch(dkdv_kernel<T, D, true, true>, grid, dkdv_smem<T, D, true, true>(), p, op, true);
    } else {
      launch(dkdv_kernel<T, D, true>, grid, dkdv_smem<T, D, true>(), p, op);
    }
    if (own_dq) round_sums<T>(p.dq_acc, p.scale, dq, op);
    if (kv_sums) {  // dk and dv in one launch
      const int64_t rows = sh.B * sh.H * s.n_keys;
      kv_sums_kernel<T, D><<<unsigned((2 * rows * D / 4 + 255) / 256), 256, 0, stream()>>>(
          rows, s.n_keys, dk.shape(2), p.scale, p.dk_acc, static_cast<T*>(dk.data_ptr()), static_cast<T*>(dv.data_ptr()),
          add_to);
      SPARTA_CUDA_LAUNCH_CHECK(op);
    }
  });
}

void backward_in_place(const Segment& s, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                       const Tensor& lse, const Tensor& delta, const Tensor& dout, const Tensor& dq, const Tensor& dk,
                       const Tensor& dv, const Tensor& lse2_in) {
  const char* op = "sparse_attention_backward";
  SPARTA_CHECK(!deterministic_algorithms(), op, "the in-place backward is the fused one (it adds dq with atomics)");
  const Shape4 sh = shape_of(q);
  Params p = in_place_params(s, scale, q, k, v, op);
  Tensor lse2;
  set_backward(p, lse, delta, dout, dq, dk, dv, lse2_in, lse2);
  const Tensor sums = dq_sums(q);  // in the segment's order
  p.dq_acc = static_cast<float*>(sums.data_ptr());
  const int64_t n_tiles = (sh.N + kTile - 1) / kTile, tiles = sh.B * sh.H * n_tiles;
  SPARTA_CHECK(tiles < (int64_t(1) << 31), op, "too many tiles for one launch: ", tiles);
  dispatch(q.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    launch(dkdv_kernel<T, D, true, true, true>, grid_of(sh.B * sh.H, s.n_keys, op), dkdv_smem<T, D, true, true>(), p,
           op, true);
    launch_dependent(op, tile_round_kernel<T, true, D>, dim3(unsigned(tiles)), dim3(128), 0, stream(), sh.N, n_tiles,
                     p.scale, static_cast<const float*>(p.dq_acc), static_cast<T*>(dq.data_ptr()), p.map);
    SPARTA_CUDA_LAUNCH_CHECK(op);
  });
  count_in_place_launch();
}
}  // namespace sparta::cuda::flash
