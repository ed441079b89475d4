// The training loop end to end on a tiny model: a run interrupted and resumed ends bit-identical
// to an uninterrupted one; the run directory holds what it should; export reloads the same
// model; bad input stops the run before anything is written.
#include <filesystem>
#include <fstream>

#include "train/checkpoint_manager.h"
#include "train/export.h"
#include "train/metrics.h"
#include "train/trainer.h"
#include "tests/support.h"
#include "tests/temp_dir.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;
namespace fs = std::filesystem;

namespace {

RunConfig tiny(const std::string& data, const std::string& name) {
  return parse_config(
      "name: " + name +
          "\nseed: 3\nmodel: {d_model: 16, n_layers: 2, n_heads: 2, seq_len: 32, dropout: 0.1, "
          "attention: ['local:8', 'strided:4'], block: 8}\n"
          "data: {path: '" + data + "'}\noptimizer: {lr: 0.003}\nschedule: {warmup: 2}\n"
          "train: {steps: 12, batch_size: 4, eval_every: 6, eval_batches: 2}\n"
          "logging: {every: 3}\ncheckpoint: {every: 4, keep_last: 2}\n",
      "tiny.yaml");
}

std::map<std::string, std::vector<double>> params_of(const Trainer& t) {
  std::map<std::string, std::vector<double>> out;
  for (auto& [name, p] : t.model().named_parameters()) out[name] = p.to_vector<double>();
  return out;
}

}  // namespace

BOOST_AUTO_TEST_CASE(resumed_run_is_bit_identical) {
  TempDir tmp("train");
  const std::string data = write_word_corpus(tmp.path, 6000, 7);
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  Trainer straight(tiny(data, "straight"), o);
  TrainResult a = straight.run();
  BOOST_CHECK_EQUAL(a.step, 12);

  TrainerOptions first = o;
  first.stop_after = 5;
  {
    Trainer part(tiny(data, "interrupted"), first);
    BOOST_CHECK_EQUAL(part.run().step, 5);
  }
  TrainerOptions again = o;
  again.resume = true;
  Trainer resumed(tiny(data, "interrupted"), again);
  TrainResult b = resumed.run();
  BOOST_CHECK_EQUAL(b.step, 12);
  BOOST_CHECK(params_of(straight) == params_of(resumed));
  BOOST_CHECK_EQUAL(a.last_loss, b.last_loss);

  // The run directory: resolved config, one metrics line per logged step (none repeated), events.
  const fs::path dir = tmp.path / "runs" / "interrupted";
  BOOST_CHECK(fs::exists(dir / "config.yaml"));
  BOOST_CHECK(fs::exists(dir / "log.txt"));
  std::vector<int64_t> steps;
  for (const MetricsRecord& r : read_metrics((dir / "metrics.jsonl").string())) steps.push_back(r.step);
  BOOST_CHECK((steps == std::vector<int64_t>{3, 5, 6, 6, 9, 12, 12}) || (steps == std::vector<int64_t>{3, 5, 6, 9, 12}));
  // Every record carries the memory report by category.
  for (const MetricsRecord& r : read_metrics((dir / "metrics.jsonl").string())) {
    for (const char* k : {"mem_params_bytes", "mem_optimizer_bytes", "mem_grads_bytes", "mem_activations_bytes"}) {
      BOOST_CHECK_MESSAGE(r.extra.count(k), "step " << r.step << " lacks " << k);
    }
    BOOST_CHECK_GT(r.extra.at("mem_activations_bytes"), 0);
    BOOST_CHECK_EQUAL(r.extra.at("mem_grads_bytes"), r.extra.at("mem_params_bytes"));  // f32 grads of f32 weights
  }
  bool events = false;
  for (auto& e : fs::directory_iterator(dir)) events |= e.path().filename().string().rfind("events.out.tfevents", 0) == 0;
  BOOST_CHECK(events);
  // Validation loss is below the loss of a uniform guess over bytes.
  BOOST_REQUIRE(b.val_loss.has_value());
  BOOST_CHECK_LT(*b.val_loss, std::log(256.0));
}

BOOST_AUTO_TEST_CASE(export_reloads_the_same_model) {
  TempDir tmp("train");
  const std::string data = write_word_corpus(tmp.path, 6000, 7);
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  Trainer t(tiny(data, "exp"), o);
  t.run();
  const std::string dir = export_run((tmp.path / "runs" / "exp").string());
  BOOST_CHECK(fs::exists(fs::path(dir) / "model.safetensors"));
  BOOST_CHECK(fs::exists(fs::path(dir) / "config.json"));
  LoadedModel from_export = load_model(dir);
  LoadedModel from_run = load_model((tmp.path / "runs" / "exp").string());
  Tensor x = random_int(0, 256, {2, 32});
  autograd::NoGradGuard no_grad;
  const_cast<nn::SparseTransformer&>(t.model()).eval();
  check_exact(from_export.model->forward(x), t.model().forward(x), "exported model");
  check_exact(from_run.model->forward(x), t.model().forward(x), "model from the run's checkpoint");
}

BOOST_AUTO_TEST_CASE(bad_input_stops_before_anything_is_written) {
  TempDir tmp("train");
  TrainerOptions o;
  o.runs_root = (tmp.path / "runs").string();
  o.quiet = true;
  check_error([&] { Trainer(tiny((tmp.path / "missing.txt").string(), "m"), o); }, {"missing.txt", "does not exist"});
  std::ofstream((tmp.path / "empty.txt").string()).close();
  check_error([&] { Trainer(tiny((tmp.path / "empty.txt").string(), "e"), o); }, {"empty.txt"});
  std::ofstream((tmp.path / "latin1.txt").string()) << std::string(5000, 'a') + "\xe9t\xe9" + std::string(5000, 'b');
  check_error([&] { Trainer(tiny((tmp.path / "latin1.txt").string(), "l"), o); }, {"latin1.txt", "5000"});
  BOOST_CHECK(!fs::exists(tmp.path / "runs"));

  // A checkpoint whose shapes do not match the config, and a corrupt one, on resume.
  const std::string data = write_word_corpus(tmp.path, 6000, 7);
  Trainer(tiny(data, "r"), o).run();
  TrainerOptions again = o;
  again.resume = true;
  RunConfig wider = tiny(data, "r");
  wider.model.d_model = 32;
  check_error([&] { Trainer(wider, again); }, {"shape"});
  CheckpointManager m((tmp.path / "runs" / "r" / "checkpoints").string(), 2, true);
  const std::string latest = *m.latest();
  fs::resize_file(latest, fs::file_size(latest) / 2);
  check_error([&] { Trainer(tiny(data, "r"), again); }, {latest.c_str()});
  // Starting a fresh run over an existing one is refused rather than overwriting it.
  check_error([&] { Trainer(tiny(data, "r"), o); }, {"already holds checkpoints", "sparta resume"});
}
