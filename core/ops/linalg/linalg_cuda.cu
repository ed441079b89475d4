// Batched matmul on CUDA through cuBLASLt. a (batch_a..., M, K) @ b (batch_b..., K, N) -> out
// (batch..., M, N), batch_a and batch_b broadcasting to batch; out is contiguous.
//
// cuBLASLt is column-major, and a row-major matrix read as column-major is its transpose, so the
// row-major product C = A B is issued as the column-major product C^T = B^T A^T: b fills cuBLASLt's
// A slot and a its B slot (m = N, n = M, k = K), and out is C^T with leading dimension N. An operand
// whose matrix is a transposed view (unit stride on rows) goes in with the transpose flag instead
// of a copy. The batch must reduce to one strided dimension per operand (cuBLASLt has one batch
// stride); a broadcast operand gets batch stride 0, and a weight shared by every batch entry of a
// row-major a is folded into one (batch * M) x K product. Layouts cuBLASLt cannot take (no unit
// stride inside a matrix, several unmergeable batch dims, no algorithm) are made dense first.
//
// Per device: one cuBLASLt handle and a 32 MiB workspace, both kept for the process's life. Per
// problem (shapes, strides, dtype, transposes, pointer alignment): the descriptors and the
// heuristic's algorithm, cached, so a training step never re-runs the heuristic.
#include <cublasLt.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <type_traits>
#include <unordered_map>

#include "core/cuda/check.h"
#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "core/ops/linalg/linalg.h"
#include "core/ops/linalg/matmul_layout.h"

namespace sparta {
namespace {

Shape batch_of(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

}  // namespace

Tensors MatMul::eval_cuda(const Tensors& in) {
  const Tensor a = in[0].detach(), b = in[1].detach();
  Shape shape = broadcast_shapes(batch_of(a), batch_of(b), "matmul");
  shape.push_back(a.shape(-2));
  shape.push_back(b.shape(-1));
  Tensor out = Tensor::empty(shape, a.dtype(), a.device());
  cuda::matmul(a, b, out);
  return {out};
}

namespace cuda {
namespace {

constexpr int kMaxDevices = 16;
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

std::string describe(const Tensor& a, const Tensor& b) {
  return shape_str(a.shape()) + " @ " + shape_str(b.shape()) + ", " + dtype_name(a.dtype());
}

#define SPARTA_CUBLASLT_CHECK(what, expr)                                                                   \
  do {                                                                                                     \
    cublasStatus_t sparta_st_ = (expr);                                                                    \
    if (sparta_st_ != CUBLAS_STATUS_SUCCESS)                                                               \
      SPARTA_FAIL("matmul", #expr, ": ", cublasLtGetStatusName(sparta_st_), " (",                          \
                  cublasLtGetStatusString(sparta_st_), ") for ", what);                                    \
  } while (0)

struct DeviceState {
  cublasLtHandle_t handle = nullptr;
  void* workspace = nullptr;
};

// The handle and workspace are never destroyed: at exit the CUDA context may already be gone.
const DeviceState& device_state(int device) {
  static std::once_flag flags[kMaxDevices];
  static DeviceState states[kMaxDevices];
  SPARTA_CHECK(device >= 0 && device < kMaxDevices, "matmul", "device cuda:", device, " out of range");
  std::call_once(flags[device], [device] {
    DeviceState& s = states[device];
    SPARTA_CUBLASLT_CHECK("the handle of cuda:" + std::to_string(device), cublasLtCreate(&s.handle));
    s.workspace = device_malloc(kWorkspaceBytes, device);  // stream-ordered on cuda::stream()
  });
  return states[device];
}

bool allow_tf32() {
  static const bool on = [] {
    const char* v = std::getenv("SPARTA_ALLOW_TF32");
    return v != nullptr && v[0] == '1';
  }();
  return on;
}

// ---- layouts ----------------------------------------------------------------------------------

using linalg::Layout;
using linalg::batch_readable;
using linalg::layout_of;
using linalg::matrix_readable;

// The batch dims of {a, b, out} merged where every operand walks them as one (both broadcast, or
// both present with outer stride = inner stride * inner size); result dims of size 1 dropped. An
// operand absent from a merged dim has stride 0 there.
struct Batch {
  std::vector<int64_t> sizes;
  std::vector<int64_t> strides[3];
};

Batch merge_batch(const Layout* ops[3]) {
  const size_t nb = ops[2]->dims.size() - 2;
  Batch m;
  std::vector<bool> present[3];
  for (size_t i = 0; i < nb; ++i) {
    const int64_t size = ops[2]->dims[i];
    if (size == 1) continue;
    bool joins = !m.sizes.empty();
    for (int o = 0; o < 3 && joins; ++o) {
      const Layout& l = *ops[o];
      const bool outer_present = present[o].back(), inner_present = l.dims[i] > 1;
      if (outer_present != inner_present) joins = false;
      else if (inner_present && m.strides[o].back() != l.strides[i] * l.dims[i]) joins = false;
    }
    if (joins) {
      m.sizes.back() *= size;
      for (int o = 0; o < 3; ++o) m.strides[o].back() = present[o].back() ? ops[o]->strides[i] : 0;
    } else {
      m.sizes.push_back(size);
      for (int o = 0; o < 3; ++o) {
        const bool p = ops[o]->dims[i] > 1;
        present[o].push_back(p);
        m.strides[o].push_back(p ? ops[o]->strides[i] : 0);
      }
    }
  }
  return m;
}

// ---- plans ------------------------------------------------------------------------------------

// One cuBLASLt problem as cuBLASLt sees it (column-major, after the C^T = B^T A^T swap). Every
// field is an int64_t so the struct has no padding and hashes as a plain array.
struct Problem {
  int64_t device = 0, dtype = 0, tf32 = 0;
  int64_t trans_a = 0, trans_b = 0;  // cuBLASLt's A (our b) and B (our a)
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  int64_t align_a = 0, align_b = 0, align_c = 0;

  static constexpr size_t kFields = 18;
  const int64_t* fields() const { return &device; }
  bool operator==(const Problem& o) const { return std::equal(fields(), fields() + kFields, o.fields()); }
};
static_assert(sizeof(Problem) == Problem::kFields * sizeof(int64_t), "Problem must be a plain array of int64_t");

struct ProblemHash {
  size_t operator()(const Problem& p) const {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the fields
    for (size_t i = 0; i < Problem::kFields; ++i) h = (h ^ uint64_t(p.fields()[i])) * 1099511628211ull;
    return size_t(h);
  }
};

struct Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  // Not success (or no algorithm found): the heuristic refused this layout; the caller goes dense.
  cublasStatus_t status = CUBLAS_STATUS_NOT_SUPPORTED;

  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  // Descriptors are host objects: safe to destroy at exit.
  ~Plan() {
    if (lc) cublasLtMatrixLayoutDestroy(lc);
    if (lb) cublasLtMatrixLayoutDestroy(lb);
    if (la) cublasLtMatrixLayoutDestroy(la);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

cudaDataType_t data_type(DType t) {
  switch (t) {
    case DType::f64: return CUDA_R_64F;
    case DType::f32: return CUDA_R_32F;
    case DType::bf16: return CUDA_R_16BF;
    case DType::f16: return CUDA_R_16F;
    default: SPARTA_FAIL("matmul", "no cuBLASLt type for ", dtype_name(t));
  }
}

void make_layout(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld,
                 int64_t batch, int64_t stride, const std::string& what) {
  SPARTA_CUBLASLT_CHECK(what, cublasLtMatrixLayoutCreate(l, type, rows, cols, ld));
  if (batch > 1) {
    const int32_t count = int32_t(batch);
    SPARTA_CUBLASLT_CHECK(what, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                                  sizeof(count)));
    SPARTA_CUBLASLT_CHECK(what, cublasLtMatrixLayoutSetAttribute(*l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                                  &stride, sizeof(stride)));
  }
}

std::unique_ptr<Plan> make_plan(const Problem& p, const std::string& what) {
  auto plan = std::make_unique<Plan>();
  const cudaDataType_t type = data_type(DType(p.dtype));
  const bool f64 = DType(p.dtype) == DType::f64;
  const cublasComputeType_t compute =
      f64 ? CUBLAS_COMPUTE_64F : (p.tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  SPARTA_CUBLASLT_CHECK(what, cublasLtMatmulDescCreate(&plan->op, compute, f64 ? CUDA_R_64F : CUDA_R_32F));
  const cublasOperation_t ta = p.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  SPARTA_CUBLASLT_CHECK(what, cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
  SPARTA_CUBLASLT_CHECK(what, cublasLtMatmulDescSetAttribute(plan->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
  // Stored shapes: op(A) is m x k, op(B) is k x n, C is m x n.
  make_layout(&plan->la, type, uint64_t(p.trans_a ? p.k : p.m), uint64_t(p.trans_a ? p.m : p.k), p.lda, p.batch,
              p.stride_a, what);
  make_layout(&plan->lb, type, uint64_t(p.trans_b ? p.n : p.k), uint64_t(p.trans_b ? p.k : p.n), p.ldb, p.batch,
              p.stride_b, what);
  make_layout(&plan->lc, type, uint64_t(p.m), uint64_t(p.n), p.ldc, p.batch, p.stride_c, what);

  cublasLtMatmulPreference_t pref = nullptr;
  SPARTA_CUBLASLT_CHECK(what, cublasLtMatmulPreferenceCreate(&pref));
  std::unique_ptr<std::remove_pointer_t<cublasLtMatmulPreference_t>, cublasStatus_t (*)(cublasLtMatmulPreference_t)>
      pref_guard(pref, cublasLtMatmulPreferenceDestroy);
  const uint64_t ws = kWorkspaceBytes;
  SPARTA_CUBLASLT_CHECK(what, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                   &ws, sizeof(ws)));
  // The defaults assume 256-byte aligned buffers; views with offsets are not.
  const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, uint32_t(p.align_a)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, uint32_t(p.align_b)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, uint32_t(p.align_c)},
      {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, uint32_t(p.align_c)}};
  for (const auto& [attr, value] : aligns) {
    SPARTA_CUBLASLT_CHECK(what, cublasLtMatmulPreferenceSetAttribute(pref, attr, &value, sizeof(value)));
  }
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  plan->status = cublasLtMatmulAlgoGetHeuristic(device_state(int(p.device)).handle, plan->op, plan->la, plan->lb,
                                                plan->lc, plan->lc, pref, 1, &result, &found);
  if (plan->status == CUBLAS_STATUS_SUCCESS && found == 0) plan->status = CUBLAS_STATUS_NOT_SUPPORTED;
  if (plan->status == CUBLAS_STATUS_SUCCESS) {
    plan->algo = result.algo;
    plan->workspace = result.workspaceSize;
  }
  return plan;
}

// a and b name the problem in errors.
const Plan& plan_for(const Problem& p, const Tensor& a, const Tensor& b) {
  static std::mutex mu;
  static std::unordered_map<Problem, std::unique_ptr<Plan>, ProblemHash> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(p);
  if (it == cache.end()) it = cache.emplace(p, make_plan(p, describe(a, b))).first;
  return *it->second;
}

// Largest power of two (up to 256) dividing the address and the batch stride in bytes: the
// alignment every matrix of the batch has.
uint32_t alignment(const void* ptr, int64_t stride_bytes) {
  const uint64_t bits = uint64_t(reinterpret_cast<uintptr_t>(ptr)) | uint64_t(stride_bytes) | 256;
  return uint32_t(bits & (~bits + 1));
}

// out = a @ b with cuBLASLt reading a and b in place. False when cuBLASLt has no algorithm for
// this layout (the caller then makes the operands dense).
bool matmul_strided(const Tensor& a_in, const Tensor& b_in, const Tensor& out, bool dense) {
  const int nb = out.dim() - 2;
  Tensor a = a_in, b = b_in;  // keep dense copies alive through the call
  Layout la = layout_of(a, nb), lb = layout_of(b, nb), lc = layout_of(out, nb);
  if (!matrix_readable(la) || !batch_readable(la)) {
    a = contiguous(a_in).detach();
    la = layout_of(a, nb);
    matrix_readable(la);
  }
  if (!matrix_readable(lb) || !batch_readable(lb)) {
    b = contiguous(b_in).detach();
    lb = layout_of(b, nb);
    matrix_readable(lb);
  }
  matrix_readable(lc);
  const Layout* ops[3] = {&la, &lb, &lc};
  const Batch batch = merge_batch(ops);
  if (batch.sizes.size() > 1) return false;  // one batch stride per operand in cuBLASLt

  const int64_t M = a.shape(-2), K = a.shape(-1), N = b.shape(-1);
  const size_t r = size_t(nb), c = r + 1;
  int64_t count = batch.sizes.empty() ? 1 : batch.sizes[0];
  int64_t sa = count > 1 ? batch.strides[0][0] : 0, sb = count > 1 ? batch.strides[1][0] : 0;
  int64_t sc = count > 1 ? batch.strides[2][0] : 0;
  const bool a_rowmajor = la.strides[c] == 1;  // otherwise la.strides[r] == 1 (transposed view)
  int64_t rows = M, a_row_stride = la.strides[r];
  // A weight shared by every batch entry of a row-major a: one (count * M) x K product.
  if (count > 1 && sb == 0 && a_rowmajor && sc == M * N) {
    if (M == 1 && sa >= K) a_row_stride = sa;
    if (sa == M * a_row_stride) {
      rows = count * M;
      count = 1;
      sa = sb = sc = 0;
    }
  }

  Problem p;
  p.device = out.device().index;
  p.dtype = int64_t(out.dtype());
  p.tf32 = out.dtype() == DType::f32 && allow_tf32();
  p.m = N;
  p.n = rows;
  p.k = K;
  // cuBLASLt's A = our b, stored (N x K) column-major when b is row-major, else (K x N) transposed.
  p.trans_a = lb.strides[c] != 1;
  p.lda = p.trans_a ? lb.strides[c] : lb.strides[r];
  // cuBLASLt's B = our a, stored (K x M) column-major when a is row-major, else (M x K) transposed.
  p.trans_b = !a_rowmajor;
  p.ldb = a_rowmajor ? a_row_stride : la.strides[c];
  p.ldc = N;
  p.batch = count;
  p.stride_a = sb;
  p.stride_b = sa;
  p.stride_c = sc;
  const int64_t item = int64_t(out.itemsize());
  p.align_a = alignment(b.data_ptr(), sb * item);
  p.align_b = alignment(a.data_ptr(), sa * item);
  p.align_c = alignment(out.data_ptr(), sc * item);

  const Plan& plan = plan_for(p, a_in, b_in);
  if (plan.status != CUBLAS_STATUS_SUCCESS) {
    // A strided or broadcast layout cuBLASLt refuses goes dense; a dense one it refuses is an error.
    SPARTA_CHECK(!dense, "matmul", "cuBLASLt finds no algorithm (", cublasLtGetStatusName(plan.status), ") for ",
                 describe(a_in, b_in), " (m ", p.m, ", n ", p.n, ", k ", p.k, ", batch ", p.batch, ")");
    return false;
  }
  const DeviceState& dev = device_state(int(p.device));
  const float one32 = 1, zero32 = 0;
  const double one64 = 1, zero64 = 0;
  const bool f64 = out.dtype() == DType::f64;
  const void* alpha = f64 ? static_cast<const void*>(&one64) : static_cast<const void*>(&one32);
  const void* beta = f64 ? static_cast<const void*>(&zero64) : static_cast<const void*>(&zero32);
  // Our b is cuBLASLt's A and our a its B (the header's C^T = B^T A^T); C and D are both out.
  SPARTA_CUBLASLT_CHECK(describe(a_in, b_in),
                        cublasLtMatmul(dev.handle, plan.op, alpha, b.data_ptr(), plan.la, a.data_ptr(), plan.lb, beta,
                                       out.data_ptr(), plan.lc, out.data_ptr(), plan.lc, &plan.algo, dev.workspace,
                                       plan.workspace, stream()));
  return true;
}

}  // namespace

void matmul(const Tensor& a, const Tensor& b, const Tensor& out) {
  SPARTA_CHECK(out.is_contiguous(), "matmul", "the CUDA kernel writes a contiguous result");
  SPARTA_CUDA_CHECK("matmul", cudaSetDevice(out.device().index));
  if (out.numel() == 0) return;
  if (a.shape(-1) == 0) {  // an empty sum: zero bits are 0.0 in every float type
    SPARTA_CUDA_CHECK("matmul", cudaMemsetAsync(out.data_ptr(), 0, out.nbytes(), stream()));
    return;
  }
  if (matmul_strided(a, b, out, /*dense=*/false)) return;
  // Both operands expanded to the full batch and made dense: one strided batch, which cuBLASLt
  // always takes.
  const int64_t m = a.shape(-2), k = a.shape(-1), n = b.shape(-1);
  Shape sa(out.shape().begin(), out.shape().end() - 2), sb = sa;
  sa.insert(sa.end(), {m, k});
  sb.insert(sb.end(), {k, n});
  const Tensor ta = contiguous(expand(a, sa)).detach(), tb = contiguous(expand(b, sb)).detach();
  matmul_strided(ta, tb, out, /*dense=*/true);
}

}  // namespace cuda
}  // namespace sparta
