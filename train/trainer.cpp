#include "train/trainer.h"

#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "autograd/autograd.h"
#include "core/autocast.h"
#include "core/cuda/runtime.h"
#include "core/determinism.h"
#include "core/ops.h"
#include "core/random.h"
#include "data/prefetch.h"
#include "data/split.h"
#include "train/atomic_file.h"
#include "train/checkpoint.h"
#include "train/checkpoint_manager.h"
#include "train/dist/communicator.h"
#include "train/dist/reducer.h"
#include "train/dist/sharded_optimizer.h"
#include "train/loss_scaler.h"
#include "train/lr_schedule.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/progress.h"
#include "train/tensorboard.h"

namespace sparta::train {
namespace fs = std::filesystem;

namespace {

// A run that keeps producing non-finite losses or gradients stops after this many in a row.
constexpr int64_t kMaxConsecutiveSkips = 20;

nn::PositionKind position_kind(Positions p) {
  switch (p) {
    case Positions::learned: return nn::PositionKind::learned;
    case Positions::sinusoidal: return nn::PositionKind::sinusoidal;
    case Positions::rotary: return nn::PositionKind::rotary;
  }
  return nn::PositionKind::learned;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

// Dropout must differ between data-parallel ranks (they would otherwise drop the same units of
// different samples), while weight initialisation, drawn before this, must not. Rank 0 keeps the
// run's seed, so a world of one draws what it always did; the offset, which advances alike on
// every rank, is what checkpoints keep.
uint64_t rank_seed(uint64_t seed, int rank) {
  if (rank == 0) return seed;
  const Philox4 r = philox4x32(seed, 0x72616E6Bull /* "rank" */, uint64_t(rank));
  return uint64_t(r.v[0]) | uint64_t(r.v[1]) << 32;
}

}  // namespace

nn::TransformerConfig transformer_config(const RunConfig& c) {
  nn::TransformerConfig t;
  t.vocab_size = c.model.vocab_size;
  t.d_model = c.model.d_model;
  t.n_layers = int(c.model.n_layers);
  t.n_heads = int(c.model.n_heads);
  t.d_ff = c.model.resolved_d_ff();
  t.max_seq_len = c.model.seq_len;
  t.dropout = c.model.dropout;
  t.positions = position_kind(c.model.positions);
  t.tie_embeddings = c.model.tie_embeddings;
  t.block = c.model.block;
  t.checkpoint_every = c.model.checkpoint_every;
  // The config reader has checked each pattern against the sequence length with its key path,
  // and the model's constructor checks them again for configs from elsewhere (an export's JSON).
  for (size_t i = 0; i < c.model.attention.size(); ++i) {
    try {
      t.attention.push_back(nn::parse_pattern(c.model.attention[i]));
    } catch (const Error& e) {
      SPARTA_FAIL("config", "model.attention[", i, "] '", c.model.attention[i], "': ", e.what());
    }
  }
  return t;
}

data::TokenSourcePtr open_data(const DataConfig& d) {
  SPARTA_CHECK(fs::exists(d.path), "data", "data.path '", d.path, "' does not exist");
  const data::Utf8Mode utf8 = data::utf8_mode_from_name(enum_name(d.utf8));
  if (d.format == DataFormat::shards) {
    return fs::is_directory(d.path) ? data::open_shards(d.path, d.glob.empty() ? "*.sptk" : d.glob)
                                    : data::open_shard(d.path);
  }
  if (fs::is_directory(d.path)) return data::open_text_dir(d.path, d.glob.empty() ? "*" : d.glob, utf8);
  return data::open_text_file(d.path, utf8);
}

EvalSums evaluate_sums(const nn::SparseTransformer& model, const data::TokenSourcePtr& source, int64_t seq_len,
                       int64_t batch, int64_t max_windows, std::optional<DType> low, int64_t shard, int64_t shards) {
  autograd::NoGradGuard no_grad;
  AutocastGuard autocast(low);
  const int64_t windows = (source->size() - 1) / seq_len;
  SPARTA_CHECK(windows >= 1, "eval", source->describe(), " holds ", source->size(), " tokens; a window needs ",
               seq_len + 1);
  const int64_t n = max_windows > 0 ? std::min(windows, max_windows) : windows;
  std::vector<int64_t> mine;
  for (int64_t w = shard; w < n; w += shards) mine.push_back(w);
  EvalSums sums;
  std::vector<uint16_t> buf(size_t(seq_len + 1));
  for (size_t i0 = 0; i0 < mine.size(); i0 += size_t(batch)) {
    const int64_t b = std::min<int64_t>(batch, int64_t(mine.size() - i0));
    std::vector<int64_t> x, y;
    for (size_t i = i0; i < i0 + size_t(b); ++i) {
      source->read(mine[i] * seq_len, seq_len + 1, buf.data());
      x.insert(x.end(), buf.begin(), buf.end() - 1);
      y.insert(y.end(), buf.begin() + 1, buf.end());
    }
    Tensor loss = model.loss(from_vector_i64(x, {b, seq_len}), from_vector_i64(y, {b, seq_len}));
    sums.loss_sum += loss.item<double>() * double(b);
    sums.windows += b;
  }
  return sums;
}

double evaluate_loss(const nn::SparseTransformer& model, const data::TokenSourcePtr& source, int64_t seq_len,
                     int64_t batch, int64_t max_windows, std::optional<DType> low) {
  const EvalSums s = evaluate_sums(model, source, seq_len, batch, max_windows, low, 0, 1);
  return s.loss_sum / double(s.windows);
}

namespace {
int64_t bytes_of(const NamedTensors& ts) {
  int64_t n = 0;
  for (const auto& [name, t] : ts) n += int64_t(t.nbytes());
  return n;
}
int64_t bytes_of_grads(const NamedTensors& params) {
  int64_t n = 0;
  for (const auto& [name, p] : params) {
    const Tensor g = autograd::grad(p);
    if (g.defined()) n += int64_t(g.nbytes());
  }
  return n;
}
}  // namespace

std::optional<DType> autocast_precision(Precision p) {
  if (p == Precision::bf16) return DType::bf16;
  if (p == Precision::fp16) return DType::f16;
  return std::nullopt;
}

RunConfig load_run_config(const std::string& run_dir, const std::vector<std::string>& overrides) {
  const std::string path = (fs::path(run_dir) / "config.yaml").string();
  SPARTA_CHECK(fs::exists(path), "resume", "'", run_dir, "' is not a run directory (no config.yaml)");
  return load_config(path, overrides);
}

struct Trainer::State {
  RunConfig cfg;
  TrainerOptions opt;
  std::string run_dir;
  Generator gen;
  dist::CommunicatorPtr comm;  // a world of one unless launched by mpirun or torchrun-style variables
  bool root = true;            // rank 0: the only one that writes the run directory
  std::unique_ptr<dist::GradReducer> reducer;  // world size > 1 only
  std::unique_ptr<nn::SparseTransformer> model;
  std::unique_ptr<Optimizer> optim;
  LrSchedule schedule;
  data::Split split;
  std::unique_ptr<data::Prefetcher> loader;
  std::unique_ptr<CheckpointManager> checkpoints;
  std::unique_ptr<MetricsLog> metrics;
  std::unique_ptr<EventWriter> events;
  std::ofstream log;
  LossScaler scaler{false};
  int64_t step = 0;
  double best_val = INFINITY;
  double unigram_bits = 0;

  void say(const std::string& line) {
    if (!root) return;
    log << line << "\n";
    log.flush();
    if (!opt.quiet) std::cout << line << std::endl;
  }

  // optimizer_state: optim->full_state(), which every rank computes (it is collective when sharded).
  CheckpointState snapshot(NamedTensors optimizer_state) const {
    CheckpointState c;
    c.model = model->named_parameters();
    c.optimizer = std::move(optimizer_state);
    c.step = step;
    c.counters = loader->state().to_map("data.");
    c.counters["rng.seed"] = int64_t(cfg.seed);  // each rank derives its own from it (rank_seed)
    c.counters["rng.offset"] = int64_t(gen.offset());
    c.scalars["best_val_loss"] = best_val;
    scaler.save(c.scalars, c.counters);
    c.config_yaml = to_yaml(cfg);
    return c;
  }
};

Trainer::Trainer(RunConfig cfg, TrainerOptions opt) : s_(std::make_unique<State>()) {
  State& s = *s_;
  s.cfg = std::move(cfg);
  s.opt = std::move(opt);
  s.cfg.device = dist::rank_device(s.cfg.device);
  const RunConfig& c = s.cfg;
  if (c.device.is_cuda()) {
    const int n = cuda::device_count();
    SPARTA_CHECK(c.device.index < n, "config", "device ", c.device.str(), ": ",
                 n == 0 ? "no CUDA device is visible (or this build of sparta has no CUDA backend)"
                        : std::to_string(n) + " CUDA device(s) visible");
  }
  s.comm = dist::world(c.device, c.distributed.timeout_s);
  s.root = s.comm->rank() == 0;
  s.cfg.distributed.world_size = s.comm->size();
  if (!s.root) s.opt.quiet = true;
  s.scaler = LossScaler(c.precision == Precision::fp16);
  const nn::TransformerConfig tc = transformer_config(c);

  // Data before anything is written: a missing, empty or too short corpus stops the run here.
  data::TokenSourcePtr source = open_data(c.data);
  SPARTA_CHECK(source->vocab_size() <= c.model.vocab_size, "config", "data '", c.data.path, "' has a vocabulary of ",
               source->vocab_size(), " but model.vocab_size is ", c.model.vocab_size);
  s.split = data::split_tail(source, c.data.val_fraction);
  data::SamplerOptions so;
  so.batch = c.train.batch_size;
  so.seq_len = c.model.seq_len;
  so.seed = c.seed;
  so.rank = s.comm->rank();
  so.world = s.comm->size();
  data::WindowSampler sampler(s.split.train, so);

  s.gen.set_state(c.seed, 0);
  // Initialised on the host from the run's generator, so a CPU and a GPU run start from the same
  // weights, then moved.
  s.model = std::make_unique<nn::SparseTransformer>(tc, &s.gen);
  s.model->to(c.device);
  const NamedTensors params = s.model->named_parameters();
  auto make_optimizer = [&c](NamedTensors ps) -> std::unique_ptr<Optimizer> {
    if (c.optimizer.name == OptimizerKind::adamw)
      return std::make_unique<AdamW>(std::move(ps), c.optimizer.betas[0], c.optimizer.betas[1], c.optimizer.eps,
                                     c.optimizer.weight_decay, c.optimizer.no_decay);
    return std::make_unique<SGD>(std::move(ps), c.optimizer.momentum, c.optimizer.weight_decay, c.optimizer.no_decay);
  };
  if (c.distributed.zero1 && s.comm->size() > 1) {
    s.optim = std::make_unique<dist::ShardedOptimizer>(params, s.comm, make_optimizer);
  } else {
    s.optim = make_optimizer(params);
  }
  s.schedule = LrSchedule{c.schedule.name, c.optimizer.lr, c.schedule.min_lr, c.schedule.warmup, c.train.steps};

  s.run_dir = (fs::path(s.opt.runs_root) / c.name).string();
  const std::string ckpt_dir = (fs::path(s.run_dir) / "checkpoints").string();
  if (s.opt.resume) {
    SPARTA_CHECK(fs::exists(s.run_dir), "resume", "run directory '", s.run_dir, "' does not exist");
    s.checkpoints = std::make_unique<CheckpointManager>(ckpt_dir, int(c.checkpoint.keep_last), c.checkpoint.keep_best);
    auto latest = s.checkpoints->latest();
    SPARTA_CHECK(latest.has_value(), "resume", "'", s.run_dir, "' has no checkpoint to resume from");
    CheckpointState st = load_checkpoint(*latest);
    check_compatible(st, params);
    std::map<std::string, Tensor> model_state(st.model.begin(), st.model.end());
    s.model->load_state_dict(model_state);
    s.optim->load_state(st.optimizer);
    s.step = st.step;
    s.gen.set_state(rank_seed(uint64_t(st.counters.at("rng.seed")), s.comm->rank()),
                    uint64_t(st.counters.at("rng.offset")));
    sampler.set_state(data::SamplerState::from_map(st.counters, "data."));
    if (st.scalars.count("best_val_loss")) s.best_val = st.scalars.at("best_val_loss");
    s.scaler.load(st.scalars, st.counters);
  } else {
    s.gen.set_state(rank_seed(c.seed, s.comm->rank()), s.gen.offset());
    SPARTA_CHECK(!fs::exists(fs::path(s.run_dir) / "checkpoints") || fs::is_empty(fs::path(s.run_dir) / "checkpoints"),
                 "train", "run directory '", s.run_dir, "' already holds checkpoints: resume it with `sparta resume ",
                 s.run_dir, "` or choose another name");
    if (s.root) {
      fs::create_directories(ckpt_dir);
      s.checkpoints =
          std::make_unique<CheckpointManager>(ckpt_dir, int(c.checkpoint.keep_last), c.checkpoint.keep_best);
    }
  }
  if (s.comm->size() > 1) {
    // Every rank starts from rank 0's weights (they agree already, being drawn from one seed or
    // read from one checkpoint; this makes it so whatever the seed handling of a future layer),
    // and the reducer's hooks go on the parameters only now that they hold their final storage.
    for (const auto& [name, p] : params) s.comm->broadcast(p, 0, "parameter " + name);
    s.reducer = std::make_unique<dist::GradReducer>(s.comm, params, c.distributed.bucket_mb,
                                                    c.distributed.reduce_dtype);
  }
  s.loader = std::make_unique<data::Prefetcher>(std::move(sampler), std::max<int64_t>(1, c.data.prefetch));
  if (s.root) {
    write_file_atomically((fs::path(s.run_dir) / "config.yaml").string(), to_yaml(c));
    s.metrics = std::make_unique<MetricsLog>((fs::path(s.run_dir) / "metrics.jsonl").string(),
                                             s.opt.resume ? std::optional<int64_t>(s.step) : std::nullopt);
    if (c.logging.tensorboard) s.events = std::make_unique<EventWriter>(s.run_dir, s.opt.resume ? s.step : -1);
    s.log.open((fs::path(s.run_dir) / "log.txt").string(), std::ios::app);
  }
  // The baseline a model must beat: the entropy of the validation bytes under their own unigram
  // distribution (what a model that ignores context would reach at best).
  {
    std::vector<uint16_t> v = s.split.validation->read_all();
    std::vector<double> counts(size_t(std::max<int64_t>(c.model.vocab_size, 1)), 0.0);
    for (uint16_t t : v) counts[t] += 1;
    double h = 0;
    for (double n : counts)
      if (n > 0) h -= n / double(v.size()) * std::log2(n / double(v.size()));
    s.unigram_bits = h;
  }
  s.say((s.opt.resume ? "resuming " : "training ") + s.run_dir + " at step " + std::to_string(s.step) + ": " +
        std::to_string(s.model->parameter_count()) + " parameters, data " + source->describe() + " (" +
        std::to_string(s.split.train->size()) + " training / " + std::to_string(s.split.validation->size()) +
        " validation tokens); unigram entropy of the validation data " + std::to_string(s.unigram_bits).substr(0, 5) +
        " bits per token" +
        (s.comm->size() > 1 ? "; " + std::to_string(s.comm->size()) + " processes over " + s.comm->backend() + ", " +
                                  std::to_string(s.reducer->bucket_count()) + " gradient buckets"
                            : std::string()));
  if (auto* sharded = dynamic_cast<const dist::ShardedOptimizer*>(s.optim.get())) {
    int64_t mine = 0;
    for (size_t i = 0; i < params.size(); ++i)
      if (sharded->owners()[i] == 0) mine += params[i].second.numel();
    s.say("optimizer state sharded over the ranks (ZeRO-1): rank 0 keeps that of " + std::to_string(mine) + " of " +
          std::to_string(s.model->parameter_count()) + " parameters");
  }
}

Trainer::~Trainer() = default;

const nn::SparseTransformer& Trainer::model() const { return *s_->model; }
const std::string& Trainer::run_dir() const { return s_->run_dir; }

TrainResult Trainer::run() {
  State& s = *s_;
  const RunConfig& c = s.cfg;
  TrainResult result;
  result.run_dir = s.run_dir;
  const NamedTensors params = s.model->named_parameters();
  const int world = s.comm->size();
  const int64_t tokens_per_step = c.train.batch_size * c.model.seq_len * c.train.grad_accum * world;
  const std::optional<DType> low = autocast_precision(c.precision);
  if (c.train.deterministic) set_deterministic_algorithms(true);  // never turns the environment's setting off
  const auto start = std::chrono::steady_clock::now();
  EtaEstimator eta;
  int64_t consecutive_skips = 0;
  const int64_t last = s.opt.stop_after ? std::min(*s.opt.stop_after, c.train.steps) : c.train.steps;
  s.model->train();
  // The step the newest checkpoint holds (-1: none yet), so a stop request does not save it twice.
  int64_t saved_step = s.opt.resume ? s.step : -1;
  while (s.step < last) {
    bool stop = s.opt.should_stop && s.opt.should_stop();
    if (world > 1) {
      // Ranks get signals at different moments; they stop together (Note [collective order]).
      std::vector<double> flag{stop ? 1.0 : 0.0};
      s.comm->all_reduce_host(flag, dist::ReduceOp::max, "the stop flag of step " + std::to_string(s.step + 1));
      stop = flag[0] > 0;
    }
    if (stop) {
      if (s.step > 0 && saved_step != s.step) {
        NamedTensors optimizer_state = s.optim->full_state();
        if (s.root) {
          result.last_checkpoint = s.checkpoints->save(s.step, s.snapshot(std::move(optimizer_state)));
          s.say("checkpoint " + result.last_checkpoint);
        }
      }
      s.say("stopped on request at step " + std::to_string(s.step));
      result.stopped = true;
      break;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t step = s.step + 1;
    // The memory report: what is held between steps (weights, optimizer state) and the peak above it.
    const int64_t held = memory_stats(c.device).current_bytes;
    reset_peak_memory(c.device);
    double loss_sum = 0;
    for (int64_t a = 0; a < c.train.grad_accum; ++a) {
      data::Batch b = s.loader->next();
      Tensor loss;
      {
        AutocastGuard autocast(low);
        loss = s.model->loss(b.inputs, b.targets);
      }
      loss_sum += loss.item<double>();
      if (s.reducer) s.reducer->set_sync(a == c.train.grad_accum - 1);
      autograd::backward(loss * (s.scaler.scale() / double(c.train.grad_accum)));
    }
    if (world > 1) {
      std::vector<double> sum{loss_sum};
      s.comm->all_reduce_host(sum, dist::ReduceOp::avg, "the loss of step " + std::to_string(step));
      loss_sum = sum[0];
    }
    const double loss = loss_sum / double(c.train.grad_accum);
    const int64_t grad_bytes = bytes_of_grads(params);
    s.scaler.unscale(params);
    const double norm = clip_grad_norm(params, c.train.grad_clip);
    s.scaler.update(std::isfinite(norm));
    const double lr = s.schedule.at(step);
    s.step = step;
    if (!std::isfinite(loss) || !std::isfinite(norm)) {
      // Never applied: the step is dropped and counted.
      s.optim->zero_grad();
      ++result.skipped_steps;
      s.say("step " + std::to_string(step) + ": non-finite " + (std::isfinite(loss) ? "gradient" : "loss") +
            ", step skipped" + (s.scaler.enabled() ? " (loss scale now " + std::to_string(s.scaler.scale()) + ")" : ""));
      SPARTA_CHECK(++consecutive_skips < kMaxConsecutiveSkips, "train", kMaxConsecutiveSkips,
                   " steps in a row had non-finite losses or gradients; stopping. The last good checkpoint is ",
                   s.checkpoints ? s.checkpoints->latest().value_or("(none)") : "(see rank 0)");
      continue;
    }
    consecutive_skips = 0;
    s.optim->step(lr);
    s.optim->zero_grad();
    result.last_loss = loss;
    const double dt = seconds_since(t0);
    eta.record(dt);

    const bool log_now = c.logging.every > 0 && (step % c.logging.every == 0 || step == last);
    const bool eval_now = c.train.eval_every > 0 && (step % c.train.eval_every == 0 || step == c.train.steps);
    MetricsRecord rec;
    rec.step = step;
    rec.loss = loss;
    rec.lr = lr;
    rec.grad_norm = norm;
    rec.tokens_per_s = double(tokens_per_step) / dt;
    rec.elapsed_s = seconds_since(start);
    rec.memory_bytes = memory_stats(c.device).peak_bytes;
    // Peak bytes by category: the activations are what the step's peak held beyond the weights,
    // optimizer state and gradients (saved tensors of the tape and the temporaries beside them).
    rec.extra["mem_params_bytes"] = double(bytes_of(params));
    rec.extra["mem_optimizer_bytes"] = double(bytes_of(s.optim->state()));
    rec.extra["mem_grads_bytes"] = double(grad_bytes);
    rec.extra["mem_activations_bytes"] = double(std::max<int64_t>(0, rec.memory_bytes - held - grad_bytes));
    if (result.skipped_steps > 0) rec.extra["skipped_steps"] = double(result.skipped_steps);
    if (s.scaler.enabled()) rec.extra["loss_scale"] = s.scaler.scale();
    if (eval_now) {
      s.model->eval();
      // Each rank evaluates its share of the windows (the same windows whatever the world size).
      const EvalSums part = evaluate_sums(*s.model, s.split.validation, c.model.seq_len, c.train.batch_size,
                                          c.train.eval_batches * c.train.batch_size, low, s.comm->rank(), world);
      std::vector<double> sums{part.loss_sum, double(part.windows)};
      if (world > 1) s.comm->all_reduce_host(sums, dist::ReduceOp::sum, "the validation loss of step " + std::to_string(step));
      const double v = sums[0] / sums[1];
      s.model->train();
      rec.val_loss = v;
      rec.val_bpb = v / std::log(2.0);
      rec.val_ppl = std::exp(v);
      result.val_loss = v;
      result.val_bpb = *rec.val_bpb;
      s.best_val = std::min(s.best_val, v);
    }
    if (s.root && (log_now || eval_now)) {
      s.metrics->append(rec);
      if (s.events) {
        std::map<std::string, double> scalars = {{"train/loss", loss}, {"train/lr", lr}, {"train/grad_norm", norm},
                                                 {"train/tokens_per_s", rec.tokens_per_s}};
        if (rec.val_loss) {
          scalars["val/loss"] = *rec.val_loss;
          scalars["val/bpb"] = *rec.val_bpb;
        }
        s.events->add_scalars(step, scalars);
        s.events->flush();
      }
      ProgressInfo p;
      p.step = step;
      p.total_steps = c.train.steps;
      p.loss = loss;
      p.lr = lr;
      p.tokens_per_s = rec.tokens_per_s;
      p.memory_bytes = rec.memory_bytes;
      p.eta_s = eta.eta_s(c.train.steps - step);
      std::string line = format_progress(p);
      if (rec.val_loss) {
        char buf[96];
        std::snprintf(buf, sizeof buf, " | val loss %.4f bpb %.3f", *rec.val_loss, *rec.val_bpb);
        line += buf;
      }
      s.say(line);
    }
    const bool ckpt_now = (c.checkpoint.every > 0 && step % c.checkpoint.every == 0) || step == last;
    if (ckpt_now) saved_step = step;
    if (ckpt_now) {
      NamedTensors optimizer_state = s.optim->full_state();
      if (s.root) {
        result.last_checkpoint = s.checkpoints->save(step, s.snapshot(std::move(optimizer_state)), rec.val_loss);
        s.say("checkpoint " + result.last_checkpoint);
      }
    }
  }
  // Every rank returns once rank 0's last checkpoint is on disk.
  if (world > 1) s.comm->barrier("the end of the run");
  result.step = s.step;
  return result;
}

}  // namespace sparta::train
