// Multi-tensor AdamW and SGD updates and the global gradient norm on CUDA (train/optimizer_cuda.h).
//
// Every launch is one grid over fixed-size chunks: block b reads chunk b's descriptor (which
// parameter, which first element) and walks the chunk with its threads, so a whole parameter set
// updates in one launch whatever its tensors' sizes. The update formulas are the CPU's
// (train/optimizer.cpp), term for term in the same type, so both backends round alike.
#include "train/optimizer_cuda.h"

#include <algorithm>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"
#include "core/cuda/types.cuh"

namespace sparta::train::fused {
namespace {

constexpr int64_t kChunk = int64_t(1) << 15;  // elements per block
constexpr int kThreads = 256;

struct DeviceSlot {
  void* param;
  void* m;
  void* v;
  int64_t numel;
  double weight_decay;
};

struct Chunk {
  int64_t slot, start;
};

// One chunk of one gradient for the norm and the scaling: data already offset to the chunk.
struct GradChunk {
  void* data;
  int64_t count;
  int64_t dtype;  // a DType
};

// ---- kernels ----------------------------------------------------------------------------------

// slots: (n_slots), chunks: (grid), grads: (n_slots) of const T* or null. Each thread loads kIlp
// elements (blockDim apart, so loads stay coalesced) before it stores any: several loads in
// flight per thread is what keeps this memory-bound loop near the copy bandwidth.
constexpr int kIlp = 4;

template <typename T>
__global__ void adamw_kernel(const DeviceSlot* slots, const Chunk* chunks, const void* const* grads, AdamWArgs a) {
  const Chunk c = chunks[blockIdx.x];
  const T* __restrict__ g = static_cast<const T*>(grads[c.slot]);
  if (g == nullptr) return;
  const DeviceSlot s = slots[c.slot];
  T* __restrict__ w = static_cast<T*>(s.param);
  T* __restrict__ m = static_cast<T*>(s.m);
  T* __restrict__ v = static_cast<T*>(s.v);
  const T b1 = T(a.beta1), b2 = T(a.beta2), e = T(a.eps), lr = T(a.lr), decay = T(1 - a.lr * s.weight_decay);
  const T ic1 = T(a.inv_c1), isc2 = T(a.inv_sqrt_c2);
  const int64_t end = s.numel < c.start + kChunk ? s.numel : c.start + kChunk;
  const int64_t step = int64_t(blockDim.x);
  for (int64_t base = c.start + threadIdx.x; base < end; base += kIlp * step) {
    T gr[kIlp], mr[kIlp], vr[kIlp], wr[kIlp];
#pragma unroll
    for (int u = 0; u < kIlp; ++u) {
      const int64_t j = base + u * step;
      if (j < end) {
        gr[u] = g[j];
        mr[u] = m[j];
        vr[u] = v[j];
        wr[u] = w[j];
      }
    }
#pragma unroll
    for (int u = 0; u < kIlp; ++u) {
      const int64_t j = base + u * step;
      if (j < end) {
        // train/optimizer.cpp's expression, term for term.
        const T mj = b1 * mr[u] + (1 - b1) * gr[u];
        const T vj = b2 * vr[u] + (1 - b2) * gr[u] * gr[u];
        m[j] = mj;
        v[j] = vj;
        w[j] = wr[u] * decay - lr * (mj * ic1) / (sqrt(vj) * isc2 + e);
      }
    }
  }
}

// As adamw_kernel; the momentum buffer is the slot's m.
template <typename T>
__global__ void sgd_kernel(const DeviceSlot* slots, const Chunk* chunks, const void* const* grads, double lr_d,
                           double momentum) {
  const Chunk c = chunks[blockIdx.x];
  const T* __restrict__ g = static_cast<const T*>(grads[c.slot]);
  if (g == nullptr) return;
  const DeviceSlot s = slots[c.slot];
  T* __restrict__ w = static_cast<T*>(s.param);
  T* __restrict__ b = static_cast<T*>(s.m);
  const T mu = T(momentum), lr = T(lr_d), decay = T(1 - lr_d * s.weight_decay);
  const int64_t end = s.numel < c.start + kChunk ? s.numel : c.start + kChunk;
  const int64_t step = int64_t(blockDim.x);
  for (int64_t base = c.start + threadIdx.x; base < end; base += kIlp * step) {
    T gr[kIlp], br[kIlp], wr[kIlp];
#pragma unroll
    for (int u = 0; u < kIlp; ++u) {
      const int64_t j = base + u * step;
      if (j < end) {
        gr[u] = g[j];
        br[u] = b[j];
        wr[u] = w[j];
      }
    }
#pragma unroll
    for (int u = 0; u < kIlp; ++u) {
      const int64_t j = base + u * step;
      if (j < end) {
        const T bj = mu * br[u] + gr[u];
        b[j] = bj;
        w[j] = wr[u] * decay - lr * bj;
      }
    }
  }
}

template <typename T>
__device__ double sum_squares(const void* data, int64_t count) {
  const T* x = static_cast<const T*>(data);
  double acc = 0;
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
    const double d = static_cast<double>(cuda::widen(x[j]));
    acc += d * d;
  }
  return acc;
}

// Sums kThreads values of shared memory in a fixed tree order (deterministic); result in sh[0].
__device__ void block_sum(double* sh) {
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    __syncthreads();
    if (int(threadIdx.x) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
  }
  __syncthreads();
}

// chunks: (grid) -> partial: (grid), each chunk's sum of squares in f64 (as the CPU squares f64 casts).
__global__ void sum_squares_kernel(const GradChunk* chunks, double* partial) {
  __shared__ double sh[kThreads];
  const GradChunk c = chunks[blockIdx.x];
  double acc = 0;
  switch (DType(c.dtype)) {
    case DType::f64: acc = sum_squares<double>(c.data, c.count); break;
    case DType::f32: acc = sum_squares<float>(c.data, c.count); break;
    case DType::bf16: acc = sum_squares<__nv_bfloat16>(c.data, c.count); break;
    case DType::f16: acc = sum_squares<__half>(c.data, c.count); break;
    default: break;
  }
  sh[threadIdx.x] = acc;
  block_sum(sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = sh[0];
}

// partial: (n) -> partial[n], their sum, in a fixed order. One block.
__global__ void sum_partials_kernel(double* partial, int64_t n) {
  __shared__ double sh[kThreads];
  double acc = 0;
  for (int64_t j = threadIdx.x; j < n; j += blockDim.x) acc += partial[j];
  sh[threadIdx.x] = acc;
  block_sum(sh);
  if (threadIdx.x == 0) partial[n] = sh[0];
}

// x = x * scale in x's compute type (float for halves), as mul_ computes it.
template <typename T>
__device__ void scale_chunk(void* data, int64_t count, double scale) {
  using C = cuda::acc_t<T>;
  T* x = static_cast<T*>(data);
  const C s = C(scale);
  for (int64_t j = threadIdx.x; j < count; j += blockDim.x) x[j] = cuda::convert<T>(C(cuda::widen(x[j])) * s);
}

__global__ void scale_kernel(const GradChunk* chunks, double scale) {
  const GradChunk c = chunks[blockIdx.x];
  switch (DType(c.dtype)) {
    case DType::f64: scale_chunk<double>(c.data, c.count, scale); break;
    case DType::f32: scale_chunk<float>(c.data, c.count, scale); break;
    case DType::bf16: scale_chunk<__nv_bfloat16>(c.data, c.count, scale); break;
    case DType::f16: scale_chunk<__half>(c.data, c.count, scale); break;
    default: break;
  }
}

// ---- host helpers -----------------------------------------------------------------------------

void use_device(int device, const char* op) { SPARTA_CUDA_CHECK(op, cudaSetDevice(device)); }

// A device copy of a host array, ordered on the compute stream. The host array may be dropped
// on return: a copy from pageable memory is staged before cudaMemcpyAsync returns.
template <typename T>
T* upload(const std::vector<T>& host, int device, const char* op) {
  if (host.empty()) return nullptr;
  const size_t bytes = host.size() * sizeof(T);
  T* dev = static_cast<T*>(sparta::cuda::device_malloc(bytes, device));
  SPARTA_CUDA_CHECK(op, cudaMemcpyAsync(dev, host.data(), bytes, cudaMemcpyHostToDevice, sparta::cuda::stream()));
  return dev;
}

}  // namespace

// ---- MultiTensor ------------------------------------------------------------------------------

struct MultiTensor::Impl {
  int device = 0;
  DType dtype = DType::f32;
  int64_t n_slots = 0, n_chunks = 0;
  DeviceSlot* slots = nullptr;
  Chunk* chunks = nullptr;
  // Gradient pointers change whenever backward allocates fresh gradients: they go through a
  // page-locked buffer (an asynchronous copy) whose reuse waits on the event of its last copy,
  // long finished by the next step.
  const void** grads_host = nullptr;
  const void** grads = nullptr;
  std::vector<const void*> last;
  cudaEvent_t copied = nullptr;

  void set_grads(const std::vector<const void*>& g, const char* op) {
    SPARTA_CHECK(int64_t(g.size()) == n_slots, op, "got ", g.size(), " gradients for ", n_slots, " parameters");
    if (g == last) return;
    SPARTA_CUDA_CHECK(op, cudaEventSynchronize(copied));
    std::copy(g.begin(), g.end(), grads_host);
    SPARTA_CUDA_CHECK(op, cudaMemcpyAsync(grads, grads_host, g.size() * sizeof(void*), cudaMemcpyHostToDevice,
                                          sparta::cuda::stream()));
    SPARTA_CUDA_CHECK(op, cudaEventRecord(copied, sparta::cuda::stream()));
    last = g;
  }
};

MultiTensor::MultiTensor(int device, DType dtype, const std::vector<Slot>& slots) : impl_(std::make_unique<Impl>()) {
  SPARTA_CHECK(dtype == DType::f32 || dtype == DType::f64, "optimizer", "fused updates take f32 or f64, got ",
               dtype_name(dtype));
  Impl& s = *impl_;
  use_device(device, "optimizer");
  s.device = device;
  s.dtype = dtype;
  s.n_slots = int64_t(slots.size());
  std::vector<DeviceSlot> host;
  std::vector<Chunk> chunks;
  for (size_t i = 0; i < slots.size(); ++i) {
    const Slot& p = slots[i];
    host.push_back({p.param, p.m, p.v, p.numel, p.weight_decay});
    for (int64_t start = 0; start < p.numel; start += kChunk) chunks.push_back({int64_t(i), start});
  }
  s.n_chunks = int64_t(chunks.size());
  SPARTA_CHECK(s.n_chunks < (int64_t(1) << 31), "optimizer", "too many elements for one launch: ", s.n_chunks,
               " chunks");
  s.slots = upload(host, device, "optimizer");
  s.chunks = upload(chunks, device, "optimizer");
  s.last.assign(slots.size(), nullptr);
  if (s.n_slots > 0) {
    s.grads = static_cast<const void**>(sparta::cuda::device_malloc(slots.size() * sizeof(void*), device));
    const size_t bytes = slots.size() * sizeof(void*);
    SPARTA_CUDA_CHECK("optimizer", cudaMallocHost(reinterpret_cast<void**>(&s.grads_host), bytes));
    // All null until the first step's pointers arrive.
    SPARTA_CUDA_CHECK("optimizer", cudaMemsetAsync(s.grads, 0, bytes, sparta::cuda::stream()));
  }
  SPARTA_CUDA_CHECK("optimizer", cudaEventCreateWithFlags(&s.copied, cudaEventDisableTiming));
}

MultiTensor::~MultiTensor() {
  // No throws from here: errors are ignored, memory is returned in stream order.
  Impl& s = *impl_;
  cudaSetDevice(s.device);
  if (s.copied) {
    cudaEventSynchronize(s.copied);
    cudaEventDestroy(s.copied);
  }
  if (s.grads_host) cudaFreeHost(s.grads_host);
  if (s.grads) sparta::cuda::device_free(s.grads, s.device);
  if (s.chunks) sparta::cuda::device_free(s.chunks, s.device);
  if (s.slots) sparta::cuda::device_free(s.slots, s.device);
}

void MultiTensor::adamw(const std::vector<const void*>& grads, const AdamWArgs& args) {
  Impl& s = *impl_;
  use_device(s.device, "adamw");
  s.set_grads(grads, "adamw");
  if (s.n_chunks == 0) return;
  const cudaStream_t st = sparta::cuda::stream();
  const unsigned grid = unsigned(s.n_chunks);
  if (s.dtype == DType::f64) adamw_kernel<double><<<grid, kThreads, 0, st>>>(s.slots, s.chunks, s.grads, args);
  else adamw_kernel<float><<<grid, kThreads, 0, st>>>(s.slots, s.chunks, s.grads, args);
  SPARTA_CUDA_LAUNCH_CHECK("adamw");
}

void MultiTensor::sgd(const std::vector<const void*>& grads, double lr, double momentum) {
  Impl& s = *impl_;
  use_device(s.device, "sgd");
  s.set_grads(grads, "sgd");
  if (s.n_chunks == 0) return;
  const cudaStream_t st = sparta::cuda::stream();
  const unsigned grid = unsigned(s.n_chunks);
  if (s.dtype == DType::f64) sgd_kernel<double><<<grid, kThreads, 0, st>>>(s.slots, s.chunks, s.grads, lr, momentum);
  else sgd_kernel<float><<<grid, kThreads, 0, st>>>(s.slots, s.chunks, s.grads, lr, momentum);
  SPARTA_CUDA_LAUNCH_CHECK("sgd");
}

// ---- GradSet ----------------------------------------------------------------------------------

GradSet::GradSet(int device, const std::vector<GradRef>& grads) : device_(device) {
  use_device(device, "clip_grad_norm");
  std::vector<GradChunk> chunks;
  for (const GradRef& g : grads) {
    SPARTA_CHECK(is_floating(g.dtype), "clip_grad_norm", "gradients must be floating, got ", dtype_name(g.dtype));
    for (int64_t start = 0; start < g.numel; start += kChunk) {
      char* base = static_cast<char*>(g.data) + start * int64_t(dtype_size(g.dtype));
      chunks.push_back({base, std::min(kChunk, g.numel - start), int64_t(g.dtype)});
    }
  }
  chunks_ = int64_t(chunks.size());
  SPARTA_CHECK(chunks_ < (int64_t(1) << 31), "clip_grad_norm", "too many elements for one launch: ", chunks_,
               " chunks");
  table_ = upload(chunks, device, "clip_grad_norm");
  partial_ = static_cast<double*>(sparta::cuda::device_malloc(size_t(chunks_ + 1) * sizeof(double), device));
}

GradSet::~GradSet() {
  cudaSetDevice(device_);
  if (partial_) sparta::cuda::device_free(partial_, device_);
  if (table_) sparta::cuda::device_free(table_, device_);
}

double GradSet::sum_of_squares() {
  if (chunks_ == 0) return 0;
  use_device(device_, "clip_grad_norm");
  const cudaStream_t st = sparta::cuda::stream();
  sum_squares_kernel<<<unsigned(chunks_), kThreads, 0, st>>>(static_cast<const GradChunk*>(table_), partial_);
  SPARTA_CUDA_LAUNCH_CHECK("clip_grad_norm");
  sum_partials_kernel<<<1, kThreads, 0, st>>>(partial_, chunks_);
  SPARTA_CUDA_LAUNCH_CHECK("clip_grad_norm");
  double total = 0;
  sparta::cuda::memcpy(&total, partial_ + chunks_, sizeof(double), sparta::cuda::CopyKind::device_to_host, device_);
  return total;
}

void GradSet::scale(double scale) {
  if (chunks_ == 0) return;
  use_device(device_, "clip_grad_norm");
  const GradChunk* table = static_cast<const GradChunk*>(table_);
  scale_kernel<<<unsigned(chunks_), kThreads, 0, sparta::cuda::stream()>>>(table, scale);
  SPARTA_CUDA_LAUNCH_CHECK("clip_grad_norm");
}

}  // namespace sparta::train::fused
