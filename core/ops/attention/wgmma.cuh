#pragma once
// PTX wrappers for Hopper's warpgroup MMA (wgmma, sm_90a), as the tensor-core attention kernels use
// them (attention_flash_*.cu). Compiled for another target, the products trap: callers launch the
// kernels that use them only on compute capability 9.0.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

namespace sparta::cuda::flash {

// Hopper's warpgroup MMA: the CTA's 4 warps issue one m64n64k16 product together; B (and A, when
// not in registers) is read from shared memory through a descriptor, once per warpgroup rather
// than once per warp as ldmatrix does. Accumulators and register A fragments have the layouts of
// mma.m16n8k16 (warp w holds rows 16 w ..), so the softmax code is the same for both paths.
// Tiles for wgmma are 64 rows of 128 bytes (D = 64; a D = 128 tile is two of them, one per
// 64-column half), 1024-byte aligned, with the 128-byte swizzle: 16-byte chunk c of row r sits at
// chunk c ^ (r % 8) of that row.

__device__ __forceinline__ uint32_t swizzle_offset(int r, int byte_col) {
  return uint32_t(r * 128 + ((((byte_col >> 4) ^ r) & 7) << 4) + (byte_col & 15));
}

// The descriptor of a swizzled tile: K-major operands (rows are M or N, the 64 columns K) step K by
// adding 32 bytes per 16 columns; MN-major ones (rows are K) step K by 16 rows, 2048 bytes. The
// stride between 8-row groups is 1024 bytes; the leading offset is unused for one 64-column tile.
__device__ __forceinline__ uint64_t wg_desc(uint32_t smem_addr) {
  return uint64_t((smem_addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) | (uint64_t(1) << 62);
}

// Descriptor steps (the start address is in 16-byte units): one 64 x 64 tile of 16-bit elements,
// 16 columns of a K-major tile, 16 rows of an MN-major one.
constexpr uint64_t kDescTile = 64 * 128 / 16, kDescK16 = 32 / 16, kDescRows16 = 2048 / 16;

// The descriptor offset of k-step ks (columns 16 ks ..) of a K-major tile stored as 64-column halves
// (D = 128: steps 4 .. 7 are the second half's 0 .. 3).
__device__ __forceinline__ uint64_t k_step(int ks) { return ks / 4 * kDescTile + ks % 4 * kDescK16; }

// Columns 64 h .. 64 h + 63 of an accumulator of D / 8 n-tiles, as the 64-column accumulator one
// m64n64 product takes (a D = 128 output is two of them).
template <int NT>
__device__ __forceinline__ float (&half_of(float (&acc)[NT][4], int h))[8][4] {
  return *reinterpret_cast<float (*)[8][4]>(&acc[8 * h]);
}

// dst[0 .. bytes) += src[0 .. bytes) as f32, in global memory, by the copy engine (the adds happen
// in L2, not as per-element atomics from the SM); src in shared memory, both 16-byte aligned,
// bytes a multiple of 16. The issuing thread commits and later waits for the group.
__device__ __forceinline__ void bulk_reduce_add_f32(float* dst, const float* src, uint32_t bytes) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(dst),
               "r"(static_cast<uint32_t>(__cvta_generic_to_shared(src))), "r"(bytes)
               : "memory");
  asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
#else
  __trap();
#endif
}
// Until this thread's bulk groups have read their shared memory source (it may be rewritten).
__device__ __forceinline__ void bulk_wait_read() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
#endif
}
// Until this thread's bulk groups are complete (their writes done).
__device__ __forceinline__ void bulk_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
#endif
}

// (For other targets the fences and waits are empty and the products below trap: the PTX embedded
// for older GPUs must hold no wgmma instruction, or their driver could not compile any kernel of the
// file.)
__device__ __forceinline__ void wg_fence() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wg_commit() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#endif
}
// Until at most N of the warpgroup's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void wg_wait() {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#endif
}
// Makes this thread's generic-proxy writes to shared memory (st.shared, cp.async) visible to the
// async proxy that wgmma reads through; a barrier must follow before the wgmma.
__device__ __forceinline__ void fence_proxy_async() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
}

// The 32 accumulator operands of one m64n64 product (C: "+f" to accumulate, "=f" to overwrite).
#define SPARTA_WG_ACC(C)                                                                                          \
  C(d[0][0]), C(d[0][1]), C(d[0][2]), C(d[0][3]), C(d[1][0]), C(d[1][1]), C(d[1][2]), C(d[1][3]), C(d[2][0]),     \
      C(d[2][1]), C(d[2][2]), C(d[2][3]), C(d[3][0]), C(d[3][1]), C(d[3][2]), C(d[3][3]), C(d[4][0]), C(d[4][1]), \
      C(d[4][2]), C(d[4][3]), C(d[5][0]), C(d[5][1]), C(d[5][2]), C(d[5][3]), C(d[6][0]), C(d[6][1]), C(d[6][2]), \
      C(d[6][3]), C(d[7][0]), C(d[7][1]), C(d[7][2]), C(d[7][3])
#define SPARTA_WG_D                          \
  "{%0, %1, %2, %3, %4, %5, %6, %7, "        \
  "%8, %9, %10, %11, %12, %13, %14, %15, "   \
  "%16, %17, %18, %19, %20, %21, %22, %23, " \
  "%24, %25, %26, %27, %28, %29, %30, %31}"
#define SPARTA_WG_MMA(TY) "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " "

// d (64 x 64, f32) += A B, A and B in shared memory. TA / TB: 1 when that operand is MN-major.
// kZero: d = A B instead (scale-d 0). Its accumulators are outputs only, so nothing zeroes them
// first: zeroing them in registers while an earlier product is in flight made ptxas wait for it.
template <typename T, int TA, int TB, bool kZero = false>
__device__ __forceinline__ void wg_mma_ss(float (&d)[8][4], uint64_t da, uint64_t db) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SPARTA_WG_SS(TY, C, SCALE)                                                        \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n" SPARTA_WG_MMA(TY) SPARTA_WG_D \
               ", %32, %33, p, 1, 1, %35, %36;\n}\n"                                      \
               : SPARTA_WG_ACC(C)                                                         \
               : "l"(da), "l"(db), "r"(SCALE), "n"(TA), "n"(TB))
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    if constexpr (kZero)
      SPARTA_WG_SS("bf16", "=f", 0);
    else
      SPARTA_WG_SS("bf16", "+f", 1);
  } else {
    if constexpr (kZero)
      SPARTA_WG_SS("f16", "=f", 0);
    else
      SPARTA_WG_SS("f16", "+f", 1);
  }
#undef SPARTA_WG_SS
#else
  __trap();
#endif
}

// d (64 x 64, f32) += A B, A in registers (the mma.m16n8k16 A fragment of the warp's 16 rows), B
// in shared memory. TB: 1 when B is MN-major.
template <typename T, int TB>
__device__ __forceinline__ void wg_mma_rs(float (&d)[8][4], const uint32_t (&a)[4], uint64_t db) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define SPARTA_WG_RS(TY)                                                                  \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n" SPARTA_WG_MMA(TY) SPARTA_WG_D \
               ", {%32, %33, %34, %35}, %36, p, 1, 1, %38;\n}\n"                          \
               : SPARTA_WG_ACC("+f")                                                      \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1), "n"(TB))
  if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    SPARTA_WG_RS("bf16");
  } else {
    SPARTA_WG_RS("f16");
  }
#undef SPARTA_WG_RS
#else
  __trap();
#endif
}

#undef SPARTA_WG_MMA
#undef SPARTA_WG_D
#undef SPARTA_WG_ACC

}  // namespace sparta::cuda::flash
