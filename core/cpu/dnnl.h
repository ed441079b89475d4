#pragma once
// The one place that talks to oneDNN: the CPU engine and stream, the DType mapping, and a cache of
// matmul primitives (creating one costs far more than running a small one).
#include <dnnl.hpp>

#include <cstdint>

#include "core/dtype.h"

namespace sparta::cpu::dnnl_support {

dnnl::engine& engine();
dnnl::memory::data_type to_dnnl(DType t);  // throws for types oneDNN has no matmul for

// One batched matmul operand or result: (batch, rows, cols) with element strides; batch 1 with
// stride 0 broadcasts over the other operand's batch.
struct MatDesc {
  int64_t batch, rows, cols;
  int64_t sb, sr, sc;
  DType dtype;
};

// Whether oneDNN has a real (not reference) kernel for a matmul of these types on this CPU.
bool matmul_is_fast(DType in, DType out);

// c = a @ b through a cached primitive. Pointers address element (0, 0, 0) of each operand.
void matmul(const MatDesc& a, const void* pa, const MatDesc& b, const void* pb, const MatDesc& c, void* pc);

}  // namespace sparta::cpu::dnnl_support
