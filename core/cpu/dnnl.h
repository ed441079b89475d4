#pragma once
// The one place that talks to oneDNN: the CPU engine and stream, the DType mapping, and a small
// cache of matmul primitives (creating one costs far more than running a small one).
//
// oneDNN 2.x (Debian 12 ships 2.6) has the v2 API: matmul::desc + primitive_desc(desc, engine);
// code for v3 is guarded with DNNL_VERSION_MAJOR.
#include <dnnl.hpp>

#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace sparta::cpu::dnnl_support {

dnnl::engine& engine();
// One stream per thread: oneDNN streams are not meant to be shared between threads that execute
// at the same time, and an in-order CPU stream is cheap.
dnnl::stream& stream();
dnnl::memory::data_type to_dnnl(DType t);  // throws for types oneDNN has no matmul for

// One matmul operand or result: (batch..., rows, cols) with element strides, rank 2..12. A batch
// dimension of size 1 where the result's is larger is broadcast by oneDNN.
struct MatDesc {
  std::vector<int64_t> dims, strides;
  DType dtype;
};

// Whether oneDNN has a real (not reference) kernel for a dense matmul of these types on this CPU.
// bf16 and f16 need AVX-512 (avx512_core_bf16 / avx512_core_fp16) in oneDNN 2.x; on an AVX2
// CPU primitive creation fails and callers compute in f32 instead.
bool matmul_is_fast(DType in, DType out);

// c = a @ b through a cached primitive; pointers address element 0 of each operand. When
// allow_reference is false and oneDNN would pick its naive reference kernel for these layouts
// (it does for some strides and broadcasts), nothing runs and the result is false: the caller
// makes the operands dense and calls again.
bool matmul(const MatDesc& a, const void* pa, const MatDesc& b, const void* pb, const MatDesc& c, void* pc,
            bool allow_reference);

}  // namespace sparta::cpu::dnnl_support
