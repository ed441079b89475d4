// Top-k attention on the tensor-core kernels: the selection becomes an element mask, and the
// flash kernels (flash_kernels.cuh) run the window's layout with it, forward and backward.
//
// Each (batch, head) gets its own copy of the layout's block lists (a layout per "head" of a
// (1, B H, N, D) view of the tensors), every entry partial, entry g's bits at g block_q block_k:
// the flash kernels read a partial entry's bits as they read any pattern's (mask_word), so they
// run unchanged. The selection kernel writes those bits once per call: per 64-query tile it
// computes the row's allowed scores with mma.sync (the same scale and mask as the CPU's Scorer),
// keeps them as order-preserving keys in shared memory, finds each row's k-th largest by a bit
// search over the keys (a warp per row), and sets the bits of the keys at or above it.
//
// The forward's bits are one of its outputs (the primitive saves them), and the backward runs
// them as they are (selecting again was 0.27 of 1.88 ms fwd+bwd at topk:32:512, 16K, H200). Given
// only the thresholds (a caller of the cuda:: functions that kept no selection), it selects again
// with the same kernel: the same scores to the bit, so the forward's bits exactly (recomputed
// scores compared with a threshold in another kernel's product order could flip a key that ties).
#include <algorithm>
#include <mutex>
#include <vector>

#include "core/ops/attention/flash_kernels.cuh"
#include "core/ops/attention/radix_key.cuh"
#include "core/ops/attention/topk.cuh"

namespace sparta::cuda::flash {
namespace {

using Key = unsigned;
constexpr int kKeysPerLane = 24;                  // a row's keys in a warp's registers
constexpr int kMaxRowKeys = 32 * kKeysPerLane;    // the longest row the selection takes
constexpr int kFew = 8;                           // keys per lane of a compacted row
// Warps of a selection CTA: each scores 16 rows (as mma.sync takes them) by 16 keys of every tile,
// then selects 4 rows. The search is a chain of warp reductions, so the SM needs
// many warps to hide their latency, and the scores' shared memory allows one CTA per SM.
constexpr int kSelectWarps = 16, kRowsPerWarp = kTile / kSelectWarps;

// The key of a score, -0 as +0 (the CPU compares floats, which do not tell them apart).
__device__ __forceinline__ Key key_of(float x) { return topk::Radix<float>::key(x + 0.f); }

// How many of the warp's keys are >= c (every lane gets it).
template <int NV>
__device__ __forceinline__ unsigned count_at_least(const Key (&key)[NV], Key c) {
  unsigned n[4] = {0, 0, 0, 0};  // four chains, not one of NV dependent adds
#pragma unroll
  for (int j = 0; j < NV; ++j) n[j & 3] += key[j] >= c;
  return __reduce_add_sync(0xffffffffu, n[0] + n[1] + n[2] + n[3]);
}

// The largest key K with at least k of the warp's keys >= K (the k-th largest), given that it
// lies in [lo, hi]: the bits above their highest difference are K's, the rest are decided from the
// top, one count a bit. (Two bits a round, three counts whose reductions overlap, halve the chain
// but take half as many counts again: the kernel is bound by issued instructions, not latency.)
// A key tried with exactly k keys at or above it ends the search: the k-th largest is the least of
// those (once the tries fall between the k-th and the (k + 1)-th key, about 8 rounds in for a row's
// 110 candidates, instead of all 20 to 30 bits). Keys of 0 stand for no score and never count (every
// K tried has a bit set).
template <int NV>
__device__ __forceinline__ Key kth_key(const Key (&key)[NV], unsigned k, Key lo, Key hi) {
  if (lo == hi) return lo;
  const int left = 32 - __clz(lo ^ hi);  // bits left to decide: left - 1 .. 0
  Key K = lo & ~((Key(2) << (left - 1)) - 1);  // (2 << 31 wraps to 0: nothing fixed)
#pragma unroll 1
  for (int b = left - 1; b >= 0; --b) {
    const Key c = K | (Key(1) << b);
    const unsigned n = count_at_least(key, c);
    if (n == k) {
      Key least = ~Key(0);
#pragma unroll
      for (int j = 0; j < NV; ++j) least = key[j] >= c ? min(least, key[j]) : least;
      return __reduce_min_sync(0xffffffffu, least);
    }
    if (n > k) K = c;
  }
  return K;
}

// The k-th largest of a row's `total` compacted keys in scratch (at most 32 kFewKeys), read into
// the warp's registers kFewKeys a lane.
template <int kFewKeys>
__device__ __forceinline__ Key kth_of_compacted(const Key* scratch, unsigned total, unsigned k, Key floor, Key high,
                                                int lane) {
  Key few[kFewKeys];
#pragma unroll
  for (int j = 0; j < kFewKeys; ++j) few[j] = lane + 32 * j < int(total) ? scratch[lane + 32 * j] : 0;
  __syncwarp();  // every lane has read scratch before the next row writes it
  return kth_key(few, k, floor, high);
}

// The k-th largest of a row's keys (0: none), top: the lane's largest. For k <= 32 it is at
// least the smallest of the 32 lanes' largest keys (32 distinct keys reach that), so when at most
// 32 kFew keys reach that floor they are compacted into `scratch` (32 kFew per warp) and searched
// kFew a lane instead of kKeysPerLane, or 4 a lane when they fit (for a row of 512 random scores
// the floor is near their 79th percentile: about 110 keys reach it).
__device__ __forceinline__ Key row_kth(const Key (&key)[kKeysPerLane], Key top, unsigned k, Key* scratch, int lane) {
  const Key floor = k <= 32 ? __reduce_min_sync(0xffffffffu, top) : 0;
  const Key high = __reduce_max_sync(0xffffffffu, top);
  unsigned mine = 0;
#pragma unroll
  for (int j = 0; j < kKeysPerLane; ++j) mine += key[j] != 0 && key[j] >= floor;
  unsigned before = mine;  // inclusive prefix over the lanes, then exclusive
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const unsigned up = __shfl_up_sync(0xffffffffu, before, o);
    if (lane >= o) before += up;
  }
  const unsigned total = __shfl_sync(0xffffffffu, before, 31);
  if (total > 32 * kFew) return kth_key(key, k, floor, high);
  before -= mine;
#pragma unroll
  for (int j = 0; j < kKeysPerLane; ++j)
    if (key[j] != 0 && key[j] >= floor) scratch[before++] = key[j];
  __syncwarp();
  if (total <= 32 * 4) return kth_of_compacted<4>(scratch, total, k, floor, high, lane);
  return kth_of_compacted<kFew>(scratch, total, k, floor, high, lane);
}

// ORs the n low bits of word into bits at bit offset `at` (rows of a ragged entry are not
// word-aligned, and neighbouring rows share words: atomics there).
__device__ __forceinline__ void or_bits(uint64_t* bits, int64_t at, uint64_t word, int n) {
  const int64_t i = at >> 6;
  const int sh = int(at & 63);
  if (sh == 0 && n == 64) {
    bits[i] = word;
    return;
  }
  word &= (uint64_t(1) << n) - 1;  // n < 64 here
  if (word == 0) return;
  atomicOr(reinterpret_cast<unsigned long long*>(bits + i), static_cast<unsigned long long>(word << sh));
  if (sh != 0 && sh + n > 64) atomicOr(reinterpret_cast<unsigned long long*>(bits + i + 1), static_cast<unsigned long long>(word >> (64 - sh)));
}

// K tiles in flight: a CTA per SM (the keys' shared memory), so each step's load latency is the
// SM's unless several are on their way. Head dim 128's tiles leave room for two.
template <int D>
constexpr int kStages = D == 64 ? 4 : 2;
template <int D>
constexpr size_t select_fixed_smem() {
  static_assert(kStages<D> * kTile * (D + 8) * 2 >= kSelectWarps * 32 * kFew * sizeof(Key));
  return size_t((1 + kStages<D>) * kTile * (D + 8)) * 2;  // the selection's scratch reuses the K tiles
}
// find: the rows' keys for the search; else each row's kept bits, 16 a warp and tile, and its cut.
size_t select_smem(int64_t D, int64_t max_steps, bool find) {
  const size_t fixed = D == 64 ? select_fixed_smem<64>() : select_fixed_smem<128>();
  const size_t per_row = find ? size_t(max_steps * kTile + 8) * sizeof(Key) : max_steps * sizeof(uint64_t) + sizeof(Key);
  return fixed + size_t(kTile * max_steps) * sizeof(uint64_t) + kTile * per_row;
}

// One CTA per (batch x head, 64-query tile), in the forward's order. s: the layout's segment (its
// own masks); rep: its per-(batch, head) copy, whose entry g's bits start at g block_q block_k.
// kFind: write each row's threshold (the k-th largest allowed score, -inf when the row has at most
// k), from the row's keys kept in shared memory; else read it, and no keys are kept: the kept bits
// are set as the scores come. Either way, set the bits of the allowed scores >= the threshold.
template <typename T, int D, bool kFind>
__global__ void __launch_bounds__(kSelectWarps * 32) select_kernel(const Segment s, const Segment rep, int64_t H, int64_t N,
                                                          int max_steps, float scale, unsigned top_k,
                                                          const T* q, const T* k, float* threshold, uint64_t* bits) {
  constexpr int S = D + 8, KS = D / 16, NB = kStages<D>;
  extern __shared__ __align__(16) unsigned char smem[];
  T* sQ = reinterpret_cast<T*>(smem);
  T* sK = sQ + kTile * S;  // [NB][64][S]
  Key* scratch = reinterpret_cast<Key*>(sK);  // [warps][32 kFew], once the scores are done with K
  uint64_t* sM = reinterpret_cast<uint64_t*>(sK + NB * kTile * S);  // [64 rows][max_steps] allowed
  Key* sKey = reinterpret_cast<Key*>(sM + kTile * max_steps);               // kFind: [64 rows][LS] keys, 0: none
  uint64_t* sSel = sM + kTile * max_steps;                                  // else: [64 rows][max_steps] kept bits
  Key* sCut = reinterpret_cast<Key*>(sSel + kTile * max_steps);             // and [64 rows] the threshold's key
  const int LS = max_steps * kTile + 8;  // 8 more: the quads' 8-byte stores of 8 rows in different banks

  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
  const TileLoader<D, false> load(tid);
  const QueryTile qt(s, H, N);
  const int64_t* rp = row_ptr_of(s, qt.head);
  const int64_t first = rp[qt.i];
  const int n_steps = int((rp[qt.i + 1] - first) * (s.block_k / kTile));
  const T* qb = q + qt.bh * N * D;
  const T* kb = k + qt.bh * s.n_keys * D;
  const bool loads = tid < kThreads;  // the loader's threads
  if (loads) load(sQ, qb + qt.qt0 * D, qt.q_len, qb);
  cp_async_commit();
  // The row's steps once, all of them at the same time (their block-list reads and mask words
  // are chains of dependent loads: taken step by step, they were the kernel's time): each step's
  // key tile, and every allowed word.
  __shared__ int64_t step_kt0[kMaxRowKeys / kTile];
  __shared__ int step_len[kMaxRowKeys / kTile];
  if (tid < n_steps) {
    const Step st = qt.step(s, first, tid);
    step_kt0[tid] = st.kt0;
    step_len[tid] = st.kv_len;
  }
  for (int x = tid / kTile; x < n_steps; x += kSelectWarps * 32 / kTile) {
    const int r = tid % kTile;
    sM[r * max_steps + x] = mask_word(s, qt.step(s, first, x), r);
  }
  if (!kFind && tid < kTile) sCut[tid] = tid < qt.q_len ? key_of(threshold[qt.bh * N + qt.qt0 + tid]) : ~Key(0);
  __syncthreads();
  // Step x's K tile into buffer x % NB, a commit group per call (empty past the row's end) so that
  // the groups newer than step x's are always NB - 1.
  auto prefetch = [&](int x) {
    if (x < n_steps && loads) load(sK + (x % NB) * kTile * S, kb + step_kt0[x] * D, step_len[x], kb);
    cp_async_commit();
  };
  for (int x = 0; x < NB - 1; ++x) prefetch(x);
  cp_async_wait<NB - 1>();  // Q has landed
  __syncthreads();
  // Every warp scores: 16 rows (row group rg) by 16 keys (key quarter kq) of each tile.
  const int rg = w % kWarps, kq = w / kWarps;
  uint32_t qa[KS][4];
#pragma unroll
  for (int ks = 0; ks < KS; ++ks) load_a<S>(qa[ks], sQ, rg, ks, lane);

  // The scores' keys, tile by tile.
  const int g = lane >> 2, c0 = 2 * (lane & 3);
  for (int x = 0; x < n_steps; ++x) {
    prefetch(x + NB - 1);  // into the buffer step x - 1 read (free: the barrier ending it)
    cp_async_wait<NB - 1>();
    __syncthreads();
    const T* tK = sK + (x % NB) * kTile * S;
    float sc[2][4] = {};
#pragma unroll
    for (int ks = 0; ks < KS; ++ks) {
      uint32_t b[4];
      load_b<S>(b, tK, kq, ks, lane);
      mma<T>(sc[0], qa[ks], b[0], b[1]);
      mma<T>(sc[1], qa[ks], b[2], b[3]);
    }
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int r = rg * 16 + g + 8 * h;
      const uint64_t allowed = sM[r * max_steps + x];
      Key* out = sKey + r * LS + x * kTile + kq * 16 + c0;
      const Key cut = kFind ? 0 : sCut[r];
      unsigned kept = 0;  // !kFind: bit c of the row's 16 keys of this quarter
#pragma unroll
      for (int nt = 0; nt < 2; ++nt) {
        const int c = kq * 16 + nt * 8 + c0;
        const Key k0 = (allowed >> c) & 1u ? key_of(__fmul_rn(sc[nt][2 * h], scale)) : 0;
        const Key k1 = (allowed >> (c + 1)) & 1u ? key_of(__fmul_rn(sc[nt][2 * h + 1], scale)) : 0;
        if constexpr (kFind) {
          *reinterpret_cast<uint2*>(out + nt * 8) = make_uint2(k0, k1);
        } else {
          kept |= unsigned(k0 != 0 && k0 >= cut) << (nt * 8 + c0) | unsigned(k1 != 0 && k1 >= cut) << (nt * 8 + c0 + 1);
        }
      }
      if constexpr (!kFind) {  // the quad's pieces of the row, then 16 bits of its word
        kept |= __shfl_xor_sync(0xffffffffu, kept, 1);
        kept |= __shfl_xor_sync(0xffffffffu, kept, 2);
        if ((lane & 3) == 0) reinterpret_cast<uint16_t*>(sSel + r * max_steps + x)[kq] = uint16_t(kept);
      }
    }
    __syncthreads();  // the tile is free for the prefetch NB - 1 steps on
  }

  // Where row r's bits of step x go: its entry's rows of `cols` bits, from the step's first column.
  const int kt = s.block_k == 2 * kTile ? 1 : 0;
  const int64_t rep_first = rep.row_ptr[qt.bh * (rep.n_qblocks + 1) + qt.i];
  auto write = [&](int r, int x, uint64_t word) {
    const int64_t j = step_kt0[x] / s.block_k, cols = min(s.block_k, s.n_keys - j * s.block_k);
    const int64_t at = (rep_first + (x >> kt)) * s.block_q * s.block_k + (qt.qt0 - qt.i * s.block_q + r) * cols +
                       (step_kt0[x] - j * s.block_k);
    or_bits(bits, at, word, step_len[x]);
  };
  if constexpr (!kFind) {  // the kept words out
    for (int idx = tid; idx < kTile * n_steps; idx += kSelectWarps * 32) {
      const int r = idx / n_steps, x = idx % n_steps;
      if (r >= qt.q_len) break;
      write(r, x, sSel[r * max_steps + x]);
    }
    return;
  }
  // A warp per row: the row's keys in registers, 32 keys a slot (slot j: keys 32 j + lane).
  Key* mine = scratch + w * 32 * kFew;
  const int r0 = w * kRowsPerWarp;
  for (int r = r0; r < r0 + kRowsPerWarp && r < qt.q_len; ++r) {
    const Key* row = sKey + r * LS;
    Key key[kKeysPerLane];
    Key top = 0;
    unsigned n = 0;
#pragma unroll
    for (int j = 0; j < kKeysPerLane; ++j) {
      key[j] = j < 2 * n_steps ? row[j * 32 + lane] : 0;
      top = max(top, key[j]);
      n += key[j] != 0;
    }
    const bool all = __reduce_add_sync(0xffffffffu, n) <= top_k;
    const Key kth = all ? 0 : row_kth(key, top, top_k, mine, lane);
    const float thr = all ? -INFINITY : topk::Radix<float>::value(kth);
    if (lane == 0) threshold[qt.bh * N + qt.qt0 + r] = thr;
    const Key cut = key_of(thr);  // -inf's key is below every finite score's
    uint64_t word = 0;
#pragma unroll
    for (int j = 0; j < kKeysPerLane; j += 2) {
      const unsigned lo = __ballot_sync(0xffffffffu, key[j] != 0 && key[j] >= cut);
      const unsigned hi = __ballot_sync(0xffffffffu, key[j + 1] != 0 && key[j + 1] >= cut);
      if (lane == j / 2) word = uint64_t(lo) | uint64_t(hi) << 32;
    }
    if (lane < n_steps) write(r, lane, word);
  }
}

// The longest CSR row of L in 64-key steps.
int64_t max_steps_of(const attn::BlockLayout& L) {
  int64_t longest = 0;
  for (int h = 0; h < L.n_layouts; ++h) {
    const int64_t* rp = L.row_ptr.data() + size_t(h) * size_t(L.n_qblocks + 1);
    for (int64_t i = 0; i < L.n_qblocks; ++i) longest = std::max(longest, rp[i + 1] - rp[i]);
  }
  return longest * (L.block_k / kTile);
}

int shared_optin() {
  int dev = 0, optin = 0;
  SPARTA_CUDA_CHECK("sparse_attention", cudaGetDevice(&dev));
  SPARTA_CUDA_CHECK("sparse_attention", cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  return optin;
}

// L's block lists once per (batch, head) of a (B, H) call, as layouts of their own: entries all
// partial, entry g's bits at g block_q block_k (the selection writes them; no bits here).
std::shared_ptr<const attn::BlockLayout> replicate(const attn::BlockLayout& L, int64_t B, int64_t H) {
  using attn::BlockLayout;
  auto R = std::make_shared<BlockLayout>();
  R->seq_len = L.seq_len;
  R->block_q = L.block_q;
  R->block_k = L.block_k;
  R->n_qblocks = L.n_qblocks;
  R->n_kblocks = L.n_kblocks;
  R->n_keys = L.n_keys;
  R->causal = L.causal;
  R->n_layouts = int(B * H);
  const size_t nq = size_t(L.n_qblocks), nk = size_t(L.n_kblocks);
  for (int64_t bh = 0; bh < B * H; ++bh) {
    const size_t h = size_t(L.layout_of(int(bh % H)));
    const int64_t e0 = L.row_ptr[h * (nq + 1)], base = int64_t(R->col_idx.size());
    const int64_t c0 = L.col_ptr[h * (nk + 1)], cbase = int64_t(R->row_idx.size());
    for (size_t i = 0; i <= nq; ++i) R->row_ptr.push_back(base + L.row_ptr[h * (nq + 1) + i] - e0);
    for (size_t j = 0; j <= nk; ++j) R->col_ptr.push_back(cbase + L.col_ptr[h * (nk + 1) + j] - c0);
    const int64_t e1 = L.row_ptr[h * (nq + 1) + nq], c1 = L.col_ptr[h * (nk + 1) + nk];
    for (int64_t e = e0; e < e1; ++e) {
      R->col_idx.push_back(L.col_idx[size_t(e)]);
      R->full.push_back(BlockLayout::kPartial);
      R->mask_offset.push_back((base + e - e0) * L.block_q * L.block_k);
    }
    for (int64_t c = c0; c < c1; ++c) {
      R->row_idx.push_back(L.row_idx[size_t(c)]);
      R->csc_entry.push_back(base + L.csc_entry[size_t(c)] - e0);
    }
  }
  return R;
}

// replicate(L, B, H), made once per layout object and (B, H) and kept while the layout lives.
std::shared_ptr<const attn::BlockLayout> replica(const LayoutPtr& L, int64_t B, int64_t H) {
  struct Entry {
    std::weak_ptr<const attn::BlockLayout> owner;
    const attn::BlockLayout* key;
    int64_t B, H;
    std::shared_ptr<const attn::BlockLayout> copy;
  };
  static std::mutex& mu = *new std::mutex;
  static std::vector<Entry>& cache = *new std::vector<Entry>;
  std::lock_guard<std::mutex> lock(mu);
  cache.erase(std::remove_if(cache.begin(), cache.end(), [](const Entry& e) { return e.owner.expired(); }), cache.end());
  for (const Entry& e : cache)
    if (e.key == L.get() && e.B == B && e.H == H) return e.copy;
  cache.push_back({L, L.get(), B, H, replicate(*L, B, H)});
  return cache.back().copy;
}

// The flash kernels' layout for this call: the replica with the selection's bits (kept alive in
// `bits` until the kernels using them are queued).
struct Selection {
  DeviceLayout layout;
  Tensor bits;
};

// kept: a selection this call's forward made (the backward runs it as it is), or undefined.
Selection select(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& threshold, bool find,
                 const Tensor& kept = Tensor()) {
  const char* op = find ? "sparse_attention" : "sparse_attention_backward";
  const Shape4 sh = shape_of(q);
  const auto dl = device_layout(L, q.device());
  const auto rep_layout = replica(L, sh.B, sh.H);
  Selection out{*device_layout(rep_layout, q.device()), Tensor()};
  Segment& rep = out.layout.host_segments[0];
  const int64_t words = (rep.total_col_entries * L->block_q * L->block_k + 63) / 64 + 1;
  if (kept.defined()) {
    SPARTA_CHECK(kept.dtype() == DType::i64 && kept.numel() == words && kept.device() == q.device(), op,
                 "the saved top-k selection must be ", words, " i64 words on ", q.device().str(), " for q ",
                 shape_str(q.shape()), ", got ", dtype_name(kept.dtype()), " ", shape_str(kept.shape()), " on ",
                 kept.device().str());
    out.bits = kept;
    rep.mask_bits = static_cast<const uint64_t*>(kept.data_ptr());
    return out;
  }
  out.bits = Tensor::empty({words}, DType::i64, q.device());
  SPARTA_CUDA_CHECK(op, cudaMemsetAsync(out.bits.data_ptr(), 0, size_t(words) * sizeof(uint64_t), stream()));
  rep.mask_bits = static_cast<const uint64_t*>(out.bits.data_ptr());
  const int64_t steps = max_steps_of(*L);
  const size_t smem = select_smem(sh.D, steps, find);
  dispatch(q.dtype(), sh.D, op, [&](auto tag, auto dim) {
    using T = decltype(tag);
    constexpr int D = decltype(dim)::value;
    auto kernel = find ? select_kernel<T, D, true> : select_kernel<T, D, false>;
    SPARTA_CUDA_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    kernel<<<grid_of(sh.B * sh.H, sh.N, op), kSelectWarps * 32, smem, stream()>>>(
        dl->host_segments[0], rep, sh.H, sh.N, int(steps), float(scale), unsigned(std::min<int64_t>(L->top_k, 1 << 30)),
        static_cast<const T*>(q.data_ptr()), static_cast<const T*>(k.data_ptr()),
        static_cast<float*>(threshold.data_ptr()), static_cast<uint64_t*>(out.bits.data_ptr()));
    SPARTA_CUDA_LAUNCH_CHECK(op);
  });
  return out;
}

// t (B, H, rows[, D]) as (1, B H, rows[, D]): the replica's layout per (batch, head).
Tensor flat(const Tensor& t) {
  Shape s = t.shape();
  s[1] *= s[0];
  s[0] = 1;
  return t.view(s);
}

}  // namespace
}  // namespace sparta::cuda::flash

namespace sparta::cuda::topk {

const char* flash_unsupported(const attn::BlockLayout& L, int64_t D) {
  if (L.next) return "top-k over several segments";
  if (!L.q_pos.empty() || !L.k_pos.empty() || L.n_keys != L.seq_len) return "top-k over a permuted segment";
  const int64_t steps = flash::max_steps_of(L);
  if (steps * flash::kTile > flash::kMaxRowKeys || flash::select_smem(D, steps, true) > size_t(flash::shared_optin()))
    return "a top-k row longer than the selection holds";
  return nullptr;
}

Tensor flash_forward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                     const Tensor& o, const Tensor& lse, const Tensor& threshold) {
  const flash::Selection sel = flash::select(L, scale, q, k, threshold, true);
  flash::forward_layout(sel.layout, scale, flash::flat(q), flash::flat(k), flash::flat(v), flash::flat(o),
                        flash::flat(lse));
  return sel.bits;
}

void flash_backward(const LayoutPtr& L, double scale, const Tensor& q, const Tensor& k, const Tensor& v,
                    const Tensor& o, const Tensor& lse, const Tensor& threshold, const Tensor& dout, const Tensor& delta,
                    const Tensor& dq, const Tensor& dk, const Tensor& dv, const Tensor& selection) {
  const flash::Selection sel = flash::select(L, scale, q, k, threshold, false, selection);
  const Tensor sums = flash::backward_dq_sums(flash::flat(q));
  const Tensor lse2 = flash::row_terms(o, dout, lse, delta, sums);
  flash::backward_layout(sel.layout, scale, flash::flat(q), flash::flat(k), flash::flat(v), flash::flat(lse), delta,
                         flash::flat(dout), flash::flat(dq), flash::flat(dk), flash::flat(dv), lse2, sums);
}

}  // namespace sparta::cuda::topk
