// Elementwise kernels, copies, casts and in-place updates on CUDA against the CPU backend.
#include "core/ops/elementwise/elementwise.h"
#include "tests/cuda/parity.h"

using namespace sparta;
using namespace sparta::test;

namespace {

// Tolerances per dtype: halves differ by their rounding step, float and double by libm-level ulps.
double rtol_of(DType dt) { return dt == DType::bf16 ? 1e-2 : dt == DType::f16 ? 2e-3 : dt == DType::f32 ? 2e-6 : 1e-13; }

const std::vector<std::pair<const char*, Tensor (*)(const Tensor&)>>& unaries() {
  static const std::vector<std::pair<const char*, Tensor (*)(const Tensor&)>> ops = {
      {"neg", neg},         {"exp", exp},   {"abs", abs},       {"sign", sign}, {"sin", sin},
      {"cos", cos},         {"tanh", tanh}, {"sigmoid", sigmoid}, {"relu", relu}, {"square", square},
      {"reciprocal", reciprocal}};
  return ops;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_elementwise, SPARTA_NEEDS_GPU)

BOOST_AUTO_TEST_CASE(unary_ops_match_cpu) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    const double rt = rtol_of(dt);
    Tensor x = random({37, 129}, dt, -3, 3);
    for (auto& [name, fn] : unaries()) {
      check_close(fn(gpu(x)), fn(x), rt, rt, std::string(name) + " " + dtype_name(dt));
      check_close(fn(gpu_noncontiguous(x)), fn(x), rt, rt, std::string(name) + " strided " + dtype_name(dt));
    }
    Tensor pos = random({1001}, dt, 0.1, 4);
    for (auto* fn : {log, sqrt, rsqrt}) check_close(fn(gpu(pos)), fn(pos), rt, rt, std::string("log/sqrt ") + dtype_name(dt));
    for (GeluApprox a : {GeluApprox::none, GeluApprox::tanh}) {
      check_close(gelu(gpu(x), a), gelu(x, a), rt, rt, std::string("gelu ") + dtype_name(dt));
      check_close(gelu_grad(gpu(x), a), gelu_grad(x, a), rt, rt, std::string("gelu_grad ") + dtype_name(dt));
    }
  }
  Tensor i = random_int(-50, 50, {77}, DType::i64);
  check_exact(abs(gpu(i)), abs(i), "abs i64");
  check_exact(neg(gpu(i)), neg(i), "neg i64");
  check_error([&] { exp(gpu(i)); }, {"[exp]", "floating"});
}

BOOST_AUTO_TEST_CASE(binary_ops_broadcast_like_cpu) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    const double rt = rtol_of(dt);
    Tensor a = random({5, 1, 33}, dt), b = random({7, 33}, dt, 0.5, 2);
    check_close(gpu(a) + gpu(b), a + b, rt, rt, "add");
    check_close(gpu(a) - gpu(b), a - b, rt, rt, "sub");
    check_close(gpu(a) * gpu(b), a * b, rt, rt, "mul");
    check_close(gpu(a) / gpu(b), a / b, rt, rt, "div");
    check_close(pow(gpu(b), gpu(a)), pow(b, a), rt, rt, "pow");
    check_close(maximum(gpu(a), gpu(b)), maximum(a, b), 0, 0, "maximum");
    check_close(minimum(gpu(a), gpu_noncontiguous(b)), minimum(a, b), 0, 0, "minimum strided");
    check_exact(lt(gpu(a), gpu(b)), lt(a, b), "lt");
    check_exact(ge(gpu(a), gpu(b)), ge(a, b), "ge");
    check_exact(eq(gpu(a), gpu(a)), eq(a, a), "eq");
    check_close(gpu(a) * 2.5 + 1.0, a * 2.5 + 1.0, rt, rt, "scalar operands");
    Tensor c = gt(a, scalar(0, dt));
    check_close(where(gpu(c), gpu(a), gpu(b)), where(c, a, b), 0, 0, "where");
  }
  Tensor i = random_int(-9, 9, {4, 6}, DType::i32), j = random_int(1, 9, {6}, DType::i32);
  check_exact(gpu(i) * gpu(j), i * j, "mul i32");
  check_exact(gpu(i) + gpu(j), i + j, "add i32");
}

BOOST_AUTO_TEST_CASE(gradients_match_cpu) {
  check_fn_parity("gelu*tanh+div", [](const Tensors& x) { return gelu(x[0]) * tanh(x[1]) + x[0] / (x[1] * x[1] + 1.0); },
                  {random({13, 70}), random({1, 70})}, 1e-5, 1e-6);
  check_fn_parity("where/maximum", [](const Tensors& x) { return where(gt(x[0], x[1]), x[0], maximum(x[0], x[1] * 0.5)); },
                  {random({9, 31}), random({9, 31})}, 1e-5, 1e-6);
}

BOOST_AUTO_TEST_CASE(large_dense_and_odd_sizes) {
  for (int64_t n : {int64_t(1), int64_t(3), int64_t(4097), int64_t(1) << 22}) {
    Tensor a = random({n}), b = random({n});
    check_close(gpu(a) * gpu(b) + gpu(b), a * b + b, 1e-6, 1e-6, "fma n=" + std::to_string(n));
    check_close(gelu(gpu(cast(a, DType::bf16))), gelu(cast(a, DType::bf16)), 1e-2, 1e-2, "bf16 gelu n=" + std::to_string(n));
  }
  // A view that starts off a 16-byte boundary takes the scalar path.
  Tensor a = random({1000});
  check_close(exp(gpu(a).slice(0, 1, 1000)), exp(a.slice(0, 1, 1000)), 1e-6, 1e-6, "unaligned view");
}

BOOST_AUTO_TEST_CASE(casts_and_copies_keep_cpu_rounding) {
  Tensor x = random({65, 33}, DType::f64, -300, 300);
  for (DType to : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64, DType::u8, DType::boolean}) {
    Tensor src = to == DType::u8 ? abs(x) : x;
    check_exact(cast(gpu(src), to), cast(src, to), std::string("cast f64 -> ") + dtype_name(to));
    check_exact(cast(cast(gpu(src), to), DType::f32), cast(cast(src, to), DType::f32),
                std::string("cast back from ") + dtype_name(to));
  }
  Tensor t = random({6, 7, 8});
  check_exact(contiguous(gpu(t).permute({2, 0, 1})), contiguous(t.permute({2, 0, 1})), "permute copy");
  check_exact(gpu(t).transpose(0, 2).reshape({-1}), t.transpose(0, 2).reshape({-1}), "reshape of a transpose");
  check_exact(clone(gpu(t).slice(1, 1, 7, 3)), clone(t.slice(1, 1, 7, 3)), "strided slice copy");
}

BOOST_AUTO_TEST_CASE(in_place_updates_and_creation) {
  Tensor d = random({50, 20}), s = random({20});
  Tensor dg = gpu(d);
  add_(dg, gpu(s), -0.5);
  add_(d, s, -0.5);
  check_close(dg, d, 1e-6, 1e-6, "add_ broadcast");
  mul_(dg, 3.0);
  mul_(d, 3.0);
  check_close(dg, d, 1e-6, 1e-6, "mul_");
  fill_(dg, 0.1);
  check_exact(dg, full({50, 20}, 0.1), "fill_");
  copy_(dg, s);  // from the CPU, broadcast
  check_exact(dg, expand(s, {50, 20}), "copy_ from host");
  check_exact(zeros({3, 5}, DType::bf16, Device::cuda()), zeros({3, 5}, DType::bf16), "zeros");
  check_exact(full({4}, 1.0 / 3, DType::f16, Device::cuda()), full({4}, 1.0 / 3, DType::f16), "full f16");
}

BOOST_AUTO_TEST_SUITE_END()
