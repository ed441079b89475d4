// The run configuration: defaults, every key read from YAML, overrides, the to_yaml round trip,
// every validation error with the file, key path and problem it must name, and every shipped
// config under configs/.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "tests/support.h"
#include "tests/temp_dir.h"
#include "train/config.h"

using namespace sparta;
using namespace sparta::train;
using namespace sparta::test;
namespace fs = std::filesystem;

namespace {

const std::string kMinimal = "data:\n  path: corpus.txt\n";

RunConfig parse(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  return parse_config(yaml, "configs/x.yaml", overrides);
}

void check_parse_error(const std::string& yaml, std::initializer_list<const char*> fragments) {
  check_error([&] { parse(yaml); }, fragments);
}

// Every key set to something other than its default.
const std::string kFull = R"(
name: full-run_1.b
seed: 1234
device: cuda:1
precision: fp16
model:
  vocab_size: 512
  d_model: 96
  n_layers: 5
  n_heads: 3
  d_ff: 200
  seq_len: 128
  dropout: 0.25
  positions: rotary
  tie_embeddings: false
  attention: [local:32, "strided:8", fixed:32:4]
  block: 16
  checkpoint_activations: every_2
data:
  path: /data/corpus
  glob: "*.md"
  format: shards
  utf8: bytes
  val_fraction: 0.125
  prefetch: 0
optimizer:
  name: sgd
  lr: 0.02
  betas: [0.8, 0.99]
  eps: 1.0e-6
  weight_decay: 0
  momentum: 0.5
  no_decay: [bias, ln_]
schedule:
  name: linear
  warmup: 7
  min_lr: 1e-5
train:
  steps: 33
  batch_size: 2
  grad_accum: 4
  grad_clip: 0
  eval_every: 0
  eval_batches: 3
  deterministic: true
logging:
  every: 1
  tensorboard: no
checkpoint:
  every: 0
  keep_last: 1
  keep_best: false
distributed:
  bucket_mb: 12.5
  reduce_dtype: bf16
  timeout_s: 45
  world_size: 4
)";

fs::path configs_dir() { return fs::path(__FILE__).parent_path().parent_path() / "configs"; }

}  // namespace

BOOST_AUTO_TEST_CASE(defaults) {
  RunConfig c = parse(kMinimal);
  BOOST_CHECK_EQUAL(c.name, "run");
  BOOST_CHECK_EQUAL(c.seed, 0u);
  BOOST_CHECK(c.device == Device::cpu());
  BOOST_CHECK(c.precision == Precision::fp32);
  BOOST_CHECK_EQUAL(c.model.vocab_size, 256);
  BOOST_CHECK_EQUAL(c.model.d_model, 256);
  BOOST_CHECK_EQUAL(c.model.n_layers, 4);
  BOOST_CHECK_EQUAL(c.model.n_heads, 4);
  BOOST_CHECK_EQUAL(c.model.d_ff, 1024);  // 4 * d_model, resolved
  BOOST_CHECK_EQUAL(c.model.seq_len, 256);
  BOOST_CHECK_EQUAL(c.model.dropout, 0.0);
  BOOST_CHECK(c.model.positions == Positions::learned);
  BOOST_CHECK(c.model.tie_embeddings);
  BOOST_CHECK((c.model.attention == std::vector<std::string>{"dense"}));
  BOOST_CHECK_EQUAL(c.model.block, 64);
  BOOST_CHECK_EQUAL(c.model.checkpoint_every, 0);
  BOOST_CHECK_EQUAL(c.data.path, "corpus.txt");
  BOOST_CHECK_EQUAL(c.data.glob, "");
  BOOST_CHECK(c.data.format == DataFormat::text);
  BOOST_CHECK(c.data.utf8 == Utf8Mode::strict);
  BOOST_CHECK_EQUAL(c.data.val_fraction, 0.05);
  BOOST_CHECK_EQUAL(c.data.prefetch, 4);
  BOOST_CHECK(c.optimizer.name == OptimizerKind::adamw);
  BOOST_CHECK_EQUAL(c.optimizer.lr, 3e-4);
  BOOST_CHECK((c.optimizer.betas == std::vector<double>{0.9, 0.95}));
  BOOST_CHECK_EQUAL(c.optimizer.eps, 1e-8);
  BOOST_CHECK_EQUAL(c.optimizer.weight_decay, 0.1);
  BOOST_CHECK_EQUAL(c.optimizer.momentum, 0.9);
  BOOST_CHECK((c.optimizer.no_decay == std::vector<std::string>{"bias", "norm", "embed"}));
  BOOST_CHECK(c.schedule.name == ScheduleKind::cosine);
  BOOST_CHECK_EQUAL(c.schedule.warmup, 100);
  BOOST_CHECK_EQUAL(c.schedule.min_lr, 0.0);
  BOOST_CHECK_EQUAL(c.train.steps, 1000);
  BOOST_CHECK_EQUAL(c.train.batch_size, 8);
  BOOST_CHECK_EQUAL(c.train.grad_accum, 1);
  BOOST_CHECK_EQUAL(c.train.grad_clip, 1.0);
  BOOST_CHECK_EQUAL(c.train.eval_every, 100);
  BOOST_CHECK_EQUAL(c.train.eval_batches, 10);
  BOOST_CHECK(!c.train.deterministic);
  BOOST_CHECK_EQUAL(c.logging.every, 10);
  BOOST_CHECK(c.logging.tensorboard);
  BOOST_CHECK_EQUAL(c.checkpoint.every, 500);
  BOOST_CHECK_EQUAL(c.checkpoint.keep_last, 3);
  BOOST_CHECK(c.checkpoint.keep_best);

  // The structs' initialisers are the defaults: parsing adds only the path and the resolved d_ff.
  RunConfig want;
  want.data.path = "corpus.txt";
  BOOST_CHECK(c == want);
  // Null values ("key:" with nothing after it) keep the default too.
  BOOST_CHECK(parse(kMinimal + "model:\n  d_model:\n  attention:\nseed: ~\n") == want);
}

BOOST_AUTO_TEST_CASE(every_key_from_yaml) {
  RunConfig c = parse(kFull);
  BOOST_CHECK_EQUAL(c.name, "full-run_1.b");
  BOOST_CHECK_EQUAL(c.seed, 1234u);
  BOOST_CHECK(c.device == Device::cuda(1));
  BOOST_CHECK(c.precision == Precision::fp16);
  BOOST_CHECK_EQUAL(c.model.vocab_size, 512);
  BOOST_CHECK_EQUAL(c.model.d_model, 96);
  BOOST_CHECK_EQUAL(c.model.n_layers, 5);
  BOOST_CHECK_EQUAL(c.model.n_heads, 3);
  BOOST_CHECK_EQUAL(c.model.d_ff, 200);
  BOOST_CHECK_EQUAL(c.model.seq_len, 128);
  BOOST_CHECK_EQUAL(c.model.dropout, 0.25);
  BOOST_CHECK(c.model.positions == Positions::rotary);
  BOOST_CHECK(!c.model.tie_embeddings);
  BOOST_CHECK((c.model.attention == std::vector<std::string>{"local:32", "strided:8", "fixed:32:4"}));
  BOOST_CHECK_EQUAL(c.model.block, 16);
  BOOST_CHECK_EQUAL(c.model.checkpoint_every, 2);
  BOOST_CHECK_EQUAL(c.data.path, "/data/corpus");
  BOOST_CHECK_EQUAL(c.data.glob, "*.md");
  BOOST_CHECK(c.data.format == DataFormat::shards);
  BOOST_CHECK(c.data.utf8 == Utf8Mode::bytes);
  BOOST_CHECK_EQUAL(c.data.val_fraction, 0.125);
  BOOST_CHECK_EQUAL(c.data.prefetch, 0);
  BOOST_CHECK(c.optimizer.name == OptimizerKind::sgd);
  BOOST_CHECK_EQUAL(c.optimizer.lr, 0.02);
  BOOST_CHECK((c.optimizer.betas == std::vector<double>{0.8, 0.99}));
  BOOST_CHECK_EQUAL(c.optimizer.eps, 1e-6);
  BOOST_CHECK_EQUAL(c.optimizer.weight_decay, 0.0);
  BOOST_CHECK_EQUAL(c.optimizer.momentum, 0.5);
  BOOST_CHECK((c.optimizer.no_decay == std::vector<std::string>{"bias", "ln_"}));
  BOOST_CHECK(c.schedule.name == ScheduleKind::linear);
  BOOST_CHECK_EQUAL(c.schedule.warmup, 7);
  BOOST_CHECK_EQUAL(c.schedule.min_lr, 1e-5);
  BOOST_CHECK_EQUAL(c.train.steps, 33);
  BOOST_CHECK_EQUAL(c.train.batch_size, 2);
  BOOST_CHECK_EQUAL(c.train.grad_accum, 4);
  BOOST_CHECK_EQUAL(c.train.grad_clip, 0.0);
  BOOST_CHECK_EQUAL(c.train.eval_every, 0);
  BOOST_CHECK_EQUAL(c.train.eval_batches, 3);
  BOOST_CHECK(c.train.deterministic);
  BOOST_CHECK_EQUAL(c.logging.every, 1);
  BOOST_CHECK(!c.logging.tensorboard);
  BOOST_CHECK_EQUAL(c.checkpoint.every, 0);
  BOOST_CHECK_EQUAL(c.checkpoint.keep_last, 1);
  BOOST_CHECK(!c.checkpoint.keep_best);
  BOOST_CHECK_EQUAL(c.distributed.bucket_mb, 12.5);
  BOOST_CHECK(c.distributed.reduce_dtype == ReduceDType::bf16);
  BOOST_CHECK_EQUAL(c.distributed.timeout_s, 45.0);
  BOOST_CHECK_EQUAL(c.distributed.world_size, 4);
  BOOST_CHECK(precision_dtype(c.precision) == DType::f16);

  // The other spellings of enums and checkpointing, "cuda" alone, a lone pattern, an empty list.
  RunConfig d = parse(kMinimal +
                      "device: cuda\nprecision: bf16\nmodel:\n  positions: sinusoidal\n  attention: local:64|fixed:64:8\n"
                      "  checkpoint_activations: all\noptimizer:\n  no_decay: []\nschedule:\n  name: constant\n");
  BOOST_CHECK(d.device == Device::cuda(0));
  BOOST_CHECK(d.precision == Precision::bf16);
  BOOST_CHECK(d.model.positions == Positions::sinusoidal);
  BOOST_CHECK((d.model.attention == std::vector<std::string>{"local:64|fixed:64:8"}));
  BOOST_CHECK_EQUAL(d.model.checkpoint_every, 1);
  BOOST_CHECK(d.optimizer.no_decay.empty());
  BOOST_CHECK(d.schedule.name == ScheduleKind::constant);
  BOOST_CHECK_EQUAL(parse(kMinimal + "model:\n  checkpoint_activations: none\n").model.checkpoint_every, 0);
}

BOOST_AUTO_TEST_CASE(overrides) {
  RunConfig c = parse(kMinimal + "model:\n  d_model: 64\n",
                      {"model.d_model=128", "train.steps=7", "model.attention=[local:64,strided:16]",
                       "optimizer.betas=[0.5, 0.75]", "name=override", "logging.tensorboard=false",
                       "optimizer.lr=1e-3", "model.d_model=32", "data.glob=a=b*", "data.path=*.txt"});
  BOOST_CHECK_EQUAL(c.model.d_model, 32);  // the later override wins over the earlier and the file
  BOOST_CHECK_EQUAL(c.model.d_ff, 128);    // resolved from the overridden width
  BOOST_CHECK_EQUAL(c.train.steps, 7);
  BOOST_CHECK((c.model.attention == std::vector<std::string>{"local:64", "strided:16"}));
  BOOST_CHECK((c.optimizer.betas == std::vector<double>{0.5, 0.75}));
  BOOST_CHECK_EQUAL(c.name, "override");
  BOOST_CHECK(!c.logging.tensorboard);
  BOOST_CHECK_EQUAL(c.optimizer.lr, 1e-3);
  BOOST_CHECK_EQUAL(c.data.glob, "a=b*");  // only the first '=' separates key from value
  BOOST_CHECK_EQUAL(c.data.path, "*.txt");  // a shell word, not a YAML alias

  // Overrides create sections the file lacks, even into an empty file.
  RunConfig e = parse("", {"data.path=/tmp/x", "checkpoint.keep_best=false"});
  BOOST_CHECK_EQUAL(e.data.path, "/tmp/x");
  BOOST_CHECK(!e.checkpoint.keep_best);
  // A quoted value keeps its commas: one longformer pattern with two global tokens.
  RunConfig g = parse(kMinimal, {"model.attention=[\"longformer:16:1:0,1:causal\"]"});
  BOOST_CHECK((g.model.attention == std::vector<std::string>{"longformer:16:1:0,1:causal"}));
}

BOOST_AUTO_TEST_CASE(to_yaml_round_trips) {
  for (const std::string& yaml : {kMinimal, kFull}) {
    RunConfig c = parse(yaml);
    const std::string text = to_yaml(c);
    RunConfig back = parse_config(text, "resolved.yaml");
    BOOST_CHECK(back == c);
    BOOST_CHECK_EQUAL(to_yaml(back), text);
    // Every key is written, defaults included.
    for (const char* key : {"name:", "seed:", "device:", "precision:", "vocab_size:", "d_ff:", "dropout:",
                            "positions:", "tie_embeddings:", "attention:", "block:", "checkpoint_activations:",
                            "path:", "glob:", "format:", "utf8:", "val_fraction:", "prefetch:", "lr:", "betas:",
                            "eps:", "weight_decay:", "momentum:", "no_decay:", "warmup:", "min_lr:", "steps:",
                            "batch_size:", "grad_accum:", "grad_clip:", "eval_every:", "eval_batches:", "deterministic:",
                            "tensorboard:", "keep_last:", "keep_best:", "bucket_mb:", "reduce_dtype:", "timeout_s:", "zero1:",
                            "world_size:"}) {
      BOOST_CHECK_MESSAGE(text.find(key) != std::string::npos, "to_yaml lacks " << key << ":\n" << text);
    }
  }
  // Random doubles (the kind no literal in this file exercises) survive the decimal text exactly.
  std::mt19937_64 rng(run_seed());
  std::uniform_real_distribution<double> unit(0, 1);
  for (int i = 0; i < 50; ++i) {
    RunConfig r = parse(kMinimal);
    r.optimizer.lr = std::ldexp(unit(rng) + 0.5, -int(rng() % 40));
    r.schedule.min_lr = r.optimizer.lr * unit(rng);
    r.optimizer.betas = {unit(rng), unit(rng)};
    r.optimizer.eps = std::ldexp(unit(rng) + 0.5, -int(rng() % 60));
    r.optimizer.weight_decay = unit(rng) * 1e6;
    r.data.val_fraction = unit(rng);
    r.model.dropout = unit(rng);
    r.train.grad_clip = unit(rng) * 1e-300;
    r.seed = rng();
    BOOST_CHECK_MESSAGE(parse_config(to_yaml(r), "random.yaml") == r, "round trip of\n" << to_yaml(r));
  }
  // Values that YAML would otherwise read as something else, and numbers without a short decimal.
  RunConfig odd = parse(kMinimal);
  odd.name = "yes";
  odd.data.path = "~";
  odd.data.glob = "[x]: #";
  odd.optimizer.lr = 0.1 + 0.2;
  odd.optimizer.eps = 1.0 / 3.0;
  odd.seed = 18446744073709551615ull >> 1;
  odd.model.checkpoint_every = 3;
  odd.optimizer.no_decay = {"true", "1", "a b"};
  const std::string text = to_yaml(odd);
  BOOST_CHECK(parse_config(text, "odd.yaml") == odd);
  BOOST_CHECK(text.find("lr: 0.30000000000000004") != std::string::npos);
  BOOST_CHECK(text.find("every_3") != std::string::npos);
  // Floats always read as floats, in YAML 1.1 readers (PyYAML) too: a '.', a signed exponent.
  const std::string defaults = to_yaml(parse(kMinimal));
  for (const char* line : {"  lr: 0.0003\n", "  eps: 1.0e-08\n", "  dropout: 0.0\n", "  grad_clip: 1.0\n"}) {
    BOOST_CHECK_MESSAGE(defaults.find(line) != std::string::npos, "no '" << line << "' in\n" << defaults);
  }
}

BOOST_AUTO_TEST_CASE(unknown_keys_name_the_nearest) {
  check_parse_error(kMinimal + "model:\n  n_layer: 3\n",
                    {"[config] configs/x.yaml:4: unknown key 'model.n_layer'; did you mean 'model.n_layers'?"});
  check_parse_error(kMinimal + "optimiser:\n  lr: 0.1\n", {"configs/x.yaml:3:", "unknown key 'optimiser'",
                                                           "did you mean 'optimizer'?"});
  check_parse_error(kMinimal + "schedule:\n  warmpu: 3\n", {"'schedule.warmpu'", "did you mean 'schedule.warmup'?"});
  // Nothing close: the valid keys are listed instead.
  check_parse_error(kMinimal + "train:\n  zzzzzzzz: 3\n",
                    {"unknown key 'train.zzzzzzzz'", "valid keys of 'train': steps, batch_size, grad_accum"});
  // A misspelt section is reported before a bad value inside another section.
  check_parse_error(kMinimal + "model:\n  d_model: abc\nmodle: {}\n", {"unknown key 'modle'", "'model'"});
  check_parse_error(kMinimal + "model:\n  d_model: 8\n  d_model: 16\n", {"x.yaml:5", "duplicate key 'model.d_model'"});
}

BOOST_AUTO_TEST_CASE(wrong_types) {
  check_parse_error(kMinimal + "model:\n  d_model: abc\n",
                    {"configs/x.yaml:4: model.d_model: expected an integer, got 'abc'"});
  check_parse_error(kMinimal + "model:\n  d_model: 1.5\n", {"model.d_model: expected an integer, got '1.5'"});
  check_parse_error(kMinimal + "model:\n  d_model: 010x\n", {"model.d_model", "'010x'"});
  check_parse_error(kMinimal + "model:\n  n_heads: [4]\n", {"model.n_heads: expected an integer, got a list"});
  check_parse_error(kMinimal + "model:\n  dropout: lots\n", {"model.dropout: expected a finite number, got 'lots'"});
  check_parse_error(kMinimal + "optimizer:\n  lr: .nan\n", {"optimizer.lr: expected a finite number"});
  check_parse_error(kMinimal + "model:\n  tie_embeddings: maybe\n",
                    {"model.tie_embeddings: expected true or false, got 'maybe'"});
  check_parse_error(kMinimal + "name: {a: 1}\n", {"name: expected a string, got a map"});
  check_parse_error(kMinimal + "model:\n  attention: [dense, [local:4]]\n",
                    {"model.attention[1]: expected a string, got a list"});
  check_parse_error(kMinimal + "optimizer:\n  betas: [0.9, x]\n", {"optimizer.betas[1]: expected a finite number"});
  check_parse_error(kMinimal + "optimizer:\n  betas: 0.9\n", {"optimizer.betas: expected a list of numbers"});
  check_parse_error(kMinimal + "model: 3\n", {"configs/x.yaml:3", "model: expected a section of keys, got '3'"});
  check_parse_error("- a\n- b\n", {"the config: expected a section of keys, got a list"});
  check_parse_error("model: [unclosed\n", {"configs/x.yaml:", "not valid YAML"});
}

BOOST_AUTO_TEST_CASE(bad_values) {
  check_parse_error(kMinimal + "model:\n  d_model: 0\n", {"model.d_model: must be >= 1, got 0"});
  check_parse_error(kMinimal + "model:\n  n_layers: -2\n", {"model.n_layers: must be >= 1, got -2"});
  check_parse_error(kMinimal + "model:\n  vocab_size: 0\n", {"model.vocab_size"});
  check_parse_error(kMinimal + "model:\n  seq_len: 0\n", {"model.seq_len"});
  check_parse_error(kMinimal + "model:\n  n_heads: 0\n", {"model.n_heads"});
  check_parse_error(kMinimal + "model:\n  d_ff: -1\n", {"model.d_ff: must be >= 0"});
  check_parse_error(kMinimal + "model:\n  block: 0\n", {"model.block"});
  check_parse_error(kMinimal + "train:\n  batch_size: 0\n", {"train.batch_size: must be >= 1, got 0"});
  check_parse_error(kMinimal + "train:\n  steps: -1\n", {"train.steps"});
  check_parse_error(kMinimal + "train:\n  grad_accum: 0\n", {"train.grad_accum"});
  check_parse_error(kMinimal + "train:\n  grad_clip: -1\n", {"train.grad_clip"});
  check_parse_error(kMinimal + "train:\n  eval_batches: 0\n", {"train.eval_batches"});
  check_parse_error(kMinimal + "logging:\n  every: 0\n", {"logging.every"});
  check_parse_error(kMinimal + "checkpoint:\n  keep_last: 0\n", {"checkpoint.keep_last"});
  check_parse_error(kMinimal + "checkpoint:\n  every: -5\n", {"checkpoint.every"});
  check_parse_error("data:\n  path: a\n  prefetch: -1\n", {"data.prefetch: must be >= 0"});
  check_parse_error("data:\n  path: a\n  val_fraction: 1\n", {"data.val_fraction: must be in [0, 1), got 1"});
  check_parse_error(kMinimal + "seed: -1\n", {"seed: expected a non-negative integer, got '-1'"});
  check_parse_error(kMinimal + "model:\n  dropout: 1.5\n", {"model.dropout: must be in [0, 1)"});
  check_parse_error(kMinimal + "optimizer:\n  lr: 0\n", {"optimizer.lr: must be > 0"});
  check_parse_error(kMinimal + "optimizer:\n  betas: [0.9]\n", {"optimizer.betas: expected two values"});
  check_parse_error(kMinimal + "optimizer:\n  betas: [0.9, 1.0]\n", {"optimizer.betas: must be in [0, 1)"});
  check_parse_error(kMinimal + "optimizer:\n  eps: 0\n", {"optimizer.eps"});
  check_parse_error(kMinimal + "optimizer:\n  weight_decay: -0.1\n", {"optimizer.weight_decay"});
  check_parse_error(kMinimal + "optimizer:\n  momentum: 1\n", {"optimizer.momentum"});
  check_parse_error(kMinimal + "optimizer:\n  no_decay: [bias, '']\n", {"optimizer.no_decay: holds an empty"});
  check_parse_error(kMinimal + "schedule:\n  warmup: -1\n", {"schedule.warmup"});
  check_parse_error(kMinimal + "schedule:\n  min_lr: 0.1\n", {"schedule.min_lr: 0.1 is above optimizer.lr"});
  check_parse_error(kMinimal + "name: ../escape\n", {"name: '../escape' is not a directory name"});
  check_parse_error(kMinimal + "name: ''\n", {"name: '' is not a directory name"});
  check_parse_error(kMinimal + "distributed:\n  bucket_mb: 0\n", {"distributed.bucket_mb: must be > 0, got 0"});
  check_parse_error(kMinimal + "distributed:\n  timeout_s: 0.5\n", {"distributed.timeout_s: must be >= 1 second"});
  check_parse_error(kMinimal + "distributed:\n  world_size: 0\n", {"distributed.world_size: must be >= 1"});

  check_parse_error(kMinimal + "model:\n  d_model: 100\n  n_heads: 3\n",
                    {"x.yaml:5: model.n_heads: d_model 100 is not divisible by n_heads 3"});
  check_parse_error(kMinimal + "model:\n  d_model: 12\n  n_heads: 4\n  positions: rotary\n",
                    {"model.positions: rotary", "even head dimension", "= 3"});
  check_parse_error(kMinimal + "model:\n  checkpoint_activations: every_0\n",
                    {"model.checkpoint_activations: unknown value 'every_0'", "none, all or every_N"});
}

BOOST_AUTO_TEST_CASE(enums_list_their_values) {
  check_parse_error(kMinimal + "precision: fp8\n", {"precision: unknown value 'fp8' (expected fp32, bf16 or fp16)"});
  check_parse_error(kMinimal + "model:\n  positions: rope\n",
                    {"model.positions: unknown value 'rope' (expected learned, sinusoidal or rotary)"});
  check_parse_error("data:\n  path: a\n  format: csv\n", {"data.format: unknown value 'csv' (expected text or shards)"});
  check_parse_error("data:\n  path: a\n  utf8: lax\n", {"data.utf8: unknown value 'lax' (expected strict or bytes)"});
  check_parse_error(kMinimal + "optimizer:\n  name: adam\n", {"optimizer.name: unknown value 'adam' (expected adamw or sgd)"});
  check_parse_error(kMinimal + "distributed:\n  reduce_dtype: f16\n",
                    {"distributed.reduce_dtype: unknown value 'f16' (expected f32 or bf16)"});
  check_parse_error(kMinimal + "schedule:\n  name: step\n",
                    {"schedule.name: unknown value 'step' (expected cosine, linear or constant)"});
  check_parse_error(kMinimal + "device: gpu\n", {"configs/x.yaml:3: device: unknown device 'gpu'", "cuda:N"});
  check_parse_error(kMinimal + "precision: fp16\n",
                    {"configs/x.yaml:3: precision: 'fp16' needs a cuda device", "device is 'cpu'"});
  check_error([] { parse(kMinimal, {"precision=fp16"}); }, {"override 'precision=fp16'", "'fp16' needs a cuda"});
}

BOOST_AUTO_TEST_CASE(data_path_is_required) {
  check_parse_error("model:\n  d_model: 64\n", {"configs/x.yaml", "missing required key 'data.path'"});
  check_parse_error("data:\n  glob: '*.txt'\n", {"missing required key 'data.path'"});
  check_parse_error("data:\n  path:\n", {"missing required key 'data.path'"});
  check_parse_error("data:\n  path: ''\n", {"configs/x.yaml:2: data.path: must not be empty"});
  check_parse_error("", {"missing required key 'data.path'"});
  // Its existence is the trainer's to check.
  BOOST_CHECK_EQUAL(parse("data:\n  path: /no/such/dir\n").data.path, "/no/such/dir");
}

BOOST_AUTO_TEST_CASE(attention_patterns_are_checked) {
  check_parse_error(kMinimal + "model:\n  attention: [dense, 'loca:64']\n",
                    {"configs/x.yaml:4: model.attention[1]: invalid pattern 'loca:64'", "unknown pattern"});
  check_parse_error(kMinimal + "model:\n  attention:\n    - local:64\n    - strided\n",
                    {"x.yaml:6: model.attention[1]: invalid pattern 'strided'", "strided:STRIDE"});
  check_parse_error(kMinimal + "model:\n  attention: [local:0]\n", {"model.attention[0]", "window must be positive"});
  check_parse_error(kMinimal + "model:\n  attention: [local:x]\n", {"model.attention[0]", "'local:x'"});
  check_parse_error(kMinimal + "model:\n  attention: [fixed:8:9]\n", {"model.attention[0]", "summary width 9"});
  // Only a sequence length can refute a window longer than it.
  check_parse_error(kMinimal + "model:\n  seq_len: 64\n  attention: [local:128]\n",
                    {"model.attention[0]", "larger than the sequence length 64"});
  check_parse_error(kMinimal + "model:\n  attention: [bigbird:1:1:2:7]\n",
                    {"model.attention[0]: pattern 'bigbird:1:1:2:7' is bidirectional", "':causal'"});
  check_parse_error(kMinimal + "model:\n  attention: [\"longformer:64:1:0\"]\n", {"model.attention[0]", "bidirectional"});
  check_parse_error(kMinimal + "model:\n  attention: [dense, local:8:bidirectional]\n",
                    {"model.attention[1]", "is bidirectional", "drop ':bidirectional'"});
  check_parse_error(kMinimal + "model:\n  attention: []\n", {"model.attention: needs at least one pattern"});
  check_parse_error(kMinimal + "model:\n  attention: [\"bitmap:/no/such/bitmap\"]\n",
                    {"model.attention[0]", "cannot open '/no/such/bitmap'"});
  check_error([] { parse(kMinimal, {"model.attention=[dense,strided:0]"}); },
              {"override 'model.attention=[dense,strided:0]'", "model.attention[1]", "strided:0"});
  // Every spelling from nn::parse_pattern that is causal is accepted.
  RunConfig c = parse(kMinimal + "model:\n  attention: [dense, local:128, strided:16, fixed:64:8, bigbird:1:1:2:7:causal,"
                                 " longformer:64:1:0:causal, topk:32:128, local:64+strided:16, local:64|fixed:64:8]\n");
  BOOST_CHECK_EQUAL(c.model.attention.size(), 9u);
}

BOOST_AUTO_TEST_CASE(override_errors) {
  check_error([] { parse(kMinimal, {"model.n_layer=3"}); },
              {"[config] configs/x.yaml: override 'model.n_layer=3': unknown key 'model.n_layer'",
               "did you mean 'model.n_layers'?"});
  check_error([] { parse(kMinimal, {"modle.d_model=3"}); }, {"override 'modle.d_model=3'", "unknown key 'modle'"});
  check_error([] { parse(kMinimal, {"model.d_model=abc"}); },
              {"override 'model.d_model=abc': model.d_model: expected an integer, got 'abc'"});
  check_error([] { parse(kMinimal, {"model.d_model"}); },
              {"configs/x.yaml: malformed override 'model.d_model'", "key=value"});
  check_error([] { parse(kMinimal, {"=3"}); }, {"malformed override '=3'"});
  check_error([] { parse(kMinimal, {"model..d_model=3"}); }, {"malformed override 'model..d_model=3'"});
  check_error([] { parse(kMinimal, {"model.attention=[local:64"}); },
              {"malformed override 'model.attention=[local:64'", "not valid YAML"});
  check_error([] { parse(kMinimal, {"data.path.x=3"}); }, {"override 'data.path.x=3'", "'data.path' is a value"});
  check_error([] { parse(kMinimal, {"data.path="}); }, {"override 'data.path='", "missing required key 'data.path'"});
  // A bad value in the file is still reported at its line when the overrides are fine.
  check_error([] { parse(kMinimal + "train:\n  steps: x\n", {"model.d_model=64"}); },
              {"configs/x.yaml:4: train.steps"});
}

BOOST_AUTO_TEST_CASE(load_config_reads_files) {
  TempDir dir("config");
  const fs::path p = dir.write("run.yaml", kFull);
  RunConfig c = load_config(p.string(), {"train.steps=5"});
  RunConfig want = parse(kFull);
  want.train.steps = 5;
  BOOST_CHECK(c == want);
  const fs::path bad = dir.write("bad.yaml", kMinimal + "model:\n  n_layer: 2\n");
  check_error([&] { load_config(bad.string()); }, {bad.string().c_str(), ":4: unknown key 'model.n_layer'"});
  const std::string missing = (dir.path / "missing.yaml").string();
  check_error([&] { load_config(missing); }, {"cannot open config file", missing.c_str()});
  // The resolved config written out loads back as the same run.
  const fs::path resolved = dir.write("resolved.yaml", to_yaml(c));
  BOOST_CHECK(load_config(resolved.string()) == c);
}

BOOST_AUTO_TEST_CASE(shipped_configs_are_valid) {
  const std::vector<std::string> expected{"quickstart", "local", "strided", "fixed", "bigbird",
                                          "longformer", "topk", "alternating", "per_head"};
  size_t n = 0;
  for (const auto& entry : fs::directory_iterator(configs_dir())) {
    if (entry.path().extension() != ".yaml") continue;
    BOOST_TEST_CONTEXT(entry.path().string()) {
      RunConfig c;
      BOOST_CHECK_NO_THROW(c = load_config(entry.path().string()));
      BOOST_CHECK_EQUAL(c.name, entry.path().stem().string());
      BOOST_CHECK(parse_config(to_yaml(c), "resolved") == c);
      BOOST_CHECK(!c.data.path.empty());
      ++n;
    }
  }
  BOOST_CHECK_GE(n, expected.size());
  for (const std::string& name : expected) BOOST_CHECK(fs::exists(configs_dir() / (name + ".yaml")));
  RunConfig alt = load_config((configs_dir() / "alternating.yaml").string());
  BOOST_CHECK((alt.model.attention == std::vector<std::string>{"local:128", "strided:32"}));
  RunConfig quick = load_config((configs_dir() / "quickstart.yaml").string());
  BOOST_CHECK_EQUAL(quick.data.path, "/usr/share/vim/vim90/doc");
  BOOST_CHECK(quick.device == Device::cpu());
}
