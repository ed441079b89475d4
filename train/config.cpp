#include "train/config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <sstream>
#include <tuple>

#include "train/config_schema.h"

namespace sparta::train {

namespace {

using config_detail::Origin;

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Applies "a.b.c=value" to the tree: the value is parsed as YAML (a scalar, or a flow sequence such
// as [local:64,strided:16]) and replaces the node at a.b.c, creating missing sections on the way.
// Whether the key exists is left to the schema, which knows the valid names to suggest; `origin`
// remembers the override so that error names it rather than a line of the file.
void apply_override(YAML::Node& root, const std::string& text, Origin& origin) {
  const std::string& src = origin.source();
  const size_t eq = text.find('=');
  if (eq == std::string::npos) {
    throw Error("[config] " + src + ": malformed override '" + text +
                "': expected key=value, e.g. model.d_model=512");
  }
  const std::string key = text.substr(0, eq), value_text = text.substr(eq + 1);
  std::vector<std::string> parts;
  for (size_t start = 0;;) {
    const size_t dot = key.find('.', start);
    parts.push_back(key.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  for (const std::string& p : parts) {
    if (p.empty() || !std::all_of(p.begin(), p.end(), is_name_char)) {
      throw Error("[config] " + src + ": malformed override '" + text + "': '" + key +
                  "' is not a key path like model.d_model");
    }
  }
  YAML::Node value;
  try {
    value = YAML::Load(value_text);
  } catch (const YAML::Exception& e) {
    // A shell word such as *.txt or &x is not YAML (an alias, an anchor) but plainly means the
    // string; only what opens a list, a map or a quoted string must parse.
    const size_t first = value_text.find_first_not_of(" \t");
    if (first != std::string::npos && std::string("[{\"'").find(value_text[first]) != std::string::npos) {
      throw Error("[config] " + src + ": malformed override '" + text + "': the value is not valid YAML (" +
                  e.msg + ")");
    }
    value = YAML::Node(value_text);
  }
  if (!root.IsDefined() || root.IsNull()) root = YAML::Node(YAML::NodeType::Map);
  // reset() rebinds the handle; assigning a Node would overwrite the node it refers to.
  YAML::Node cur;
  cur.reset(root);
  std::string path;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (!cur.IsMap()) {
      throw Error("[config] " + src + ": override '" + text + "': '" + path + "' is a value, not a section");
    }
    path += (i ? "." : "") + parts[i];
    if (i + 1 == parts.size()) {
      cur[parts[i]] = value;
    } else {
      YAML::Node next = cur[parts[i]];
      if (!next.IsDefined() || next.IsNull()) {
        cur[parts[i]] = YAML::Node(YAML::NodeType::Map);
        next.reset(cur[parts[i]]);
      }
      cur.reset(next);
    }
  }
  origin.add_override(key, text);
}

// The shortest decimal that reads back as the same double, so the resolved YAML says 0.0003, not
// 0.00029999999999999997, and still round-trips exactly. It always has a '.', and an exponent keeps
// its sign, as YAML 1.1 readers (PyYAML) need to see a float rather than an int or a string.
std::string number(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general);
  std::string s = ec == std::errc() ? std::string(buf, end) : std::to_string(v);
  if (s.find('.') == std::string::npos) {
    const size_t e = s.find('e');
    s.insert(e == std::string::npos ? s.size() : e, ".0");
  }
  return s;
}

// Strings are always quoted, so a name such as "yes", "1" or "~" reads back as the same string.
YAML::Emitter& quoted(YAML::Emitter& out, const std::string& s) {
  return out << YAML::DoubleQuoted << s;
}

void emit_model(YAML::Emitter& out, const ModelConfig& m) {
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "vocab_size" << YAML::Value << m.vocab_size;
  out << YAML::Key << "d_model" << YAML::Value << m.d_model;
  out << YAML::Key << "n_layers" << YAML::Value << m.n_layers;
  out << YAML::Key << "n_heads" << YAML::Value << m.n_heads;
  out << YAML::Key << "d_ff" << YAML::Value << m.resolved_d_ff();
  out << YAML::Key << "seq_len" << YAML::Value << m.seq_len;
  out << YAML::Key << "dropout" << YAML::Value << number(m.dropout);
  out << YAML::Key << "positions" << YAML::Value << enum_name(m.positions);
  out << YAML::Key << "tie_embeddings" << YAML::Value << m.tie_embeddings;
  out << YAML::Key << "attention" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& p : m.attention) quoted(out, p);
  out << YAML::EndSeq;
  out << YAML::Key << "block" << YAML::Value << m.block;
  const std::string ckpt = m.checkpoint_every == 0   ? "none"
                           : m.checkpoint_every == 1 ? "all"
                                                     : "every_" + std::to_string(m.checkpoint_every);
  out << YAML::Key << "checkpoint_activations" << YAML::Value << ckpt;
  out << YAML::EndMap;
}

void emit_data(YAML::Emitter& out, const DataConfig& d) {
  out << YAML::Key << "data" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "path" << YAML::Value;
  quoted(out, d.path);
  out << YAML::Key << "glob" << YAML::Value;
  quoted(out, d.glob);
  out << YAML::Key << "format" << YAML::Value << enum_name(d.format);
  out << YAML::Key << "utf8" << YAML::Value << enum_name(d.utf8);
  out << YAML::Key << "val_fraction" << YAML::Value << number(d.val_fraction);
  out << YAML::Key << "prefetch" << YAML::Value << d.prefetch;
  out << YAML::EndMap;
}

void emit_optimizer(YAML::Emitter& out, const OptimizerConfig& o) {
  out << YAML::Key << "optimizer" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << enum_name(o.name);
  out << YAML::Key << "lr" << YAML::Value << number(o.lr);
  out << YAML::Key << "betas" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (double b : o.betas) out << number(b);
  out << YAML::EndSeq;
  out << YAML::Key << "eps" << YAML::Value << number(o.eps);
  out << YAML::Key << "weight_decay" << YAML::Value << number(o.weight_decay);
  out << YAML::Key << "momentum" << YAML::Value << number(o.momentum);
  out << YAML::Key << "no_decay" << YAML::Value << YAML::Flow << YAML::BeginSeq;
  for (const std::string& p : o.no_decay) quoted(out, p);
  out << YAML::EndSeq;
  out << YAML::EndMap;
}

void emit_rest(YAML::Emitter& out, const RunConfig& c) {
  out << YAML::Key << "schedule" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << schedule_name(c.schedule.name);
  out << YAML::Key << "warmup" << YAML::Value << c.schedule.warmup;
  out << YAML::Key << "min_lr" << YAML::Value << number(c.schedule.min_lr);
  out << YAML::EndMap;

  const TrainConfig& t = c.train;
  out << YAML::Key << "train" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "steps" << YAML::Value << t.steps;
  out << YAML::Key << "batch_size" << YAML::Value << t.batch_size;
  out << YAML::Key << "grad_accum" << YAML::Value << t.grad_accum;
  out << YAML::Key << "grad_clip" << YAML::Value << number(t.grad_clip);
  out << YAML::Key << "eval_every" << YAML::Value << t.eval_every;
  out << YAML::Key << "eval_batches" << YAML::Value << t.eval_batches;
  out << YAML::Key << "deterministic" << YAML::Value << t.deterministic;
  out << YAML::EndMap;

  out << YAML::Key << "logging" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "every" << YAML::Value << c.logging.every;
  out << YAML::Key << "tensorboard" << YAML::Value << c.logging.tensorboard;
  out << YAML::EndMap;

  out << YAML::Key << "checkpoint" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "every" << YAML::Value << c.checkpoint.every;
  out << YAML::Key << "keep_last" << YAML::Value << c.checkpoint.keep_last;
  out << YAML::Key << "keep_best" << YAML::Value << c.checkpoint.keep_best;
  out << YAML::EndMap;

  out << YAML::Key << "distributed" << YAML::Value << YAML::BeginMap;
  out << YAML::Key << "bucket_mb" << YAML::Value << number(c.distributed.bucket_mb);
  out << YAML::Key << "reduce_dtype" << YAML::Value << enum_name(c.distributed.reduce_dtype);
  out << YAML::Key << "zero1" << YAML::Value << c.distributed.zero1;
  out << YAML::Key << "timeout_s" << YAML::Value << number(c.distributed.timeout_s);
  out << YAML::Key << "world_size" << YAML::Value << c.distributed.world_size;
  out << YAML::EndMap;
}

}  // namespace

RunConfig parse_config(const std::string& yaml_text, const std::string& source_name,
                       const std::vector<std::string>& overrides) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error("[config] " + source_name + ":" + std::to_string(e.mark.line + 1) + ":" +
                std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
  }
  Origin origin(source_name);
  for (const std::string& o : overrides) apply_override(root, o, origin);
  return config_detail::config_from_tree(root, origin);
}

RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("[config] cannot open config file '" + path + "': " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw Error("[config] cannot read config file '" + path + "': " + std::strerror(errno));
  return parse_config(text.str(), path, overrides);
}

std::string to_yaml(const RunConfig& c) {
  YAML::Emitter out;
  out << YAML::Comment("sparta run configuration, fully resolved (every key, defaults included)");
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value;
  quoted(out, c.name);
  out << YAML::Key << "seed" << YAML::Value << c.seed;
  out << YAML::Key << "device" << YAML::Value << c.device.str();
  out << YAML::Key << "precision" << YAML::Value << enum_name(c.precision);
  emit_model(out, c.model);
  emit_data(out, c.data);
  emit_optimizer(out, c.optimizer);
  emit_rest(out, c);
  out << YAML::EndMap;
  return std::string(out.c_str()) + "\n";
}

bool operator==(const ModelConfig& a, const ModelConfig& b) {
  // d_ff 0 means 4 * d_model: the same model as one that spells the width out.
  const int64_t ff_a = a.resolved_d_ff(), ff_b = b.resolved_d_ff();
  return std::tie(a.vocab_size, a.d_model, a.n_layers, a.n_heads, ff_a, a.seq_len, a.dropout, a.positions,
                  a.tie_embeddings, a.attention, a.block, a.checkpoint_every) ==
         std::tie(b.vocab_size, b.d_model, b.n_layers, b.n_heads, ff_b, b.seq_len, b.dropout, b.positions,
                  b.tie_embeddings, b.attention, b.block, b.checkpoint_every);
}
bool operator==(const DataConfig& a, const DataConfig& b) {
  return std::tie(a.path, a.glob, a.format, a.utf8, a.val_fraction, a.prefetch) ==
         std::tie(b.path, b.glob, b.format, b.utf8, b.val_fraction, b.prefetch);
}
bool operator==(const OptimizerConfig& a, const OptimizerConfig& b) {
  return std::tie(a.name, a.lr, a.betas, a.eps, a.weight_decay, a.momentum, a.no_decay) ==
         std::tie(b.name, b.lr, b.betas, b.eps, b.weight_decay, b.momentum, b.no_decay);
}
bool operator==(const ScheduleConfig& a, const ScheduleConfig& b) {
  return std::tie(a.name, a.warmup, a.min_lr) == std::tie(b.name, b.warmup, b.min_lr);
}
bool operator==(const TrainConfig& a, const TrainConfig& b) {
  return std::tie(a.steps, a.batch_size, a.grad_accum, a.grad_clip, a.eval_every, a.eval_batches, a.deterministic) ==
         std::tie(b.steps, b.batch_size, b.grad_accum, b.grad_clip, b.eval_every, b.eval_batches, b.deterministic);
}
bool operator==(const LoggingConfig& a, const LoggingConfig& b) {
  return std::tie(a.every, a.tensorboard) == std::tie(b.every, b.tensorboard);
}
bool operator==(const CheckpointConfig& a, const CheckpointConfig& b) {
  return std::tie(a.every, a.keep_last, a.keep_best) == std::tie(b.every, b.keep_last, b.keep_best);
}
bool operator==(const DistributedConfig& a, const DistributedConfig& b) {
  return std::tie(a.bucket_mb, a.reduce_dtype, a.timeout_s, a.zero1, a.world_size) ==
         std::tie(b.bucket_mb, b.reduce_dtype, b.timeout_s, b.zero1, b.world_size);
}
bool operator==(const RunConfig& a, const RunConfig& b) {
  return std::tie(a.name, a.seed, a.device, a.precision, a.model, a.data, a.optimizer, a.schedule, a.train,
                  a.logging, a.checkpoint, a.distributed) ==
         std::tie(b.name, b.seed, b.device, b.precision, b.model, b.data, b.optimizer, b.schedule, b.train,
                  b.logging, b.checkpoint, b.distributed);
}

}  // namespace sparta::train
