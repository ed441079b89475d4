// Flash-decoding over a BlockLayout (attention_decode.h): a few queries against a long KV cache.
//
// One query row has too little work for one thread block at long cache lengths, and there are
// only B * H * Tq rows, so the keys a row selects are split across thread blocks (split-K):
// block (split, row) walks its share of the row's CSR entries over every segment, keeping an
// online softmax (running max m, sum l, unnormalised output in f32), and a second kernel merges
// the splits through their (m, l): o = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s.
//
// Inside a block, a group of G threads owns one key at a time: each thread holds a 16-byte chunk
// (or more) of the head dimension of q, loads the same chunk of the key's k and v rows, and the
// group reduces the dot product by shuffles. Each group keeps its own online softmax over the keys
// it saw; the groups merge through shared memory at the end. A group takes kUnroll keys per step.
// Where a thread's chunk is 16 bytes and one chunk covers the head dimension (bf16 and f16 up to
// 256, f32 up to 128), the step's k and v chunks go to shared memory as asynchronous copies
// (cp.async), each thread into its own slots, and the step kStages - 1 back is computed from
// them: the loads of kStages - 1 steps are in flight during the arithmetic, without registers
// held for them (loading into registers, a step's loads waited for the arithmetic of the one
// before, and the dense 64K batch-8 decode read 2.5 TB/s on an H200, DRAM 53% busy, 4 blocks per
// SM at 108 registers). Otherwise the step's loads go to registers, 2 kUnroll 16-byte loads (or
// element loads) per thread in flight before the first score is needed.
// An entry's block index and kind are loaded two entries ahead, gathered keys' positions a step
// ahead: no step waits for them before it can address its keys.
// Keys that the entry's kind or mask bits reject (or past the cache) are never loaded.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/cuda/async_copy.cuh"
#include "core/cuda/check.h"
#include "core/cuda/reduce.cuh"
#include "core/cuda/types.cuh"
#include "core/ops/attention/attention_decode.h"
#include "core/ops/attention/device_layout.cuh"

namespace sparta::cuda {
namespace {

using attn::BlockLayout;

constexpr int kThreads = 128;
constexpr int kUnroll = 4;
constexpr unsigned kFullMask = 0xffffffffu;

struct DecodeArgs {
  const Segment* segs;
  int n_segs;
  int64_t H, Tq, D, t0;
  int64_t ks0, ks1, ks2, vs0, vs1, vs2;  // cache strides in elements (batch, head, position)
  int n_splits;
  int group;   // G: threads per key, a power of two <= 32
  int chunks;  // head-dimension chunks of V elements
};

template <typename C>
__device__ __forceinline__ C exp_c(C x) {
  if constexpr (std::is_same_v<C, double>) {
    return ::exp(x);
  } else {
    return ::expf(x);
  }
}

// V elements at p as C: one 16-byte load when V elements are 16 bytes (the caller checked the
// alignment), else element by element.
template <int V, typename T, typename C>
__device__ __forceinline__ void load_chunk(const T* p, C (&x)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    const T* e = reinterpret_cast<const T*>(&raw);
#pragma unroll
    for (int i = 0; i < V; ++i) x[i] = convert<C>(e[i]);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) x[i] = convert<C>(p[i]);
  }
}

// V elements at p as they are: one 16-byte load when V elements are 16 bytes.
template <int V, typename T>
__device__ __forceinline__ void load_raw(const T* p, T (&x)[V]) {
  if constexpr (V * sizeof(T) == 16) {
    const uint4 raw = *reinterpret_cast<const uint4*>(p);
    memcpy(x, &raw, 16);
  } else {
#pragma unroll
    for (int i = 0; i < V; ++i) x[i] = p[i];
  }
}

template <typename T, typename C, int V, int NC>
constexpr bool kAsyncLoads = V * sizeof(T) == 16 && NC == 1;
constexpr int kStages = 3;
// The kernel's shared memory: the groups' (m, l) and outputs for their merge, and with
// kAsyncLoads the stages before it, in the same bytes (48 KB at kStages = 3: no opt-in needed).
template <typename T, typename C, int V, int NC>
size_t decode_smem(int n_groups, int64_t D) {
  const size_t merge = sizeof(C) * size_t(2 * n_groups + n_groups * D);
  return kAsyncLoads<T, C, V, NC> ? std::max(merge, size_t(kStages * kUnroll * 2 * kThreads * 16)) : merge;
}

// Query row `row` = (b, h, tq) of the grid's y; its split `blockIdx.x`. Writes the normalised
// output when there is one split, else the split's (m, l, acc) to the workspace.
template <typename T, typename C, int V, int NC>
__global__ void __launch_bounds__(kThreads)
    decode_kernel(DecodeArgs a, const T* __restrict__ q, const T* __restrict__ k, const T* __restrict__ v,
                  T* __restrict__ out, C* __restrict__ ws_m, C* __restrict__ ws_l, C* __restrict__ ws_acc, C scale) {
  constexpr bool kAsync = kAsyncLoads<T, C, V, NC>;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  C* sm_ml = reinterpret_cast<C*>(smem_raw);  // m, l per group
  const int G = a.group, n_groups = kThreads / G;
  C* sm_acc = sm_ml + 2 * n_groups;  // n_groups x D
  const int g = threadIdx.x % G, grp = threadIdx.x / G;
  const int64_t row = blockIdx.y, split = blockIdx.x;
  const int64_t tq = row % a.Tq, head = row / a.Tq % a.H, b = row / (a.Tq * a.H);
  const int64_t pos = a.t0 + tq, n_cached = a.t0 + a.Tq;
  const T* kb = k + b * a.ks0 + head * a.ks1;
  const T* vb = v + b * a.vs0 + head * a.vs1;

  C qr[NC][V], acc[NC][V];
#pragma unroll
  for (int c = 0; c < NC; ++c) {
    const int idx = c * G + g;
#pragma unroll
    for (int i = 0; i < V; ++i) acc[c][i] = 0;
    if (idx < a.chunks) {
      load_chunk<V>(q + row * a.D + idx * V, qr[c]);
#pragma unroll
      for (int i = 0; i < V; ++i) qr[c][i] *= scale;
    } else {
#pragma unroll
      for (int i = 0; i < V; ++i) qr[c][i] = 0;
    }
  }
  C m = -C(INFINITY), l = 0;

  // One step's keys (u: kUnroll of them, ok: the allowed ones) into the group's online softmax.
  auto update = [&](const T (&kr)[kUnroll][NC][V], const T (&vr)[kUnroll][NC][V], const bool (&ok)[kUnroll]) {
    C sc[kUnroll];
    C m_new = m;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      C dot = 0;
#pragma unroll
      for (int cc = 0; cc < NC; ++cc)
#pragma unroll
        for (int x = 0; x < V; ++x) dot += qr[cc][x] * convert<C>(kr[u][cc][x]);
      for (int o = G / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(kFullMask, dot, o);
      sc[u] = dot;
      if (ok[u]) m_new = max(m_new, dot);
    }
    if (m_new == -C(INFINITY)) return;  // the group saw no key yet
    // The online softmax: what was accumulated under the old max is rescaled to the new one.
    const C alpha = exp_c(m - m_new);
    l *= alpha;
#pragma unroll
    for (int cc = 0; cc < NC; ++cc)
#pragma unroll
      for (int x = 0; x < V; ++x) acc[cc][x] *= alpha;
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const C pr = ok[u] ? exp_c(sc[u] - m_new) : C(0);
      l += pr;
#pragma unroll
      for (int cc = 0; cc < NC; ++cc)
#pragma unroll
        for (int x = 0; x < V; ++x) acc[cc][x] += pr * convert<C>(vr[u][cc][x]);
    }
    m = m_new;
  };
  // kAsync: each thread's k and v chunks of a step go to its own 16-byte slots of a stage (so it
  // reads only what it copied itself: no barrier), kStages - 1 steps ahead of the step computed;
  // ring holds the steps' allowed bits, kUnroll a step, the newest lowest.
  // (The stages are the merge's memory too: it starts after a barrier.)
  auto chunk = [&](int st, int u, int kv) {  // this thread's slot of step st's key u, k (0) or v (1)
    return reinterpret_cast<uint4*>(smem_raw) + size_t((st * kUnroll + u) * 2 + kv) * kThreads + threadIdx.x;
  };
  int64_t issued = 0;
  unsigned ring = 0;
  auto from_stage = [&](int st, unsigned bits) {
    if constexpr (kAsync) {
      T kr[kUnroll][NC][V], vr[kUnroll][NC][V];
      bool ok[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        ok[u] = (bits >> u) & 1u;
        const uint4 kraw = *chunk(st, u, 0), vraw = *chunk(st, u, 1);
        memcpy(kr[u][0], &kraw, 16);
        memcpy(vr[u][0], &vraw, 16);
      }
      update(kr, vr, ok);
    }
  };

  // This split's share of the row's entries, counted over the segments in order.
  int64_t total = 0;
  for (int si = 0; si < a.n_segs; ++si) {
    const Segment& s = a.segs[si];
    const int64_t p = s.q_index ? s.q_index[pos] : pos;
    if (p < 0) continue;
    const int64_t* rp = s.row_ptr + (s.n_layouts == 1 ? 0 : head) * (s.n_qblocks + 1);
    total += rp[p / s.block_q + 1] - rp[p / s.block_q];
  }
  const int64_t lo = total * split / a.n_splits, hi = total * (split + 1) / a.n_splits;

  int64_t base = 0;
  for (int si = 0; si < a.n_segs && base < hi; ++si) {
    const Segment& s = a.segs[si];
    const int64_t p = s.q_index ? s.q_index[pos] : pos;
    if (p < 0) continue;
    const int64_t i = p / s.block_q, r = p % s.block_q;
    const int64_t* rp = s.row_ptr + (s.n_layouts == 1 ? 0 : head) * (s.n_qblocks + 1);
    const int64_t n = rp[i + 1] - rp[i];
    const int64_t e0 = rp[i] + max(lo - base, int64_t(0)), e1 = rp[i] + min(hi - base, n);
    base += n;
    // An entry's block and kind are loaded two entries ahead of its keys, and (gathered keys) a
    // step's key positions one step ahead: otherwise each step waits for them before it can even
    // address its keys (a memory round trip or two per step; the positions' were the largest
    // stall of fixed attention's decode).
    struct Entry {
      int32_t j = 0;
      uint8_t kind = 0;
    };
    auto entry_at = [&](int64_t e) {
      Entry x;
      if (e < e1) {
        x.j = s.col_idx[e];
        x.kind = s.kind[e];
      }
      return x;
    };
    // The positions of step c0's keys of the entry at block j (gathered keys only).
    auto positions = [&](int32_t j, int64_t c0, int64_t (&kp)[kUnroll]) {
      if (!s.k_pos) return;
      const int64_t k0 = int64_t(j) * s.block_k, cols = min(s.block_k, s.n_keys - k0);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t c = c0 + u * n_groups + grp;
        kp[u] = s.k_pos[k0 + (c < cols ? c : 0)];
      }
    };
    Entry ent = entry_at(e0), ent1 = entry_at(e0 + 1);
    int64_t kp_next[kUnroll] = {};
    if (e0 < e1) positions(ent.j, 0, kp_next);
    for (int64_t e = e0; e < e1; ++e) {
      const Entry ent2 = entry_at(e + 2);
      const int64_t k0 = int64_t(ent.j) * s.block_k, cols = min(s.block_k, s.n_keys - k0);
      const uint8_t kind = ent.kind;
      const int64_t mask0 = kind == BlockLayout::kPartial ? s.mask_offset[e] + r * cols : 0;
      // The trip count is the same for every thread of the block: the shuffles below see full warps.
      for (int64_t c0 = 0; c0 < cols; c0 += int64_t(n_groups) * kUnroll) {
        bool ok[kUnroll];
        int64_t kp[kUnroll];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          const int64_t c = c0 + u * n_groups + grp;
          ok[u] = false;
          kp[u] = s.k_pos ? kp_next[u] : k0 + c;
          if (c < cols && kp[u] < n_cached) {
            if (kind == BlockLayout::kFull) {
              ok[u] = true;
            } else if (kind == BlockLayout::kCausal) {
              ok[u] = kp[u] <= pos;
            } else {
              const int64_t bit = mask0 + c;
              ok[u] = (s.mask_bits[bit >> 6] >> (bit & 63)) & 1u;
            }
          }
        }
        // The next step's positions: this entry's next keys, or the next entry's first.
        if (c0 + int64_t(n_groups) * kUnroll < cols) {
          positions(ent.j, c0 + int64_t(n_groups) * kUnroll, kp_next);
        } else if (e + 1 < e1) {
          positions(ent1.j, 0, kp_next);
        }
        if constexpr (kAsync) {
          // This step's keys into its stage; the step kStages - 1 back is computed from its own.
          const int st = int(issued % kStages);
          unsigned bits = 0;
#pragma unroll
          for (int u = 0; u < kUnroll; ++u) {
            const bool live = ok[u] && g < a.chunks;
            cp_async16(smem_u32(chunk(st, u, 0)), live ? kb + kp[u] * a.ks2 + g * V : kb, live);
            cp_async16(smem_u32(chunk(st, u, 1)), live ? vb + kp[u] * a.vs2 + g * V : vb, live);
            bits |= unsigned(ok[u]) << u;
          }
          cp_async_commit();
          ring = ring << kUnroll | bits;
          if (++issued >= kStages) {
            cp_async_wait<kStages - 1>();
            from_stage(int((issued - kStages) % kStages), ring >> (kUnroll * (kStages - 1)));
          }
        } else {
          // Kept as loaded (T), converted where used: half the registers of converting up front for
          // 16-bit types, which leaves room for more blocks, so more loads in flight per SM.
          T kr[kUnroll][NC][V], vr[kUnroll][NC][V];
#pragma unroll
          for (int u = 0; u < kUnroll; ++u)
#pragma unroll
            for (int cc = 0; cc < NC; ++cc) {
              const int idx = cc * G + g;
              if (ok[u] && idx < a.chunks) {
                load_raw<V>(kb + kp[u] * a.ks2 + idx * V, kr[u][cc]);
                load_raw<V>(vb + kp[u] * a.vs2 + idx * V, vr[u][cc]);
              } else {
#pragma unroll
                for (int x = 0; x < V; ++x) kr[u][cc][x] = vr[u][cc][x] = convert<T>(C(0));
              }
            }
          update(kr, vr, ok);
        }
      }
      ent = ent1;
      ent1 = ent2;
    }
  }
  if constexpr (kAsync) {  // the last kStages - 1 steps (or fewer), oldest first
    cp_async_wait<0>();
    const int64_t left = issued < kStages - 1 ? issued : kStages - 1;
    for (int64_t t = 0; t < left; ++t) from_stage(int((issued - left + t) % kStages), ring >> (kUnroll * int(left - 1 - t)));
    __syncthreads();  // every thread is done with its stages: the merge below reuses them
  }

  // Merge the groups: weights e^(m_g - M), zero for a group that saw nothing.
  if (g == 0) {
    sm_ml[grp] = m;
    sm_ml[n_groups + grp] = l;
  }
#pragma unroll
  for (int cc = 0; cc < NC; ++cc) {
    const int idx = cc * G + g;
    if (idx < a.chunks)
#pragma unroll
      for (int x = 0; x < V; ++x) sm_acc[grp * a.D + idx * V + x] = acc[cc][x];
  }
  __syncthreads();
  C M = -C(INFINITY);
  for (int x = 0; x < n_groups; ++x) M = max(M, sm_ml[x]);
  C L = 0;
  for (int x = 0; x < n_groups; ++x) L += M == -C(INFINITY) ? C(0) : sm_ml[n_groups + x] * exp_c(sm_ml[x] - M);
  for (int64_t d = threadIdx.x; d < a.D; d += kThreads) {
    C A = 0;
    if (M != -C(INFINITY))
      for (int x = 0; x < n_groups; ++x) A += sm_acc[x * a.D + d] * exp_c(sm_ml[x] - M);
    if (a.n_splits == 1) {
      out[row * a.D + d] = convert<T>(L > 0 ? A / L : C(0));  // a row that sees no key: zeros
    } else {
      ws_acc[(row * a.n_splits + split) * a.D + d] = A;
    }
  }
  if (a.n_splits > 1 && threadIdx.x == 0) {
    ws_m[row * a.n_splits + split] = M;
    ws_l[row * a.n_splits + split] = L;
  }
}

// out row = the splits' partial outputs merged by their maxima and sums. One block per row.
template <typename T, typename C>
__global__ void __launch_bounds__(kThreads)
    combine_kernel(int n_splits, int64_t D, const C* __restrict__ ws_m, const C* __restrict__ ws_l,
                   const C* __restrict__ ws_acc, T* __restrict__ out) {
  const int64_t row = blockIdx.x;
  const C* m = ws_m + row * n_splits;
  const C* l = ws_l + row * n_splits;
  C M = -C(INFINITY);
  for (int s = 0; s < n_splits; ++s) M = max(M, m[s]);
  C L = 0;
  if (M != -C(INFINITY))
    for (int s = 0; s < n_splits; ++s) L += l[s] * exp_c(m[s] - M);
  for (int64_t d = threadIdx.x; d < D; d += kThreads) {
    C A = 0;
    if (M != -C(INFINITY))
      for (int s = 0; s < n_splits; ++s) A += ws_acc[(row * n_splits + s) * D + d] * exp_c(m[s] - M);
    out[row * D + d] = convert<T>(L > 0 ? A / L : C(0));
  }
}

// The most entries any query row visits over every segment (the longest row sets the splits).
int64_t max_row_entries(const BlockLayout& L, int64_t t0, int64_t Tq) {
  int64_t best = 0;
  for (int64_t pos = t0; pos < t0 + Tq; ++pos)
    for (int h = 0; h < L.n_layouts; ++h) {
      int64_t n = 0;
      for (const BlockLayout* s = &L; s; s = s->next.get()) {
        const int64_t p = s->q_index.empty() ? pos : s->q_index[size_t(pos)];
        if (p < 0) continue;
        const int64_t* rp = s->row_ptr.data() + size_t(s->layout_of(h)) * size_t(s->n_qblocks + 1);
        n += rp[p / s->block_q + 1] - rp[p / s->block_q];
      }
      best = std::max(best, n);
    }
  return best;
}

// Splits per row so that rows x splits blocks fill the SMs' resident slots once (per_sm: the
// kernel's occupancy), but at least two key blocks per split: fewer and the merge costs more than
// the keys. A whole wave, not more: at 4 resident blocks per SM, 9 splits of 128 rows (dense 64K,
// batch 8) made 2.2 waves, whose last one left four fifths of the GPU idle.
int choose_splits(int64_t rows, int64_t entries, int per_sm) {
  const int64_t slots = int64_t(sm_count()) * std::max(per_sm, 1);
  const int64_t want = std::max<int64_t>(1, slots / rows);
  const int64_t most = std::max<int64_t>(1, (entries + 1) / 2);
  return int(std::clamp<int64_t>(std::min(want, most), 1, 256));
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Blocks of kKernel resident per SM of the current device, asked once per kernel, device and shared
// memory size (the query costs microseconds of host time, and a decode step is a few tens of them).
template <auto kKernel>
int resident_blocks(size_t smem) {
  constexpr int kDevices = 64;
  static std::atomic<int64_t> cache[kDevices];  // smem << 8 | blocks, 0: not asked yet
  int dev = 0;
  SPARTA_CUDA_CHECK("sparse_attention_decode", cudaGetDevice(&dev));
  std::atomic<int64_t>& c = cache[dev % kDevices];
  const int64_t known = c.load(std::memory_order_relaxed);
  if (known != 0 && size_t(known >> 8) == smem) return int(known & 255);
  int per_sm = 0;
  SPARTA_CUDA_CHECK("sparse_attention_decode",
                    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kKernel, kThreads, smem));
  c.store(int64_t(smem) << 8 | std::clamp(per_sm, 1, 255), std::memory_order_relaxed);
  return std::clamp(per_sm, 1, 255);
}

std::atomic<int> g_last_splits{0};

// Picks the load width (16 bytes where rows and bases allow, else elements), the threads per key,
// the chunks per thread and the splits, then launches the split kernel and, for several splits, the
// merge.
template <typename T>
void launch(DecodeArgs a, int64_t rows, int64_t entries, double scale, const Tensor& q, const Tensor& k,
            const Tensor& v, const Tensor& out) {
  using C = acc_t<T>;
  constexpr int VV = 16 / int(sizeof(T));
  const int64_t D = a.D;
  const bool vec = D % VV == 0 && a.ks0 % VV == 0 && a.ks1 % VV == 0 && a.ks2 % VV == 0 && a.vs0 % VV == 0 &&
                   a.vs1 % VV == 0 && a.vs2 % VV == 0 && aligned16(q.data_ptr()) && aligned16(k.data_ptr()) &&
                   aligned16(v.data_ptr());
  a.chunks = int(D / (vec ? VV : 1));
  a.group = 1;
  while (a.group < 32 && a.group < a.chunks) a.group *= 2;
  const int nc = (a.chunks + a.group - 1) / a.group;
  const int n_groups = kThreads / a.group;
  Tensor ws_ml, ws_acc;  // freed in stream order after the kernels
  C *wm = nullptr, *wl = nullptr, *wacc = nullptr;
  const T* qp = static_cast<const T*>(q.data_ptr());
  const T* kp = static_cast<const T*>(k.data_ptr());
  const T* vp = static_cast<const T*>(v.data_ptr());
  T* op = static_cast<T*>(out.data_ptr());
  auto go = [&](auto v_c, auto nc_c) {
    constexpr int VC = decltype(v_c)::value, NCC = decltype(nc_c)::value;
    auto* kernel = decode_kernel<T, C, VC, NCC>;
    const size_t smem = decode_smem<T, C, VC, NCC>(n_groups, D);
    a.n_splits = choose_splits(rows, entries, resident_blocks<decode_kernel<T, C, VC, NCC>>(smem));
    g_last_splits = a.n_splits;
    const int S = a.n_splits;
    if (S > 1) {
      const DType acc_dtype = std::is_same_v<C, double> ? DType::f64 : DType::f32;
      ws_ml = Tensor::empty({2, rows * S}, acc_dtype, q.device());
      ws_acc = Tensor::empty({rows * S * D}, acc_dtype, q.device());
      wm = static_cast<C*>(ws_ml.data_ptr());
      wl = wm + rows * S;
      wacc = static_cast<C*>(ws_acc.data_ptr());
    }
    kernel<<<dim3{unsigned(S), unsigned(rows)}, kThreads, smem, stream()>>>(a, qp, kp, vp, op, wm, wl, wacc, C(scale));
  };
  // D <= 256: at most 256 / (32 V) chunks per thread, so only those variants are compiled.
  auto by_nc = [&](auto v_c) {
    constexpr int most = 256 / (32 * decltype(v_c)::value);
    if constexpr (most >= 1) if (nc <= 1) return go(v_c, std::integral_constant<int, 1>());
    if constexpr (most >= 2) if (nc <= 2) return go(v_c, std::integral_constant<int, 2>());
    if constexpr (most >= 4) if (nc <= 4) return go(v_c, std::integral_constant<int, 4>());
    if constexpr (most >= 8) return go(v_c, std::integral_constant<int, 8>());
    SPARTA_FAIL("sparse_attention_decode", "head dimension ", D, " needs ", nc, " chunks per thread");
  };
  if (vec) {
    by_nc(std::integral_constant<int, VV>());
  } else {
    by_nc(std::integral_constant<int, 1>());
  }
  SPARTA_CUDA_LAUNCH_CHECK("sparse_attention_decode");
  if (const int S = a.n_splits; S > 1) {
    combine_kernel<T, C><<<unsigned(rows), kThreads, 0, stream()>>>(S, D, wm, wl, wacc, op);
    SPARTA_CUDA_LAUNCH_CHECK("sparse_attention_decode");
  }
}

}  // namespace

int last_decode_splits() { return g_last_splits.load(); }

void sparse_attention_decode(const std::shared_ptr<const attn::BlockLayout>& L, double scale, int64_t t0,
                             const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& out) {
  const char* op = "sparse_attention_decode";
  SPARTA_CHECK(L->top_k == 0, op, "top-k layouts have no decode kernel");
  const int64_t H = q.shape(1), Tq = q.shape(2), rows = q.shape(0) * H * Tq;
  if (rows == 0) return;
  SPARTA_CHECK(rows <= 65535, op, "batch x heads x new positions = ", rows, " exceeds the grid's 65535 rows");
  const auto dl = device_layout(L, q.device());
  DecodeArgs a;
  a.segs = dl->segments;
  a.n_segs = dl->n_segments;
  a.H = H;
  a.Tq = Tq;
  a.D = q.shape(3);
  a.t0 = t0;
  a.ks0 = k.strides()[0];
  a.ks1 = k.strides()[1];
  a.ks2 = k.strides()[2];
  a.vs0 = v.strides()[0];
  a.vs1 = v.strides()[1];
  a.vs2 = v.strides()[2];
  const int64_t entries = max_row_entries(*L, t0, Tq);
  SPARTA_CUDA_DISPATCH_FLOAT(q.dtype(), op, [&] { launch<scalar_t>(a, rows, entries, scale, q, k, v, out); });
}

}  // namespace sparta::cuda
