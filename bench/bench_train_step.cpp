// Tokens/s and peak memory of one training step (forward, backward, AdamW) of a Sparse Transformer
// LM on random tokens, on the CPU or a GPU. Defaults: the end-to-end issue's benchmark (T=512,
// d_model=256, 4 layers, 4 heads, batch 8, dense causal, f32); --gpt2-small: the CUDA issue's
// (12 layers, d_model 768, 12 heads, vocabulary 50304, T=1024, batch 16). bench/pytorch_train_step.py
// is the same model in PyTorch.
//
// Data parallel: launched by `mpirun -np N` or torchrun-style variables, every rank runs the step on
// its own batch, gradients averaged over NCCL (cuda) or MPI (cpu) by train::dist::GradReducer, and
// rank 0 prints tokens/s per process (the slowest rank's median step): the weak-scaling figure.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "autograd/autograd.h"
#include "core/autocast.h"
#include "core/cuda/runtime.h"
#include "core/ops.h"
#include "nn/transformer.h"
#include "train/dist/communicator.h"
#include "train/dist/reducer.h"
#include "train/optimizer.h"

using namespace sparta;

int run(int argc, char** argv) {
  CLI::App app{"training-step benchmark"};
  int64_t seq = 512, d_model = 256, batch = 8, steps = 6, vocab = 256, block = 64;
  int layers = 4, heads = 4;
  int64_t checkpoint_every = 0;
  std::string pattern = "dense", device_name = "cpu";
  bool gpt2_small = false, bf16 = false, reduce_bf16 = false;
  double bucket_mb = 25;
  app.add_option("--seq", seq);
  app.add_option("--d-model", d_model);
  app.add_option("--layers", layers);
  app.add_option("--heads", heads);
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "timed steps (median)");
  app.add_option("--pattern", pattern, "attention pattern (as in configs)");
  app.add_option("--vocab", vocab);
  app.add_option("--block", block, "attention block size");
  app.add_option("--device", device_name, "cpu, cuda or cuda:N");
  app.add_option("--checkpoint", checkpoint_every, "activation checkpointing: every N-th block (0: none, 1: all)");
  app.add_flag("--bf16", bf16, "bf16 autocast (matmuls and attention in bf16, f32 master weights)");
  app.add_option("--bucket-mb", bucket_mb, "data parallel: gradient bucket size (MiB)");
  app.add_flag("--reduce-bf16", reduce_bf16, "data parallel: average gradients in bf16");
  app.add_flag("--gpt2-small", gpt2_small, "12 layers, d_model 768, 12 heads, vocabulary 50304, T=1024, batch 16");
  CLI11_PARSE(app, argc, argv);
  if (gpt2_small) {
    layers = 12, heads = 12, d_model = 768, vocab = 50304, seq = 1024, batch = 16;
  }
  const Device device = train::dist::rank_device(device_from_name(device_name));
  train::dist::CommunicatorPtr comm = train::dist::world(device, 300);
  const int rank = comm->rank(), world = comm->size();

  nn::TransformerConfig c;
  c.vocab_size = vocab;
  c.d_model = d_model;
  c.n_layers = layers;
  c.n_heads = heads;
  c.max_seq_len = seq;
  c.attention = {nn::parse_pattern(pattern)};
  c.block = block;
  c.checkpoint_every = checkpoint_every;
  Generator gen(0);
  nn::SparseTransformer model(c, &gen);
  model.to(device);
  train::AdamW opt(model.named_parameters(), 0.9, 0.95, 1e-8, 0.1, {"bias", "ln", "embed"});
  std::unique_ptr<train::dist::GradReducer> reducer;
  if (world > 1)
    reducer = std::make_unique<train::dist::GradReducer>(
        comm, model.named_parameters(), bucket_mb, reduce_bf16 ? train::ReduceDType::bf16 : train::ReduceDType::f32);
  Generator data_gen(1000 + uint64_t(rank));  // each rank its own tokens
  Tensor x = randint(0, vocab, {batch, seq}, DType::i64, &data_gen),
         y = randint(0, vocab, {batch, seq}, DType::i64, &data_gen);
  x = to_device(x, device);
  y = to_device(y, device);
  std::vector<double> times;
  int64_t held = 0;
  // Two warm-up steps: the first allocates the optimizer state (and NCCL connects its peers).
  constexpr int64_t kWarmup = 2;
  for (int64_t s = 0; s < steps + kWarmup; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor loss;
    {
      AutocastGuard autocast(bf16 ? std::optional<DType>(DType::bf16) : std::nullopt);
      loss = model.loss(x, y);
    }
    autograd::backward(loss);
    loss = Tensor();  // the tape (and the activations it saved) goes with the last handle on it
    opt.step(1e-4);
    opt.zero_grad();
    if (device.is_cuda()) cuda::synchronize(device.index);  // the step's kernels have run
    if (s == kWarmup - 1) {
      // After the first step (which allocates the optimizer state), what stays between steps
      // (weights, optimizer state) is `held`; the peak above it is the step's working memory:
      // activations, gradients and temporaries.
      held = memory_stats(device).current_bytes;
      reset_peak_memory(device);
    }
    if (s >= kWarmup) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  std::vector<double> slowest{times[times.size() / 2]};
  comm->all_reduce_host(slowest, train::dist::ReduceOp::max, "the step times");
  const double t = slowest[0];
  if (rank != 0) {
    reducer.reset();
    train::dist::shutdown_world();
    return 0;
  }
  if (world > 1)
    std::printf("%d processes over %s, %lld gradient buckets of %g MiB (%s), per process: ", world, comm->backend(),
                static_cast<long long>(reducer->bucket_count()), bucket_mb, reduce_bf16 ? "bf16" : "f32");
  std::printf("sparta on %s%s%s: %lld params, T=%lld d=%lld L=%d H=%d V=%lld batch %lld %s: %.1f ms/step, %.0f tokens/s, "
              "peak %.0f MB (%.0f MB above weights and optimizer state)\n",
              device.str().c_str(), bf16 ? " (bf16 autocast)" : "",
              checkpoint_every ? (" (checkpointing every " + std::to_string(checkpoint_every) + ")").c_str() : "",
              static_cast<long long>(model.parameter_count()), static_cast<long long>(seq),
              static_cast<long long>(d_model), layers, heads, static_cast<long long>(vocab), static_cast<long long>(batch),
              pattern.c_str(), t * 1e3, double(batch * seq) / t, double(memory_stats(device).peak_bytes) / 1e6,
              double(memory_stats(device).peak_bytes - held) / 1e6);
  reducer.reset();
  train::dist::shutdown_world();
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    // One rank's error ends every rank of a data-parallel run, with its message.
    train::dist::abort_job_if_distributed(std::string("error: ") + e.what());
    std::fprintf(stderr, "bench_train_step: error: %s\n", e.what());
    return 1;
  }
}
