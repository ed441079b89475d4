// CUDA kernels against what the GPU can do (CUDA builds only).
//   reference: device-to-device cudaMemcpyAsync of 256 MiB (one read + one write per byte).
//   memory-bound ops (elementwise, reductions, softmax, layer_norm, the fused AdamW step): GB/s
//     of the bytes they must move at least, and that as a share of the copy bandwidth.
//   matmul (cuBLASLt): TFLOP/s (2 M N K per product) for f32 and bf16 at 4096^3 and at the
//     GPT-2 small shapes with 16K tokens (qkv, fc, proj, lm head).
// Each row: two warm-up runs, then the mean of --reps runs between two CUDA events on the compute
// stream. An op without a CUDA kernel yet prints "no kernel" instead of a time.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "autograd/autograd.h"
#include "bench/cuda_timing.h"
#include "core/cuda/check.h"
#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "train/optimizer.h"

using namespace sparta;

namespace {

struct Bench {
  int reps = 20;
  double copy_gbs = 0;  // the reference bandwidth once measured

  // Mean milliseconds per run of f, timed on the compute stream after two warm-up runs.
  double time_ms(const std::function<void()>& f) const {
    f();
    f();
    return bench::elapsed_ms(reps, f) / reps;
  }

  // One row of a memory-bound op that moves `bytes` per run.
  void bandwidth(const std::string& op, const std::string& shape, double bytes, const std::function<void()>& f) {
    try {
      const double ms = time_ms(f);
      const double gbs = bytes / (ms * 1e-3) * 1e-9;
      if (copy_gbs == 0) copy_gbs = gbs;
      std::printf("| %s | %s | %.0f MB | %.1f us | %.0f GB/s | | %.0f%% |\n", op.c_str(), shape.c_str(), bytes / 1e6,
                  ms * 1e3, gbs, 100 * gbs / copy_gbs);
    } catch (const Error& e) {
      skipped(op, shape, e);
    }
    std::fflush(stdout);
  }

  // One row of a product of 2 m n k floating-point operations.
  void flops(const std::string& op, const std::string& shape, double flop, double bytes,
             const std::function<void()>& f) {
    try {
      const double ms = time_ms(f);
      const double gbs = bytes / (ms * 1e-3) * 1e-9;
      std::printf("| %s | %s | %.0f MB | %.1f us | %.0f GB/s | %.1f TFLOP/s | %.0f%% |\n", op.c_str(), shape.c_str(),
                  bytes / 1e6, ms * 1e3, gbs, flop / (ms * 1e-3) * 1e-12, 100 * gbs / copy_gbs);
    } catch (const Error& e) {
      skipped(op, shape, e);
    }
    std::fflush(stdout);
  }

  static void skipped(const std::string& op, const std::string& shape, const Error& e) {
    const std::string msg = e.what();
    const bool missing = msg.find("no CUDA kernel") != std::string::npos;
    std::printf("| %s | %s | | %s | | | |\n", op.c_str(), shape.c_str(), missing ? "no kernel" : msg.c_str());
    cudaGetLastError();  // leave no sticky launch error for the next row
  }
};

std::string dims(const Shape& s) { return shape_str(s); }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"CUDA kernel benchmarks: memory-bound ops against copy bandwidth, matmul TFLOP/s"};
  Bench b;
  int64_t elements = int64_t(1) << 26;
  int64_t tokens = 16384;
  int device = 0;
  app.add_option("--reps", b.reps, "timed runs per row (the mean is reported)")->check(CLI::PositiveNumber);
  app.add_option("--elements", elements, "elements per tensor of the memory-bound ops (64M)");
  app.add_option("--tokens", tokens, "rows (batch x sequence) of the GPT-2 shapes (16K)");
  app.add_option("--device", device, "CUDA device index");
  CLI11_PARSE(app, argc, argv);
  if (!bench::gpu_visible("bench_cuda_ops")) return 1;
  SPARTA_CUDA_CHECK("bench", cudaSetDevice(device));
  cudaDeviceProp prop{};
  SPARTA_CUDA_CHECK("bench", cudaGetDeviceProperties(&prop, device));
  const char* tf32 = std::getenv("SPARTA_ALLOW_TF32");
  std::printf("%s, %d SMs, %.0f GiB; SPARTA_ALLOW_TF32=%s; mean of %d runs after 2 warm-ups\n\n", prop.name,
              prop.multiProcessorCount, double(prop.totalGlobalMem) / (1 << 30), tf32 ? tf32 : "(unset)", b.reps);
  std::printf("| op | shape | bytes | time | GB/s | TFLOP/s | %% of copy BW |\n|---|---|---|---|---|---|---|\n");
  const Device gpu = Device::cuda(device);
  Generator gen{7};
  const double n = double(elements);

  // (a) the reference: 256 MiB device-to-device.
  {
    const int64_t count = int64_t(64) << 20;  // f32 elements in 256 MiB
    Tensor src = zeros({count}, DType::f32, gpu), dst = empty({count}, DType::f32, gpu);
    const size_t bytes = size_t(count) * 4;
    b.bandwidth("copy (cudaMemcpyAsync D2D)", "256 MiB", 2.0 * double(bytes), [&] {
      SPARTA_CUDA_CHECK("bench", cudaMemcpyAsync(dst.data_ptr(), src.data_ptr(), bytes, cudaMemcpyDeviceToDevice,
                                                 cuda::stream()));
    });
  }

  // (b) elementwise on `elements` f32 values: the bytes each must read and write.
  Tensor x = randn({elements}, DType::f32, &gen, gpu), y = randn({elements}, DType::f32, &gen, gpu);
  const std::string flat = dims({elements}) + " f32";
  b.bandwidth("add", flat, 12 * n, [&] { add(x, y); });
  b.bandwidth("mul", flat, 12 * n, [&] { mul(x, y); });
  b.bandwidth("gelu", flat, 8 * n, [&] { gelu(x); });
  b.bandwidth("gelu (tanh)", flat, 8 * n, [&] { gelu(x, GeluApprox::tanh); });
  b.bandwidth("cast f32 -> bf16", flat, 6 * n, [&] { cast(x, DType::bf16); });
  {
    Tensor acc = clone(x);
    b.bandwidth("add_ (in place)", flat, 12 * n, [&] { add_(acc, y); });
  }

  // (c) rows: reductions, softmax, layer_norm over the same values.
  const int64_t cols = 4096, rows = elements / cols;
  Tensor m = x.slice(0, 0, rows * cols).reshape({rows, cols});
  const std::string mat = dims({rows, cols}) + " f32";
  b.bandwidth("sum over rows (last axis)", mat, 4 * n + 4 * double(rows), [&] { sum(m, {-1}); });
  b.bandwidth("sum over columns (axis 0)", mat, 4 * n + 4 * double(cols), [&] { sum(m, {0}); });
  b.bandwidth("sum over all", flat, 4 * n, [&] { sum(x); });
  b.bandwidth("softmax rows", mat, 8 * n, [&] { softmax(m, -1); });
  {
    const int64_t vocab = 50304, vrows = elements / vocab;
    Tensor logits = x.slice(0, 0, vrows * vocab).reshape({vrows, vocab});
    b.bandwidth("softmax rows (vocab)", dims({vrows, vocab}) + " f32", 8 * double(vrows * vocab),
                [&] { softmax(logits, -1); });
  }
  {
    const int64_t c = 768, lrows = elements / c;
    Tensor h = x.slice(0, 0, lrows * c).reshape({lrows, c});
    Tensor w = ones({c}, DType::f32, gpu), bias = zeros({c}, DType::f32, gpu);
    b.bandwidth("layer_norm", dims({lrows, c}) + " f32", 8 * double(lrows * c), [&] { layer_norm(h, w, bias); });
    Tensor h16 = cast(h, DType::bf16);
    Tensor w16 = cast(w, DType::bf16), b16 = cast(bias, DType::bf16);
    b.bandwidth("layer_norm", dims({lrows, c}) + " bf16", 4 * double(lrows * c),
                [&] { layer_norm(h16, w16, b16); });
  }
  y = Tensor();

  // The fused AdamW step over GPT-2 small's parameter shapes (12 layers): reads w, g, m, v and
  // writes w, m, v, all f32 (28 bytes per parameter), in one launch.
  {
    train::NamedTensors params;
    int64_t total = 0;
    auto add_param = [&](const std::string& name, const Shape& shape) {
      Tensor p = autograd::requires_grad(zeros(shape, DType::f32, gpu));
      autograd::set_grad(p, full(shape, 1e-3, DType::f32, gpu));
      params.emplace_back(name, p);
      total += numel_of(shape);
    };
    add_param("wte.weight", {50304, 768});
    add_param("wpe.weight", {1024, 768});
    for (int l = 0; l < 12; ++l) {
      const std::string p = "blocks." + std::to_string(l) + ".";
      add_param(p + "ln_1.weight", {768});
      add_param(p + "ln_1.bias", {768});
      add_param(p + "attn.qkv.weight", {768, 2304});
      add_param(p + "attn.qkv.bias", {2304});
      add_param(p + "attn.proj.weight", {768, 768});
      add_param(p + "attn.proj.bias", {768});
      add_param(p + "ln_2.weight", {768});
      add_param(p + "ln_2.bias", {768});
      add_param(p + "mlp.fc.weight", {768, 3072});
      add_param(p + "mlp.fc.bias", {3072});
      add_param(p + "mlp.proj.weight", {3072, 768});
      add_param(p + "mlp.proj.bias", {768});
    }
    train::AdamW opt(params, 0.9, 0.95, 1e-8, 0.1, {"bias", "ln_", "wte", "wpe"});
    b.bandwidth("adamw step (fused)", std::to_string(params.size()) + " tensors, " + std::to_string(total) + " f32",
                28 * double(total), [&] { opt.step(1e-4); });
    // Grads read once for the norm, then read and written once to scale them (norm > 1 each run).
    b.bandwidth("clip_grad_norm", std::to_string(total) + " f32", 12 * double(total),
                [&] { train::clip_grad_norm(params, 1.0); });
  }

  // (d) matmul: C (M, N) = A (M, K) @ B (K, N); bytes are the minimum traffic (A, B read, C written).
  struct Shape3 {
    const char* what;
    int64_t m, k, n;
  };
  const Shape3 shapes[] = {{"square", 4096, 4096, 4096},
                           {"gpt2 qkv", tokens, 768, 2304},
                           {"gpt2 fc", tokens, 768, 3072},
                           {"gpt2 mlp proj", tokens, 3072, 768},
                           {"gpt2 lm head", tokens, 768, 50304}};
  for (DType dt : {DType::f32, DType::bf16}) {
    for (const Shape3& s : shapes) {
      Tensor a = cast(randn({s.m, s.k}, DType::f32, &gen, gpu), dt);
      Tensor w = cast(randn({s.k, s.n}, DType::f32, &gen, gpu), dt);
      const double item = double(dtype_size(dt));
      const double bytes = item * double(s.m * s.k + s.k * s.n + s.m * s.n);
      const std::string shape = std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n) + " " +
                                dtype_name(dt);
      b.flops(std::string("matmul ") + s.what, shape, 2.0 * double(s.m) * double(s.k) * double(s.n), bytes,
              [&] { matmul(a, w); });
      if (s.n == 3072) {  // the backward products of the same layer, through transposed views
        Tensor g = cast(randn({s.m, s.n}, DType::f32, &gen, gpu), dt);
        b.flops("matmul dX = dY W^T", shape, 2.0 * double(s.m) * double(s.k) * double(s.n), bytes,
                [&] { matmul(g, transpose(w, 0, 1)); });
        b.flops("matmul dW = X^T dY", shape, 2.0 * double(s.m) * double(s.k) * double(s.n), bytes,
                [&] { matmul(transpose(a, 0, 1), g); });
      }
    }
  }
  return 0;
}
