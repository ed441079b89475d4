// Mixed precision: autocast puts matmuls and attention in bf16 and keeps norms, softmax and losses
// in f32, with f32 gradients for f32 weights; the loss scaler's arithmetic; a bf16 run of a small
// config tracks the f32 run.
#include <filesystem>
#include <fstream>

#include "core/autocast.h"
#include "train/loss_scaler.h"
#include "train/trainer.h"
#include "tests/support.h"
#include "tests/temp_dir.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;
namespace fs = std::filesystem;

BOOST_AUTO_TEST_CASE(autocast_picks_each_ops_precision) {
  Tensor a = autograd::requires_grad(random({6, 40})), w = autograd::requires_grad(random({40, 9}));
  Tensor y32 = matmul(a, w);
  Tensor y16;
  {
    AutocastGuard guard(DType::bf16);
    y16 = matmul(a, w);
    BOOST_CHECK(y16.dtype() == DType::bf16);
    BOOST_CHECK(softmax(y16, -1).dtype() == DType::f32);
    BOOST_CHECK(log_softmax(y16, -1).dtype() == DType::f32);
    BOOST_CHECK(layer_norm(y16, Tensor(), Tensor()).dtype() == DType::f32);
    BOOST_CHECK(cross_entropy(y16, random_int(0, 9, {6})).dtype() == DType::f32);
    BOOST_CHECK(matmul(cast(a, DType::f64), cast(w, DType::f64)).dtype() == DType::f64);  // f64 stays exact
    {
      AutocastGuard off(std::nullopt);
      BOOST_CHECK(matmul(a, w).dtype() == DType::f32);
    }
    BOOST_CHECK(autocast_dtype() == DType::bf16);
  }
  BOOST_CHECK(!autocast_dtype().has_value());
  check_close(y16, y32, 2e-2, 2e-2, "bf16 product");
  // Gradients reach the f32 leaves in f32, close to the f32 gradients.
  Tensor g = random({6, 9});
  autograd::backward(sum(mul(cast(y16, DType::f32), g)));
  Tensor ga16 = autograd::grad(a), gw16 = autograd::grad(w);
  BOOST_CHECK(ga16.dtype() == DType::f32 && gw16.dtype() == DType::f32);
  autograd::zero_grad(a);
  autograd::zero_grad(w);
  autograd::backward(sum(mul(y32, g)));
  check_close(ga16, autograd::grad(a), 3e-2, 3e-2, "grad a");
  check_close(gw16, autograd::grad(w), 3e-2, 3e-2, "grad w");
  check_error([] { AutocastGuard bad(DType::f32); }, {"[autocast]", "bf16 or f16"});
}

BOOST_AUTO_TEST_CASE(loss_scaler_backs_off_grows_and_round_trips) {
  Tensor p = autograd::requires_grad(random({5}));
  autograd::backward(sum(p * 1024.0));
  LossScaler s(true, 1024, 3);
  s.unscale({{"p", p}});
  check_close(autograd::grad(p), full({5}, 1.0), 0, 0, "unscaled gradient");
  s.update(false);
  BOOST_CHECK_EQUAL(s.scale(), 512);
  for (int i = 0; i < 3; ++i) s.update(true);
  BOOST_CHECK_EQUAL(s.scale(), 1024);
  s.update(true);
  std::map<std::string, double> scalars;
  std::map<std::string, int64_t> counters;
  s.save(scalars, counters);
  LossScaler t(true);
  t.load(scalars, counters);
  BOOST_CHECK_EQUAL(t.scale(), 1024);
  BOOST_CHECK_EQUAL(counters.at("loss_scale.good_steps"), 1);
  LossScaler off(false);
  BOOST_CHECK_EQUAL(off.scale(), 1);
}

BOOST_AUTO_TEST_CASE(bf16_run_tracks_the_f32_run) {
  TempDir tmp("mixed-precision");
  const std::string data = write_word_corpus(tmp.path, 8000, 11);
  auto config = [&](const std::string& precision) {
    return parse_config("name: " + precision + "\nseed: 4\nprecision: " + precision +
                            "\nmodel: {d_model: 32, n_layers: 2, n_heads: 2, seq_len: 64, "
                            "attention: ['local:16', 'strided:8'], block: 8}\n"
                            "data: {path: '" + data + "'}\noptimizer: {lr: 0.004}\nschedule: {warmup: 5}\n"
                            "train: {steps: 80, batch_size: 4, eval_every: 80, eval_batches: 4}\nlogging: {every: 20}\n",
                        "mp.yaml");
  };
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  TrainResult f32 = Trainer(config("fp32"), o).run();
  TrainResult b16 = Trainer(config("bf16"), o).run();
  BOOST_REQUIRE(f32.val_loss && b16.val_loss);
  BOOST_TEST_MESSAGE("validation loss f32 " << *f32.val_loss << ", bf16 " << *b16.val_loss);
  BOOST_CHECK_LT(*b16.val_loss, 0.8 * 3.0);  // it learned (the unigram entropy here is about 3 nats)
  BOOST_CHECK_CLOSE(*b16.val_loss, *f32.val_loss, 2.0);  // within 2%
}
