// Dropout on CUDA: the CPU's mask (dropout_keep's Philox stream: element i reads lane i % 4 of
// block key.offset + i / 4) and the CPU's arithmetic (one multiply in the compute type, one
// rounding), so a CPU and a CUDA dropout from the same generator state agree bit for bit.
#include "core/cuda/check.h"
#include "core/cuda/strided.cuh"
#include "core/cuda/types.cuh"
#include "core/ops.h"
#include "core/ops/dropout/dropout.h"

namespace sparta {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// One thread per Philox block: its four words serve four consecutive elements.
template <typename T, typename C>
__global__ void dropout_kernel(const T* x, T* out, int64_t n, PhiloxKey key, float p, C scale) {
  const int64_t groups = (n + 3) / 4;
  for (int64_t g = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; g < groups; g += int64_t(gridDim.x) * blockDim.x) {
    const Philox4 r = philox4x32(key.seed, key.offset + uint64_t(g), 0);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t i = g * 4 + lane;
      if (i >= n) break;
      out[i] = uint_to_unit(r.v[lane]) >= p ? convert<T>(convert<C>(x[i]) * scale) : convert<T>(C(0));
    }
  }
}

}  // namespace

Tensor dropout(const Tensor& x, double p, PhiloxKey key) {
  const Tensor xc = x.contiguous();
  Tensor out = Tensor::empty(xc.shape(), xc.dtype(), xc.device());
  const int64_t n = xc.numel();
  if (n == 0) return out;
  SPARTA_CUDA_DISPATCH_FLOAT(xc.dtype(), "dropout", [&] {
    using T = scalar_t;
    using C = acc_t<T>;
    const C scale = C(1) / (C(1) - C(p));  // as the CPU kernel computes it
    dropout_kernel<T, C><<<blocks((n + 3) / 4, kThreads), kThreads, 0, stream()>>>(
        static_cast<const T*>(xc.data_ptr()), static_cast<T*>(out.data_ptr()), n, key, float(p), scale);
    SPARTA_CUDA_LAUNCH_CHECK("dropout");
  });
  return out;
}

}  // namespace cuda

Tensors Dropout::eval_cuda(const Tensors& in) { return {cuda::dropout(in[0].detach(), p_, key_)}; }

}  // namespace sparta
