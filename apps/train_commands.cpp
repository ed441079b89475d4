// `sparta train`, `resume`, `export`, `generate` and `eval`: the users' day from a YAML file to
// samples from the trained model.
#include <signal.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <array>
#include <filesystem>

#include "apps/commands.h"
#include "core/error.h"
#include "data/byte_tokenizer.h"
#include "nn/generate.h"
#include "train/dist/communicator.h"
#include "train/dist/launch.h"
#include "train/export.h"
#include "train/trainer.h"

namespace sparta::apps {
namespace {

// SIGTERM and SIGINT ask the trainer to checkpoint and stop (the daemon's cancel and shutdown,
// Ctrl-C). A second Ctrl-C ends the process at once; a second SIGTERM changes nothing, since
// supervisors send several (systemd signals a whole service's processes, then the daemon its
// jobs) and bound the stop with SIGKILL themselves.
std::atomic<int> g_stop_signal{0};

void on_stop_signal(int sig) {
  int expected = 0;
  if (g_stop_signal.compare_exchange_strong(expected, sig) || sig != SIGINT) return;
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void stop_on_signals(train::TrainerOptions& o) {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGTERM, &sa, nullptr);
  ::sigaction(SIGINT, &sa, nullptr);
  o.should_stop = [] { return g_stop_signal.load() != 0; };
}

// Exit status 128 + signal after a stop on request, as if the signal had ended the process, so a
// supervisor tells a finished run from a stopped one.
void exit_if_stopped(const train::TrainResult& r) {
  if (!r.stopped) return;
  std::printf("stopped at step %lld on %s; continue with `sparta resume %s`\n", static_cast<long long>(r.step),
              g_stop_signal.load() == SIGINT ? "SIGINT" : "SIGTERM", r.run_dir.c_str());
  std::fflush(stdout);
  throw CLI::RuntimeError(128 + g_stop_signal.load());
}

void report(const train::TrainResult& r) {
  if (train::dist::launch_info().rank != 0) return;  // rank 0 speaks for a data-parallel job
  std::printf("done: step %lld, loss %.4f", static_cast<long long>(r.step), r.last_loss);
  if (r.val_bpb) std::printf(", validation %.3f bits per byte", *r.val_bpb);
  std::printf("\nrun directory %s\n", r.run_dir.c_str());
}

// Runs a trainer; an error on one rank of a data-parallel job ends every rank with its message
// (the others would otherwise wait in their next collective until distributed.timeout_s).
train::TrainResult run_trainer(const std::function<train::RunConfig()>& config, const train::TrainerOptions& o) {
  try {
    train::TrainResult result;
    {
      train::Trainer trainer(config(), o);
      result = trainer.run();
    }
    train::dist::shutdown_world();
    return result;
  } catch (const std::exception& e) {
    train::dist::abort_job_if_distributed(std::string("error: ") + e.what());
    throw;
  }
}

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string runs = "runs";
  int64_t stop_after = 0;
  bool quiet = false;
  std::string state;  // the daemon's state directory, for the job forms of resume and export
  bool job = false;   // the argument is a job id of the daemon
};

struct GenerateArgs {
  std::string model;
  std::string prompt = "\n";
  nn::SamplingOptions sampling;
  bool no_cache = false;
};

}  // namespace

void add_train_commands(CLI::App& app) {
  auto t = std::make_shared<TrainArgs>();
  CLI::App* train = app.add_subcommand("train", "train a model from a YAML run config");
  train->add_option("config", t->config, "run config (YAML)")->required();
  train->add_option("overrides", t->overrides, "key=value overrides, e.g. train.steps=100 model.n_layers=2");
  train->add_option("--runs", t->runs, "where run directories go");
  train->add_option("--stop-after", t->stop_after, "stop after this step (with a checkpoint), as if interrupted");
  train->add_flag("--quiet", t->quiet, "no progress on stdout");
  train->callback([t] {
    train::TrainerOptions o;
    o.runs_root = t->runs;
    o.quiet = t->quiet;
    if (t->stop_after > 0) o.stop_after = t->stop_after;
    stop_on_signals(o);
    const train::TrainResult result = run_trainer([&] { return train::load_config(t->config, t->overrides); }, o);
    exit_if_stopped(result);
    report(result);
  });

  auto r = std::make_shared<TrainArgs>();
  CLI::App* resume = app.add_subcommand("resume", "continue a run from its latest checkpoint (or a daemon job: sparta resume JOB)");
  resume->add_option("run_dir", r->config, "run directory (runs/<name>), or the id of a daemon job")->required();
  resume->add_option("overrides", r->overrides,
                     "key=value overrides of the run's config, e.g. train.batch_size=16 when resuming on another "
                     "number of processes");
  resume->add_option("--stop-after", r->stop_after, "stop after this step (with a checkpoint)");
  resume->add_flag("--quiet", r->quiet, "no progress on stdout");
  resume->add_flag("--job", r->job, "the argument is a daemon job id (the default for a number that names no directory)");
  resume->add_option("--state", r->state, "the daemon's state directory, for a job");
  resume->callback([r] {
    if (r->job || is_job_argument(r->config)) {
      resume_job(r->config, r->state);
      return;
    }
    train::TrainerOptions o;
    std::filesystem::path dir(r->config);
    o.runs_root = dir.has_parent_path() ? dir.parent_path().string() : ".";
    o.resume = true;
    o.quiet = r->quiet;
    if (r->stop_after > 0) o.stop_after = r->stop_after;
    train::RunConfig rc = train::load_run_config(r->config, r->overrides);
    rc.name = dir.filename().string();
    stop_on_signals(o);
    const train::TrainResult result = run_trainer([&] { return rc; }, o);
    exit_if_stopped(result);
    report(result);
  });

  auto e = std::make_shared<std::array<std::string, 4>>();
  auto e_job = std::make_shared<bool>(false);
  CLI::App* exp = app.add_subcommand("export", "write model.safetensors and config.json from a run's checkpoint (or a daemon job's)");
  exp->add_option("run_dir", (*e)[0], "run directory, or the id of a daemon job")->required();
  exp->add_option("--checkpoint", (*e)[1], "checkpoint file (default: the latest)");
  exp->add_option("--out", (*e)[2], "export directory (default: <run_dir>/export)");
  exp->add_flag("--job", *e_job, "the argument is a daemon job id (the default for a number that names no directory)");
  exp->add_option("--state", (*e)[3], "the daemon's state directory, for a job");
  exp->callback([e, e_job] {
    if (*e_job || is_job_argument((*e)[0])) {
      // The daemon writes the export into the job's run directory, inside its state directory.
      SPARTA_CHECK((*e)[1].empty() && (*e)[2].empty(), "export", "--checkpoint and --out apply to run directories; a "
                   "job's export goes to its run directory's export/ (`sparta status JOB` shows the run directory)");
      export_job((*e)[0], (*e)[3]);
      return;
    }
    std::printf("exported to %s\n", train::export_run((*e)[0], (*e)[1], (*e)[2]).c_str());
  });

  auto g = std::make_shared<GenerateArgs>();
  CLI::App* gen = app.add_subcommand("generate", "sample text from an export or a run");
  gen->add_option("model", g->model, "export directory or run directory")->required();
  gen->add_option("--prompt", g->prompt, "text to continue");
  gen->add_option("--temperature", g->sampling.temperature, "0: greedy");
  gen->add_option("--top-k", g->sampling.top_k, "keep the k most likely tokens (0: off)");
  gen->add_option("--top-p", g->sampling.top_p, "nucleus mass (1: off)");
  gen->add_option("--seed", g->sampling.seed, "sampling seed");
  gen->add_option("--max-tokens", g->sampling.max_tokens, "tokens to generate");
  gen->add_flag("--no-cache", g->no_cache, "recompute every step instead of using the KV cache");
  gen->callback([g] {
    train::LoadedModel lm = train::load_model(g->model);
    std::vector<uint16_t> p16 = data::ByteTokenizer::encode(g->prompt);
    std::vector<int64_t> prompt(p16.begin(), p16.end());
    nn::SamplingOptions s = g->sampling;
    s.max_tokens = std::min<int64_t>(s.max_tokens, lm.model->config().max_seq_len - int64_t(prompt.size()));
    std::vector<int64_t> out = nn::generate(*lm.model, prompt, s, !g->no_cache);
    std::vector<uint16_t> o16(out.begin(), out.end());
    std::printf("%s%s\n", g->prompt.c_str(), data::ByteTokenizer::decode(o16).c_str());
  });

  auto v = std::make_shared<std::array<std::string, 2>>();
  CLI::App* ev = app.add_subcommand("eval", "bits per byte of a model on a text file");
  ev->add_option("model", (*v)[0], "export directory or run directory")->required();
  ev->add_option("--data", (*v)[1], "text file")->required();
  ev->callback([v] {
    train::LoadedModel lm = train::load_model((*v)[0]);
    train::DataConfig d;
    d.path = (*v)[1];
    d.utf8 = train::Utf8Mode::bytes;
    const double loss = train::evaluate_loss(*lm.model, train::open_data(d), lm.model->config().max_seq_len, 8, 0);
    std::printf("%s: loss %.4f nats/byte, %.4f bits per byte\n", (*v)[1].c_str(), loss, loss / std::log(2.0));
  });
}

}  // namespace sparta::apps
