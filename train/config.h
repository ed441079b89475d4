#pragma once
// The run configuration: one YAML file describes a run. It is parsed into these plain structs
// (defaults in the member initialisers), every key is checked before anything runs, command-line
// overrides `a.b.c=value` are applied to the YAML tree before typing, and to_yaml writes the
// resolved config (every key, defaults included) that the trainer puts into the run directory and
// into every checkpoint; parsing it back gives an equal RunConfig.
//
// Errors are sparta::Error "[config] <file>:<line>: <key path>: <problem>", or, for a value that
// came from an override, "[config] <file>: override 'model.d_model=abc': model.d_model: ...".
#include <cstdint>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "train/lr_schedule.h"

namespace sparta::train {

enum class Precision { fp32, bf16, fp16 };
enum class Positions { learned, sinusoidal, rotary };
enum class DataFormat { text, shards };
enum class Utf8Mode { strict, bytes };
enum class OptimizerKind { adamw, sgd };

// The YAML spellings ("bf16", "rotary", ...). ScheduleKind's are schedule_name / schedule_from_name.
const char* enum_name(Precision v);
const char* enum_name(Positions v);
const char* enum_name(DataFormat v);
const char* enum_name(Utf8Mode v);
const char* enum_name(OptimizerKind v);
// The dtype matmul and attention run in (norms, softmax and losses stay f32 under autocast).
DType precision_dtype(Precision p);

struct ModelConfig {
  int64_t vocab_size = 256;  // 256: the byte tokenizer's vocabulary
  int64_t d_model = 256;     // residual width; a multiple of n_heads
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  // MLP hidden width. Written as 0 (or left out) it means 4 * d_model, and parsing stores the
  // resolved width, so the resolved YAML records the number the run actually used.
  int64_t d_ff = 0;
  int64_t seq_len = 256;  // context length in tokens
  double dropout = 0.0;   // in [0, 1)
  // "learned" | "sinusoidal" | "rotary" (rotary needs an even head dimension d_model / n_heads).
  Positions positions = Positions::learned;
  bool tie_embeddings = true;  // the output projection reuses the token embedding matrix
  // Attention patterns as nn::parse_pattern spells them ("local:128", "fixed:64:8",
  // "local:64+strided:16" for a union, "local:64|fixed:64:8" per head); layer i uses
  // attention[i % attention.size()], so ["local:128", "strided:16"] alternates as Child et al. do.
  // Every entry must be causal (the model is a language model) and fit seq_len.
  std::vector<std::string> attention{"dense"};
  int64_t block = 64;  // attention block size of the BlockLayout (clamped to seq_len)
  // Activation checkpointing: 0 "none", 1 "all" (every layer), k "every_k" (every k-th layer):
  // recomputing a layer in backward trades about one extra forward for its activations' memory.
  int64_t checkpoint_every = 0;

  int64_t resolved_d_ff() const { return d_ff > 0 ? d_ff : 4 * d_model; }
};

struct DataConfig {
  // A text file, a directory of them, or a directory of token shards. Required; its existence is
  // checked by the trainer when it opens it, not here, so a config can be written before its data.
  std::string path;
  std::string glob;                       // file-name filter under a directory path; "" takes every file
  DataFormat format = DataFormat::text;   // "text" (tokenized on the fly) | "shards" (pre-tokenized)
  Utf8Mode utf8 = Utf8Mode::strict;       // "strict": invalid UTF-8 is an error naming file and offset; "bytes": taken as is
  double val_fraction = 0.05;             // share of the data held out for evaluation, in [0, 1)
  int64_t prefetch = 4;                   // batches prepared ahead by the loader thread; 0 loads inline
};

struct OptimizerConfig {
  OptimizerKind name = OptimizerKind::adamw;  // "adamw" | "sgd"
  double lr = 3e-4;                           // peak learning rate, reached at the end of warmup
  std::vector<double> betas{0.9, 0.95};       // adamw moment decays, two values in [0, 1)
  double eps = 1e-8;                          // adamw denominator term
  double weight_decay = 0.1;                  // decoupled (adamw) or L2 (sgd); 0 turns it off
  double momentum = 0.9;                      // sgd only, in [0, 1)
  // Parameters whose name contains one of these substrings get no weight decay: biases, norm gains
  // and embeddings are not shrunk toward zero (decaying them hurts small models most).
  std::vector<std::string> no_decay{"bias", "norm", "embed"};
};

struct ScheduleConfig {
  ScheduleKind name = ScheduleKind::cosine;  // "cosine" | "linear" | "constant"
  int64_t warmup = 100;                      // steps of linear warmup from 0 to optimizer.lr
  double min_lr = 0;                         // where cosine and linear decay end; <= optimizer.lr
};

struct TrainConfig {
  int64_t steps = 1000;       // optimizer steps
  int64_t batch_size = 8;     // sequences per micro-batch
  int64_t grad_accum = 1;     // micro-batches per optimizer step
  double grad_clip = 1.0;     // global gradient-norm clip; 0 turns clipping off
  int64_t eval_every = 100;   // steps between evaluations; 0: never
  int64_t eval_batches = 10;  // validation batches per evaluation
  // Bitwise-reproducible GPU runs at some speed (core/determinism.h); SPARTA_DETERMINISTIC=1 in
  // the environment also turns it on.
  bool deterministic = false;
};

struct LoggingConfig {
  int64_t every = 10;      // steps between metrics.jsonl lines
  bool tensorboard = true;  // also write TensorBoard event files
};

struct CheckpointConfig {
  int64_t every = 500;    // steps between checkpoints; 0: only the final one
  int64_t keep_last = 3;  // periodic checkpoints kept, oldest deleted first
  bool keep_best = true;  // also keep the one with the lowest validation loss
};

// Data parallelism (train/dist/): one process per device, launched by mpirun or torchrun-style
// environment variables; docs/distributed.md. train.batch_size is per process, so the global
// batch is batch_size * world_size.
enum class ReduceDType { f32, bf16 };
const char* enum_name(ReduceDType v);

struct DistributedConfig {
  double bucket_mb = 25;                  // gradient bucket size in MB: all-reduced as soon as it is full in backward
  ReduceDType reduce_dtype = ReduceDType::f32;  // "f32" | "bf16": the dtype gradients are averaged in
  double timeout_s = 300;                 // a collective (or a silent peer) stalled this long is an error
  // ZeRO stage 1: each rank keeps the optimizer state of its share of the parameters only and
  // broadcasts that share after each step (train/dist/sharded_optimizer.h).
  bool zero1 = false;
  // Recorded, not read: the number of processes the run last ran with (resolved configs and
  // checkpoints say what they came from; a run resumes under any world size).
  int64_t world_size = 1;
};

struct RunConfig {
  std::string name = "run";  // run directory runs/<name>/; letters, digits, '.', '_', '-'
  uint64_t seed = 0;         // seeds parameter init, dropout and data order
  Device device = Device::cpu();     // "cpu" | "cuda" | "cuda:N"
  Precision precision = Precision::fp32;  // "fp32" | "bf16" | "fp16" (fp16 needs a cuda device)
  ModelConfig model;
  DataConfig data;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainConfig train;
  LoggingConfig logging;
  CheckpointConfig checkpoint;
  DistributedConfig distributed;
};

bool operator==(const ModelConfig& a, const ModelConfig& b);
bool operator==(const DataConfig& a, const DataConfig& b);
bool operator==(const OptimizerConfig& a, const OptimizerConfig& b);
bool operator==(const ScheduleConfig& a, const ScheduleConfig& b);
bool operator==(const TrainConfig& a, const TrainConfig& b);
bool operator==(const LoggingConfig& a, const LoggingConfig& b);
bool operator==(const CheckpointConfig& a, const CheckpointConfig& b);
bool operator==(const DistributedConfig& a, const DistributedConfig& b);
bool operator==(const RunConfig& a, const RunConfig& b);
inline bool operator!=(const RunConfig& a, const RunConfig& b) { return !(a == b); }

// Reads and validates the YAML file at `path`, after applying `overrides` ("a.b.c=value", the value
// a YAML scalar or flow sequence, e.g. "model.attention=[local:64,strided:16]") in order.
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same for YAML text; `source_name` (a file name, "<cli>") is what errors name.
RunConfig parse_config(const std::string& yaml_text, const std::string& source_name,
                       const std::vector<std::string>& overrides = {});
// The resolved config as YAML: every key, in schema order; parse_config of it gives back `config`.
std::string to_yaml(const RunConfig& config);

}  // namespace sparta::train
