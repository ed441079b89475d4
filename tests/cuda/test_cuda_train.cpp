// The training step on a GPU: the same config trained on the CPU and on CUDA follows the same loss
// curve for 50 steps (same initial weights, same batches, same dropout masks), and a CUDA run
// resumes from its checkpoint on the device.
#include <filesystem>
#include <fstream>

#include "train/metrics.h"
#include "train/trainer.h"
#include "tests/cuda/parity.h"
#include "tests/temp_dir.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;
namespace fs = std::filesystem;

namespace {

RunConfig config(const std::string& data, const std::string& name, const std::string& device, int64_t steps,
                 const std::string& precision = "fp32") {
  return parse_config("name: " + name + "\nseed: 5\ndevice: " + device + "\nprecision: " + precision +
                          "\nmodel: {d_model: 64, n_layers: 3, n_heads: 4, seq_len: 64, dropout: 0.1, "
                          "attention: ['local:16', 'strided:8', 'fixed:16:4'], block: 8}\n"
                          "data: {path: '" + data + "'}\noptimizer: {lr: 0.003, weight_decay: 0.1}\n"
                          "schedule: {name: cosine, warmup: 5}\n"
                          "train: {steps: " + std::to_string(steps) + ", batch_size: 4, grad_clip: 1.0, "
                          "eval_every: 25, eval_batches: 2}\nlogging: {every: 1}\ncheckpoint: {every: 10, keep_last: 2}\n",
                      "parity.yaml");
}

std::vector<double> losses(const std::string& run_dir) {
  std::vector<double> out;
  for (const MetricsRecord& r : read_metrics((fs::path(run_dir) / "metrics.jsonl").string())) out.push_back(r.loss);
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cuda_training, SPARTA_NEEDS_GPU)

BOOST_AUTO_TEST_CASE(cpu_and_cuda_runs_agree_for_50_steps) {
  TempDir tmp("cuda-train");
  const std::string data = write_word_corpus(tmp.path, 20000, run_seed());
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  TrainResult on_cpu = Trainer(config(data, "cpu", "cpu", 50), o).run();
  TrainResult on_gpu = Trainer(config(data, "gpu", "cuda", 50), o).run();
  const std::vector<double> a = losses(on_cpu.run_dir), b = losses(on_gpu.run_dir);
  BOOST_REQUIRE_EQUAL(a.size(), 50u);
  BOOST_REQUIRE_EQUAL(b.size(), 50u);
  for (size_t i = 0; i < a.size(); ++i) {
    // f32 sums in different orders drift apart slowly; a wrong kernel shows at once, by far more.
    BOOST_CHECK_MESSAGE(std::abs(a[i] - b[i]) <= 2e-3 * std::abs(a[i]),
                        "step " << i + 1 << ": cpu loss " << a[i] << ", cuda loss " << b[i]);
  }
  BOOST_CHECK_LT(b.back(), b.front() * 0.8);  // and it learns
  BOOST_REQUIRE(on_gpu.val_loss.has_value());
  BOOST_CHECK_CLOSE(*on_gpu.val_loss, *on_cpu.val_loss, 0.5);
}

BOOST_AUTO_TEST_CASE(cuda_run_resumes_on_the_device) {
  TempDir tmp("cuda-train");
  const std::string data = write_word_corpus(tmp.path, 20000, run_seed());
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  TrainResult straight = Trainer(config(data, "straight", "cuda", 30), o).run();
  TrainerOptions first = o;
  first.stop_after = 20;
  Trainer(config(data, "resumed", "cuda", 30), first).run();
  TrainerOptions again = o;
  again.resume = true;
  Trainer resumed(config(data, "resumed", "cuda", 30), again);
  TrainResult r = resumed.run();
  BOOST_CHECK_EQUAL(r.step, 30);
  BOOST_CHECK(resumed.model().named_parameters().front().second.device() == Device::cuda());
  // Bit-identical on the CPU (test_train); on the GPU the embedding gradient's atomics may order
  // additions differently, so the curves agree to float tolerance.
  const std::vector<double> a = losses(straight.run_dir), b = losses(r.run_dir);
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) BOOST_CHECK_MESSAGE(std::abs(a[i] - b[i]) <= 1e-3 * std::abs(a[i]), "step " << i + 1);
}

BOOST_AUTO_TEST_CASE(bf16_and_fp16_track_f32) {
  TempDir tmp("cuda-train");
  const std::string data = write_word_corpus(tmp.path, 20000, run_seed());
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  TrainResult f32 = Trainer(config(data, "f32", "cuda", 50), o).run();
  for (const char* p : {"bf16", "fp16"}) {
    TrainResult low = Trainer(config(data, p, "cuda", 50, p), o).run();
    BOOST_REQUIRE(low.val_loss.has_value());
    BOOST_TEST_MESSAGE(p << " validation loss " << *low.val_loss << " (f32 " << *f32.val_loss << ")");
    BOOST_CHECK_CLOSE(*low.val_loss, *f32.val_loss, 2.0);
    BOOST_CHECK_EQUAL(low.skipped_steps, 0);
  }
  // The fp16 run logged its loss scale.
  const auto records = read_metrics((fs::path(o.runs_root) / "fp16" / "metrics.jsonl").string());
  BOOST_REQUIRE(!records.empty());
  BOOST_CHECK(records.back().extra.count("loss_scale"));
}

BOOST_AUTO_TEST_SUITE_END()
