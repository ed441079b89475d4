#pragma once
// Exported weights for inference: <dir>/model.safetensors (loadable by the safetensors readers of
// PyTorch and Hugging Face) and <dir>/config.json (the model's hyperparameters and attention
// patterns), and the model rebuilt from either an export or a run's checkpoint.
#include <memory>
#include <string>

#include "nn/transformer.h"
#include "train/config.h"

namespace sparta::train {

// Writes the export of a run's checkpoint (the latest unless `checkpoint` names one); returns the
// export directory (default <run_dir>/export).
std::string export_run(const std::string& run_dir, const std::string& checkpoint = "", const std::string& out = "");

struct LoadedModel {
  std::unique_ptr<Generator> gen;  // the model keeps a pointer to it
  std::unique_ptr<nn::SparseTransformer> model;
};
// From an export directory (config.json + model.safetensors) or a run directory (its latest
// checkpoint); errors name the files.
LoadedModel load_model(const std::string& dir);

}  // namespace sparta::train
