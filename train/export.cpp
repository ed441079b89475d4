#include "train/export.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "train/atomic_file.h"
#include "train/checkpoint.h"
#include "train/checkpoint_manager.h"
#include "train/safetensors.h"
#include "train/trainer.h"

namespace sparta::train {
namespace fs = std::filesystem;

namespace {

nlohmann::json model_json(const ModelConfig& m) {
  return {{"architecture", "sparta.SparseTransformer"},
          {"vocab_size", m.vocab_size},
          {"d_model", m.d_model},
          {"n_layers", m.n_layers},
          {"n_heads", m.n_heads},
          {"d_ff", m.resolved_d_ff()},
          {"seq_len", m.seq_len},
          {"positions", enum_name(m.positions)},
          {"tie_embeddings", m.tie_embeddings},
          {"attention", m.attention},
          {"block", m.block},
          {"tokenizer", "bytes"}};
}

ModelConfig model_from_json(const nlohmann::json& j, const std::string& path) {
  try {
    ModelConfig m;
    m.vocab_size = j.at("vocab_size").get<int64_t>();
    m.d_model = j.at("d_model").get<int64_t>();
    m.n_layers = j.at("n_layers").get<int64_t>();
    m.n_heads = j.at("n_heads").get<int64_t>();
    m.d_ff = j.at("d_ff").get<int64_t>();
    m.seq_len = j.at("seq_len").get<int64_t>();
    const std::string pos = j.at("positions").get<std::string>();
    m.positions = pos == "rotary" ? Positions::rotary : pos == "sinusoidal" ? Positions::sinusoidal : Positions::learned;
    m.tie_embeddings = j.at("tie_embeddings").get<bool>();
    m.attention = j.at("attention").get<std::vector<std::string>>();
    m.block = j.at("block").get<int64_t>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    SPARTA_FAIL("export", path, ": ", e.what());
  }
}

LoadedModel build(const ModelConfig& m) {
  RunConfig rc;
  rc.model = m;
  LoadedModel out;
  out.gen = std::make_unique<Generator>(0);
  out.model = std::make_unique<nn::SparseTransformer>(transformer_config(rc), out.gen.get());
  out.model->eval();
  return out;
}

}  // namespace

std::string export_run(const std::string& run_dir, const std::string& checkpoint, const std::string& out) {
  std::string path = checkpoint;
  if (path.empty()) {
    RunConfig rc = load_run_config(run_dir);
    CheckpointManager m((fs::path(run_dir) / "checkpoints").string(), int(rc.checkpoint.keep_last),
                        rc.checkpoint.keep_best);
    auto latest = m.latest();
    SPARTA_CHECK(latest.has_value(), "export", "'", run_dir, "' has no checkpoint to export");
    path = *latest;
  }
  CheckpointState st = load_checkpoint(path);
  RunConfig rc = parse_config(st.config_yaml, path + " (config attribute)");
  const std::string dir = out.empty() ? (fs::path(run_dir) / "export").string() : out;
  fs::create_directories(dir);
  write_safetensors((fs::path(dir) / "model.safetensors").string(), st.model,
                    {{"format", "pt"}, {"step", std::to_string(st.step)}, {"source", path}});
  write_file_atomically((fs::path(dir) / "config.json").string(), model_json(rc.model).dump(2) + "\n");
  return dir;
}

LoadedModel load_model(const std::string& dir) {
  const fs::path config_json = fs::path(dir) / "config.json";
  if (fs::exists(config_json)) {
    std::ifstream in(config_json);
    nlohmann::json j;
    try {
      in >> j;
    } catch (const nlohmann::json::exception& e) {
      SPARTA_FAIL("export", config_json.string(), ": ", e.what());
    }
    LoadedModel lm = build(model_from_json(j, config_json.string()));
    Safetensors st = read_safetensors((fs::path(dir) / "model.safetensors").string());
    check_compatible(CheckpointState{st.tensors, {}, 0, {}, {}, ""}, lm.model->named_parameters());
    lm.model->load_state_dict(std::map<std::string, Tensor>(st.tensors.begin(), st.tensors.end()));
    return lm;
  }
  RunConfig rc = load_run_config(dir);
  CheckpointManager m((fs::path(dir) / "checkpoints").string(), int(rc.checkpoint.keep_last), rc.checkpoint.keep_best);
  auto latest = m.latest();
  SPARTA_CHECK(latest.has_value(), "model", "'", dir, "' is neither an export (no config.json) nor a run with a checkpoint");
  CheckpointState st = load_checkpoint(*latest);
  LoadedModel lm = build(rc.model);
  check_compatible(st, lm.model->named_parameters());
  lm.model->load_state_dict(std::map<std::string, Tensor>(st.model.begin(), st.model.end()));
  return lm;
}

}  // namespace sparta::train
