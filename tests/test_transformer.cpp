// The Sparse Transformer LM: parameter names, per-layer pattern cycling, causality, learning a
// tiny sequence, rotary embeddings, and generation with the pattern-aware KV cache giving the same
// tokens as recomputing everything.
#include <cmath>

#include "nn/generate.h"
#include "tests/support.h"

using namespace sparta;
using namespace sparta::nn;
using namespace sparta::test;

namespace {

TransformerConfig small_config(std::vector<PatternPtr> attention, PositionKind pos = PositionKind::learned) {
  TransformerConfig c;
  c.vocab_size = 32;
  c.d_model = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.max_seq_len = 48;
  c.positions = pos;
  c.attention = std::move(attention);
  c.block = 8;
  return c;
}

}  // namespace

BOOST_AUTO_TEST_CASE(names_follow_pytorch_and_patterns_cycle) {
  Generator gen(1);
  auto c = small_config({local(4), strided(3)});
  c.n_layers = 3;
  c.tie_embeddings = false;
  SparseTransformer m(c, &gen);
  auto sd = m.state_dict();
  for (const char* name : {"embed.weight", "pos_embed.weight", "blocks.0.ln1.weight", "blocks.0.attn.qkv.weight",
                           "blocks.0.attn.proj.bias", "blocks.2.mlp.fc.weight", "blocks.2.mlp.proj.weight",
                           "blocks.1.ln2.bias", "ln_f.weight", "lm_head.weight"}) {
    BOOST_CHECK_MESSAGE(sd.count(name), "missing " << name);
  }
  BOOST_CHECK_EQUAL(m.blocks()[0]->attention().options().pattern->name(), "local");
  BOOST_CHECK_EQUAL(m.blocks()[1]->attention().options().pattern->name(), "strided");
  BOOST_CHECK_EQUAL(m.blocks()[2]->attention().options().pattern->name(), "local");
  c.tie_embeddings = true;
  SparseTransformer tied(c, &gen);
  BOOST_CHECK(!tied.state_dict().count("lm_head.weight"));
}

BOOST_AUTO_TEST_CASE(logits_are_causal) {
  for (PositionKind pos : {PositionKind::learned, PositionKind::sinusoidal, PositionKind::rotary}) {
    Generator gen(2);
    SparseTransformer m(small_config({fixed(4, 1), local(5)}, pos), &gen);
    autograd::NoGradGuard no_grad;
    Tensor a = random_int(0, 32, {1, 20});
    std::vector<int64_t> v = a.to_vector<int64_t>();
    for (size_t i = 12; i < v.size(); ++i) v[i] = (v[i] + 7) % 32;
    Tensor b = from_vector_i64(v, {1, 20});
    check_close(slice(m.forward(b), 1, 0, 12), slice(m.forward(a), 1, 0, 12), 1e-6, 1e-6, "logits before the change");
  }
}

BOOST_AUTO_TEST_CASE(learns_a_repeated_sequence) {
  Generator gen(3);
  SparseTransformer m(small_config({dense_causal()}), &gen);
  std::vector<int64_t> seq;
  for (int i = 0; i < 33; ++i) seq.push_back((i * 5) % 11);
  Tensor x = from_vector_i64(std::vector<int64_t>(seq.begin(), seq.end() - 1), {1, 32});
  Tensor y = from_vector_i64(std::vector<int64_t>(seq.begin() + 1, seq.end()), {1, 32});
  double first = 0, last = 0;
  for (int step = 0; step < 150; ++step) {
    Tensor loss = m.loss(x, y);
    autograd::backward(loss);
    autograd::NoGradGuard no_grad;
    for (Tensor p : m.parameters()) {
      add_(p, autograd::grad(p), -0.5);
      autograd::zero_grad(p);
    }
    last = loss.item<double>();
    if (step == 0) first = last;
  }
  BOOST_TEST_MESSAGE("loss " << first << " -> " << last);
  BOOST_CHECK_LT(last, first / 5);
}

BOOST_AUTO_TEST_CASE(rotary_scores_depend_on_relative_position) {
  Tensor q = random({1, 1, 1, 8}, DType::f64), k = random({1, 1, 1, 8}, DType::f64);
  auto score = [&](int64_t pq, int64_t pk) {
    Tensor rq = apply_rotary(q, rotary_tables(pq, 1, 8)), rk = apply_rotary(k, rotary_tables(pk, 1, 8));
    return sum(rq * rk).item<double>();
  };
  // The tables are f32: agreement to f32 rounding of terms up to |q||k| <= 8 (absolute, since the
  // score itself may cancel to near zero).
  BOOST_CHECK_SMALL(score(5, 2) - score(13, 10), 1e-5);
  BOOST_CHECK_CLOSE(sum(square(apply_rotary(q, rotary_tables(7, 1, 8)))).item<double>(), sum(square(q)).item<double>(),
                    1e-5);
}

BOOST_AUTO_TEST_CASE(cached_generation_matches_recomputation) {
  struct Case {
    std::vector<PatternPtr> patterns;
    PositionKind pos;
  };
  std::vector<Case> cases = {{{dense_causal()}, PositionKind::learned},
                             {{local(6)}, PositionKind::rotary},
                             {{fixed(8, 2), strided(4)}, PositionKind::learned},
                             {{longformer(4, 2, {}, true)}, PositionKind::sinusoidal},
                             {{top_k(3, 8)}, PositionKind::rotary}};
  for (const Case& c : cases) {
    Generator gen(4);
    SparseTransformer m(small_config(c.patterns, c.pos), &gen);
    m.eval();
    std::vector<int64_t> prompt = random_int(0, 32, {5}).to_vector<int64_t>();
    for (double temperature : {0.0, 0.9}) {
      SamplingOptions o;
      o.temperature = temperature;
      o.top_k = 10;
      o.top_p = 0.95;
      o.seed = 11;
      o.max_tokens = 30;
      GenerationStats stats;
      auto cached = generate(m, prompt, o, true, &stats);
      auto recomputed = generate(m, prompt, o, false);
      BOOST_CHECK_MESSAGE(cached == recomputed, c.patterns[0]->describe() << " temperature " << temperature
                                                                          << ": cached and recomputed tokens differ");
      BOOST_CHECK_EQUAL(cached.size(), 30u);
      if (c.patterns[0]->name() == "local") BOOST_CHECK_LE(stats.peak_cached_keys, 6);
    }
  }
  Generator gen(5);
  SparseTransformer m(small_config({local(4)}), &gen);
  SamplingOptions o;
  o.max_tokens = 100;
  check_error([&] { generate(m, {1, 2}, o); }, {"[generate]", "max_seq_len"});
}

BOOST_AUTO_TEST_CASE(sampling_respects_top_k_and_top_p) {
  std::vector<float> logits = {0.f, 5.f, 4.f, -1.f, 3.f};
  SamplingOptions greedy;
  greedy.temperature = 0;
  BOOST_CHECK_EQUAL(sample_token(logits, greedy, 0.5), 1);
  SamplingOptions k2;
  k2.top_k = 2;
  for (double u = 0; u < 1; u += 0.05) {
    int64_t t = sample_token(logits, k2, u);
    BOOST_CHECK(t == 1 || t == 2);
  }
  SamplingOptions p;
  p.top_p = 0.5;  // token 1 alone holds more than half the mass
  for (double u = 0; u < 1; u += 0.05) BOOST_CHECK_EQUAL(sample_token(logits, p, u), 1);
}

BOOST_AUTO_TEST_CASE(activation_checkpointing_gives_bit_identical_gradients) {
  auto grads_with = [](int64_t every) {
    nn::TransformerConfig c;
    c.vocab_size = 40;
    c.d_model = 24;
    c.n_layers = 3;
    c.n_heads = 2;
    c.max_seq_len = 32;
    c.dropout = 0.2;  // the recomputation must draw the same masks
    c.block = 8;
    c.attention = {nn::parse_pattern("local:8"), nn::parse_pattern("strided:4")};
    c.checkpoint_every = every;
    Generator gen(42);
    nn::SparseTransformer m(c, &gen);
    Tensor x = randint(0, 40, {2, 32}, DType::i64, &gen), y = randint(0, 40, {2, 32}, DType::i64, &gen);
    autograd::backward(m.loss(x, y));
    std::vector<std::vector<double>> out;
    for (auto& [name, p] : m.named_parameters()) out.push_back(autograd::grad(p).to_vector<double>());
    out.push_back({double(gen.offset())});
    return out;
  };
  const auto plain = grads_with(0);
  BOOST_CHECK(grads_with(1) == plain);
  BOOST_CHECK(grads_with(2) == plain);
}

// Data-parallel reduction (train/dist/reducer.h) finishes in a post-backward callback: with
// checkpointing, the recomputations' nested backward passes must not run it early.
BOOST_AUTO_TEST_CASE(post_backward_callbacks_wait_for_the_outermost_pass) {
  nn::TransformerConfig c;
  c.vocab_size = 40;
  c.d_model = 24;
  c.n_layers = 3;
  c.n_heads = 2;
  c.max_seq_len = 32;
  c.block = 8;
  c.attention = {nn::parse_pattern("local:8")};
  c.checkpoint_every = 1;
  Generator gen(3);
  nn::SparseTransformer m(c, &gen);
  const auto params = m.named_parameters();
  size_t hooks = 0;
  for (auto& [name, p] : params) autograd::register_grad_ready_hook(p, [&](Tensor&) { ++hooks; });
  int calls = 0;
  size_t hooks_at_call = 0;
  autograd::queue_post_backward_callback([&] {
    ++calls;
    hooks_at_call = hooks;
  });
  Tensor x = randint(0, 40, {2, 32}, DType::i64, &gen), y = randint(0, 40, {2, 32}, DType::i64, &gen);
  autograd::backward(m.loss(x, y));
  BOOST_CHECK_EQUAL(calls, 1);
  BOOST_CHECK_EQUAL(hooks_at_call, params.size());  // every gradient was complete before it ran
}

BOOST_AUTO_TEST_CASE(activation_checkpointing_keeps_less_memory) {
  auto held_after_forward = [](int64_t every) {
    nn::TransformerConfig c;
    c.vocab_size = 64;
    c.d_model = 64;
    c.n_layers = 6;
    c.n_heads = 4;
    c.max_seq_len = 128;
    c.block = 16;
    c.attention = {nn::parse_pattern("local:32")};
    c.checkpoint_every = every;
    Generator gen(1);
    nn::SparseTransformer m(c, &gen);
    Tensor x = randint(0, 64, {4, 128}, DType::i64, &gen), y = randint(0, 64, {4, 128}, DType::i64, &gen);
    const int64_t before = memory_stats(Device::cpu()).current_bytes;
    Tensor loss = m.loss(x, y);  // the tape keeps the saved activations alive
    return memory_stats(Device::cpu()).current_bytes - before;
  };
  const int64_t plain = held_after_forward(0), all = held_after_forward(1);
  BOOST_TEST_MESSAGE("activations held: " << plain << " bytes plain, " << all << " checkpointed");
  BOOST_CHECK_LT(all * 3, plain);
}
