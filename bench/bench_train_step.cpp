// Tokens/s of one training step (forward, backward, AdamW) of a Sparse Transformer LM on random
// tokens, the shape of the end-to-end issue's benchmark by default (T=512, d_model=256, 4 layers,
// 4 heads, batch 8, dense causal, f32). bench/pytorch_train_step.py is the same model in PyTorch.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "autograd/autograd.h"
#include "core/ops.h"
#include "nn/transformer.h"
#include "train/optimizer.h"

using namespace sparta;

int main(int argc, char** argv) {
  CLI::App app{"training-step benchmark (CPU)"};
  int64_t seq = 512, d_model = 256, batch = 8, steps = 6;
  int layers = 4, heads = 4;
  std::string pattern = "dense";
  app.add_option("--seq", seq);
  app.add_option("--d-model", d_model);
  app.add_option("--layers", layers);
  app.add_option("--heads", heads);
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "timed steps (median)");
  app.add_option("--pattern", pattern, "attention pattern (as in configs)");
  CLI11_PARSE(app, argc, argv);

  nn::TransformerConfig c;
  c.vocab_size = 256;
  c.d_model = d_model;
  c.n_layers = layers;
  c.n_heads = heads;
  c.max_seq_len = seq;
  c.attention = {nn::parse_pattern(pattern)};
  c.block = 64;
  Generator gen(0);
  nn::SparseTransformer model(c, &gen);
  train::AdamW opt(model.named_parameters(), 0.9, 0.95, 1e-8, 0.1, {"bias", "ln", "embed"});
  Tensor x = randint(0, 256, {batch, seq}, DType::i64, &gen), y = randint(0, 256, {batch, seq}, DType::i64, &gen);
  std::vector<double> times;
  for (int64_t s = 0; s < steps + 1; ++s) {
    auto t0 = std::chrono::steady_clock::now();
    autograd::backward(model.loss(x, y));
    opt.step(1e-4);
    opt.zero_grad();
    if (s > 0) times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  const double t = times[times.size() / 2];
  std::printf("sparta: %lld params, T=%lld d=%lld L=%d H=%d batch %lld %s: %.1f ms/step, %.0f tokens/s, peak %.0f MB\n",
              static_cast<long long>(model.parameter_count()), static_cast<long long>(seq),
              static_cast<long long>(d_model), layers, heads, static_cast<long long>(batch), pattern.c_str(), t * 1e3,
              double(batch * seq) / t, double(memory_stats(Device::cpu()).peak_bytes) / 1e6);
  return 0;
}
