#pragma once
// The public op API. Every function validates its arguments (errors name the op, the shapes and
// the offending argument) and builds its result through a primitive (core/primitive.h), so every
// op here is differentiable where it makes sense, on every backend that has a kernel for it.
#include <cstdint>
#include <optional>
#include <vector>

#include "core/attention/block_layout.h"
#include "core/primitive.h"
#include "core/random.h"
#include "core/tensor.h"

namespace sparta {

// ---- creation -------------------------------------------------------------------------------
Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
Tensor full(const Shape& shape, double value, DType dtype = DType::f32, Device device = Device::cpu());
Tensor zeros_like(const Tensor& t);
Tensor ones_like(const Tensor& t);
Tensor full_like(const Tensor& t, double value);
Tensor scalar(double value, DType dtype = DType::f32, Device device = Device::cpu());  // 0-d
// [start, end) by step, like numpy.arange; i64 unless dtype says otherwise.
Tensor arange(double start, double end, double step = 1, DType dtype = DType::i64);
// Uniform [low, high) and standard normal draws from a counter-based Philox stream.
Tensor rand(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr, Device device = Device::cpu());
Tensor randn(const Shape& shape, DType dtype = DType::f32, Generator* gen = nullptr, Device device = Device::cpu());
Tensor uniform(const Shape& shape, double low, double high, DType dtype = DType::f32, Generator* gen = nullptr);
// Integers in [low, high).
Tensor randint(int64_t low, int64_t high, const Shape& shape, DType dtype = DType::i64, Generator* gen = nullptr);
// Wraps caller-owned host memory (no copy); the caller keeps it alive while the tensor lives.
Tensor from_blob(void* data, const Shape& shape, DType dtype);
// Copies values (converted to dtype) into a new CPU tensor; numel must match.
Tensor from_vector(const std::vector<double>& values, const Shape& shape, DType dtype = DType::f32);
Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape, DType dtype = DType::i64);

// ---- views (share storage) ------------------------------------------------------------------
// reshape returns a view where the strides allow and a copy otherwise; view() only ever views and
// throws when the strides make that impossible. One entry of shape may be -1.
Tensor reshape(const Tensor& x, Shape shape);
Tensor view(const Tensor& x, Shape shape);
Tensor permute(const Tensor& x, const std::vector<int>& dims);
Tensor transpose(const Tensor& x, int a, int b);
Tensor slice(const Tensor& x, int axis, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor squeeze(const Tensor& x, int axis);
Tensor unsqueeze(const Tensor& x, int axis);
Tensor flatten(const Tensor& x, int start_axis = 0, int end_axis = -1);
Tensor contiguous(const Tensor& x);
Tensor cast(const Tensor& x, DType dtype);
Tensor to_device(const Tensor& x, Device device);
Tensor clone(const Tensor& x);
// Sums a broadcast gradient back to `shape` (the inverse of broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);

// ---- elementwise ----------------------------------------------------------------------------
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor sign(const Tensor& x);
Tensor sin(const Tensor& x);
Tensor cos(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor square(const Tensor& x);
Tensor reciprocal(const Tensor& x);
enum class GeluApprox { none, tanh };
Tensor gelu(const Tensor& x, GeluApprox approx = GeluApprox::none);
Tensor gelu_grad(const Tensor& x, GeluApprox approx = GeluApprox::none);  // d gelu / dx

Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
// Comparisons give bool tensors (not differentiable).
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& x);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor masked_fill(const Tensor& x, const Tensor& mask, double value);
Tensor clamp(const Tensor& x, double lo, double hi);

// Operators; a double operand becomes a 0-d tensor of the tensor's dtype.
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// In-place updates for optimisers and gradient buffers. They bypass autograd: use them on
// leaves under NoGradGuard or on plain buffers only.
void copy_(Tensor& dst, const Tensor& src);  // broadcasts src, converts dtype
void fill_(Tensor& dst, double value);
void add_(Tensor& dst, const Tensor& src, double alpha = 1);  // dst += alpha * src
void mul_(Tensor& dst, double value);

// ---- reductions (axes may be negative; empty axes = all) -------------------------------------
Tensor sum(const Tensor& x, std::vector<int> axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int> axes = {}, bool keepdim = false);
Tensor max(const Tensor& x, std::vector<int> axes = {}, bool keepdim = false);
Tensor min(const Tensor& x, std::vector<int> axes = {}, bool keepdim = false);
// correction 1 is the unbiased estimate (PyTorch's default), 0 the population variance.
Tensor var(const Tensor& x, std::vector<int> axes = {}, bool keepdim = false, int correction = 1);
Tensor argmax(const Tensor& x, int axis, bool keepdim = false);  // i64
Tensor logsumexp(const Tensor& x, int axis, bool keepdim = false);

// ---- linear algebra -------------------------------------------------------------------------
// (..., M, K) @ (..., K, N) -> (..., M, N), batch dims broadcast; 1-D operands as in NumPy.
// bf16/f16 inputs accumulate in f32 and return their own dtype.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- neural-network ops ---------------------------------------------------------------------
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
// Normalises over the last dimension; weight and bias (may be undefined) have shape (C,).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);
// weight (V, D), indices (...) integer -> (..., D)
Tensor embedding(const Tensor& weight, const Tensor& indices);
// logits (..., C), targets (...) integer; mean over targets != ignore_index.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// Zeroes each element with probability p and scales the rest by 1/(1-p); the mask comes from a
// Philox stream at (seed, offset) so it can be replayed exactly (backward, recomputation).
Tensor dropout(const Tensor& x, double p, Generator* gen = nullptr);

// Block-sparse attention (core/ops/attention/attention.h): q, k, v (B, H, N, D) -> (B, H, N, D),
// softmax(q k^T * scale) v over the pairs the layout allows; scale 0 means 1/sqrt(D).
Tensor sparse_attention(const Tensor& q, const Tensor& k, const Tensor& v,
                        const std::shared_ptr<const attn::BlockLayout>& layout, double scale = 0);

// ---- joining and indexing -------------------------------------------------------------------
Tensor concat(const std::vector<Tensor>& xs, int axis = 0);
Tensor stack(const std::vector<Tensor>& xs, int axis = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int axis = 0);
std::vector<Tensor> chunk(const Tensor& x, int chunks, int axis = 0);
// out[..., i, ...] = x[..., index[i], ...] along axis; index is 1-D integer.
Tensor index_select(const Tensor& x, int axis, const Tensor& index);
// torch.gather: out[i][j] = x[index[i][j]][j] for axis 0; index has x's rank.
Tensor gather(const Tensor& x, int axis, const Tensor& index);
// out = x with src rows added at index along axis (the adjoint of index_select).
Tensor index_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);
// out = x with src added at index along axis (the adjoint of gather).
Tensor scatter_add(const Tensor& x, int axis, const Tensor& index, const Tensor& src);

}  // namespace sparta
