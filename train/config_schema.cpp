#include "train/config_schema.h"

#include <algorithm>
#include <cstdlib>

#include "nn/attention/patterns.h"

namespace sparta::train {

namespace config_detail {
namespace {

template <typename E>
using Names = std::vector<std::pair<const char*, E>>;

const Names<Precision>& precision_names() {
  static const Names<Precision> n{{"fp32", Precision::fp32}, {"bf16", Precision::bf16}, {"fp16", Precision::fp16}};
  return n;
}
const Names<Positions>& positions_names() {
  static const Names<Positions> n{
      {"learned", Positions::learned}, {"sinusoidal", Positions::sinusoidal}, {"rotary", Positions::rotary}};
  return n;
}
const Names<DataFormat>& format_names() {
  static const Names<DataFormat> n{{"text", DataFormat::text}, {"shards", DataFormat::shards}};
  return n;
}
const Names<Utf8Mode>& utf8_names() {
  static const Names<Utf8Mode> n{{"strict", Utf8Mode::strict}, {"bytes", Utf8Mode::bytes}};
  return n;
}
const Names<OptimizerKind>& optimizer_names() {
  static const Names<OptimizerKind> n{{"adamw", OptimizerKind::adamw}, {"sgd", OptimizerKind::sgd}};
  return n;
}
const Names<ScheduleKind>& schedule_names() {
  static const Names<ScheduleKind> n{
      {"cosine", ScheduleKind::cosine}, {"linear", ScheduleKind::linear}, {"constant", ScheduleKind::constant}};
  return n;
}

const Names<ReduceDType>& reduce_dtype_names() {
  static const Names<ReduceDType> n{{"f32", ReduceDType::f32}, {"bf16", ReduceDType::bf16}};
  return n;
}

template <typename E>
const char* name_in(const Names<E>& names, E v) {
  for (const auto& [name, value] : names) {
    if (value == v) return name;
  }
  return "?";
}

// Drops the "[op] " prefix of a nested sparta::Error, which the config error replaces.
std::string without_op(const std::string& msg) {
  if (msg.empty() || msg[0] != '[') return msg;
  const size_t end = msg.find("] ");
  return end == std::string::npos ? msg : msg.substr(end + 2);
}

bool valid_run_name(const std::string& s) {
  if (s.empty() || s == "." || s == "..") return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

void check_positive(const Section& s, const char* key, int64_t v) { s.check(v >= 1, key, "must be >= 1, got ", v); }
void check_not_negative(const Section& s, const char* key, int64_t v) {
  s.check(v >= 0, key, "must be >= 0, got ", v);
}
void check_unit(const Section& s, const char* key, double v) {
  s.check(v >= 0 && v < 1, key, "must be in [0, 1), got ", v);
}

// "none" -> 0, "all" -> 1, "every_k" -> k.
void read_checkpointing(Section& s, int64_t& out) {
  std::string text;
  s.read("checkpoint_activations", text);
  if (!s.has("checkpoint_activations")) return;
  if (text == "none") {
    out = 0;
    return;
  }
  if (text == "all") {
    out = 1;
    return;
  }
  if (text.rfind("every_", 0) == 0 && text.size() > 6 &&
      text.find_first_not_of("0123456789", 6) == std::string::npos && text.size() < 6 + 10) {
    out = std::strtoll(text.c_str() + 6, nullptr, 10);
    if (out >= 1) return;
  }
  s.fail("checkpoint_activations", "unknown value '", text, "' (expected none, all or every_N with N >= 1)");
}

void check_attention(const Section& s, const ModelConfig& m) {
  s.check(!m.attention.empty(), "attention", "needs at least one pattern");
  const YAML::Node list = s.value("attention");
  for (size_t i = 0; i < m.attention.size(); ++i) {
    const std::string path = s.path_of("attention") + "[" + std::to_string(i) + "]";
    const YAML::Node node = list.IsSequence() ? list[i] : list;
    const std::string& text = m.attention[i];
    std::string problem;
    try {
      nn::PatternPtr p = nn::parse_pattern(text);
      // A bidirectional layer would let position t see t+1, the token it is trained to predict.
      if (!p->causal()) {
        problem = "pattern '" + text + "' is bidirectional; a language model needs causal attention (" +
                  (text.find("bidirectional") != std::string::npos ? "drop ':bidirectional'"
                                                                     : "bigbird and longformer take a ':causal' suffix") +
                  ")";
      } else {
        // Parameters that only a sequence length can refute (a window longer than seq_len, a global
        // token past it, a bitmap of the wrong size) fail here rather than at the first step. The
        // layout itself is not built: at long sequence lengths a dense one alone is gigabytes.
        p->validate(m.seq_len, std::min(m.block, m.seq_len));
      }
    } catch (const Error& e) {
      problem = "invalid pattern '" + text + "': " + without_op(e.what());
    }
    if (!problem.empty()) s.origin().fail(path, node, path + ": " + problem);
  }
}

ModelConfig read_model(Section s) {
  ModelConfig m;
  s.read("vocab_size", m.vocab_size);
  s.read("d_model", m.d_model);
  s.read("n_layers", m.n_layers);
  s.read("n_heads", m.n_heads);
  s.read("d_ff", m.d_ff);
  s.read("seq_len", m.seq_len);
  s.read("dropout", m.dropout);
  s.read_enum("positions", m.positions, positions_names());
  s.read("tie_embeddings", m.tie_embeddings);
  s.read("attention", m.attention);
  s.read("block", m.block);
  read_checkpointing(s, m.checkpoint_every);
  s.finish();

  check_positive(s, "vocab_size", m.vocab_size);
  check_positive(s, "d_model", m.d_model);
  check_positive(s, "n_layers", m.n_layers);
  s.check(m.n_heads >= 1 && m.n_heads <= 65536, "n_heads", "must be in [1, 65536], got ", m.n_heads);
  s.check(m.d_model % m.n_heads == 0, "n_heads", "d_model ", m.d_model, " is not divisible by n_heads ", m.n_heads);
  check_not_negative(s, "d_ff", m.d_ff);
  m.d_ff = m.resolved_d_ff();
  check_positive(s, "seq_len", m.seq_len);
  check_unit(s, "dropout", m.dropout);
  const int64_t head_dim = m.d_model / m.n_heads;
  s.check(m.positions != Positions::rotary || head_dim % 2 == 0, "positions",
          "rotary embeddings rotate pairs of channels and need an even head dimension, d_model / n_heads = ",
          head_dim);
  check_positive(s, "block", m.block);
  check_attention(s, m);
  return m;
}

DataConfig read_data(Section s) {
  DataConfig d;
  s.read("path", d.path);
  s.read("glob", d.glob);
  s.read_enum("format", d.format, format_names());
  s.read_enum("utf8", d.utf8, utf8_names());
  s.read("val_fraction", d.val_fraction);
  s.read("prefetch", d.prefetch);
  s.finish();

  if (!s.has("path")) {
    s.origin().fail(s.path_of("path"), s.value("path"), "missing required key '" + s.path_of("path") + "'");
  }
  s.check(!d.path.empty(), "path", "must not be empty");
  check_unit(s, "val_fraction", d.val_fraction);
  check_not_negative(s, "prefetch", d.prefetch);
  return d;
}

OptimizerConfig read_optimizer(Section s) {
  OptimizerConfig o;
  s.read_enum("name", o.name, optimizer_names());
  s.read("lr", o.lr);
  s.read("betas", o.betas);
  s.read("eps", o.eps);
  s.read("weight_decay", o.weight_decay);
  s.read("momentum", o.momentum);
  s.read("no_decay", o.no_decay);
  s.finish();

  s.check(o.lr > 0, "lr", "must be > 0, got ", o.lr);
  s.check(o.betas.size() == 2, "betas", "expected two values [beta1, beta2], got ", o.betas.size());
  for (double b : o.betas) check_unit(s, "betas", b);
  s.check(o.eps > 0, "eps", "must be > 0, got ", o.eps);
  s.check(o.weight_decay >= 0, "weight_decay", "must be >= 0, got ", o.weight_decay);
  check_unit(s, "momentum", o.momentum);
  for (const std::string& p : o.no_decay) s.check(!p.empty(), "no_decay", "holds an empty name pattern");
  return o;
}

ScheduleConfig read_schedule(Section s) {
  ScheduleConfig c;
  s.read_enum("name", c.name, schedule_names());
  s.read("warmup", c.warmup);
  s.read("min_lr", c.min_lr);
  s.finish();
  check_not_negative(s, "warmup", c.warmup);
  s.check(c.min_lr >= 0, "min_lr", "must be >= 0, got ", c.min_lr);
  return c;
}

TrainConfig read_train(Section s) {
  TrainConfig t;
  s.read("steps", t.steps);
  s.read("batch_size", t.batch_size);
  s.read("grad_accum", t.grad_accum);
  s.read("grad_clip", t.grad_clip);
  s.read("eval_every", t.eval_every);
  s.read("eval_batches", t.eval_batches);
  s.read("deterministic", t.deterministic);
  s.finish();
  check_positive(s, "steps", t.steps);
  check_positive(s, "batch_size", t.batch_size);
  check_positive(s, "grad_accum", t.grad_accum);
  s.check(t.grad_clip >= 0, "grad_clip", "must be >= 0 (0 turns clipping off), got ", t.grad_clip);
  check_not_negative(s, "eval_every", t.eval_every);
  check_positive(s, "eval_batches", t.eval_batches);
  return t;
}

LoggingConfig read_logging(Section s) {
  LoggingConfig l;
  s.read("every", l.every);
  s.read("tensorboard", l.tensorboard);
  s.finish();
  check_positive(s, "every", l.every);
  return l;
}

CheckpointConfig read_checkpoint(Section s) {
  CheckpointConfig c;
  s.read("every", c.every);
  s.read("keep_last", c.keep_last);
  s.read("keep_best", c.keep_best);
  s.finish();
  check_not_negative(s, "every", c.every);
  check_positive(s, "keep_last", c.keep_last);
  return c;
}

DistributedConfig read_distributed(Section s) {
  DistributedConfig d;
  s.read("bucket_mb", d.bucket_mb);
  s.read_enum("reduce_dtype", d.reduce_dtype, reduce_dtype_names());
  s.read("timeout_s", d.timeout_s);
  s.read("zero1", d.zero1);
  s.read("world_size", d.world_size);
  s.finish();
  s.check(d.bucket_mb > 0, "bucket_mb", "must be > 0, got ", d.bucket_mb);
  s.check(d.timeout_s >= 1, "timeout_s", "must be >= 1 second, got ", d.timeout_s);
  check_positive(s, "world_size", d.world_size);
  return d;
}

}  // namespace

RunConfig config_from_tree(const YAML::Node& root, const Origin& origin) {
  RunConfig c;
  Section top(root, "", origin);
  top.read("name", c.name);
  top.read("seed", c.seed);
  std::string device = c.device.str();
  top.read("device", device);
  top.read_enum("precision", c.precision, precision_names());
  // Sections are looked up before any is parsed, so a misspelt section name is reported first:
  // the values under it are the ones the author meant to set.
  Section model = top.section("model"), data = top.section("data"), optimizer = top.section("optimizer"),
          schedule = top.section("schedule"), train = top.section("train"), logging = top.section("logging"),
          checkpoint = top.section("checkpoint"), distributed = top.section("distributed");
  top.finish();

  top.check(valid_run_name(c.name), "name", "'", c.name,
            "' is not a directory name (use letters, digits, '.', '_' and '-')");
  try {
    c.device = device_from_name(device);
  } catch (const Error& e) {
    top.fail("device", without_op(e.what()));
  }
  top.check(c.precision != Precision::fp16 || c.device.is_cuda(), "precision",
            "'fp16' needs a cuda device (its loss scaling and kernels are CUDA-only), device is '", device,
            "'; use 'bf16' or 'fp32' on cpu");

  c.model = read_model(model);
  c.data = read_data(data);
  c.optimizer = read_optimizer(optimizer);
  c.schedule = read_schedule(schedule);
  c.train = read_train(train);
  c.logging = read_logging(logging);
  c.checkpoint = read_checkpoint(checkpoint);
  c.distributed = read_distributed(distributed);

  Section(schedule).check(c.schedule.min_lr <= c.optimizer.lr, "min_lr", c.schedule.min_lr,
                          " is above optimizer.lr ", c.optimizer.lr, " (the decay would go up)");
  return c;
}

}  // namespace config_detail

const char* enum_name(Precision v) { return config_detail::name_in(config_detail::precision_names(), v); }
const char* enum_name(Positions v) { return config_detail::name_in(config_detail::positions_names(), v); }
const char* enum_name(DataFormat v) { return config_detail::name_in(config_detail::format_names(), v); }
const char* enum_name(Utf8Mode v) { return config_detail::name_in(config_detail::utf8_names(), v); }
const char* enum_name(ReduceDType v) { return config_detail::name_in(config_detail::reduce_dtype_names(), v); }
const char* enum_name(OptimizerKind v) { return config_detail::name_in(config_detail::optimizer_names(), v); }

DType precision_dtype(Precision p) {
  switch (p) {
    case Precision::fp32: return DType::f32;
    case Precision::bf16: return DType::bf16;
    case Precision::fp16: return DType::f16;
  }
  return DType::f32;
}

}  // namespace sparta::train
