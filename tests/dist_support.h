#pragma once
// What the data-parallel tests (test_distributed over MPI, test_cuda_distributed over NCCL) share:
// the corpus their runs read, the model a run checkpointed at a step, and how far two runs'
// parameters are apart.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/ops.h"
#include "train/checkpoint.h"

namespace sparta::test {

// `n_words` words from a fixed generator (the same text on every machine and in every rank).
inline void write_dist_corpus(const std::filesystem::path& file, int n_words) {
  std::ofstream text(file);
  uint64_t x = 12345;
  const char* words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "dogs ", "run\n", "far ", "away, "};
  for (int i = 0; i < n_words; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    text << words[(x >> 33) % 10];
  }
}

// <runs>/<run>/checkpoints/step_<step>.h5, loaded.
inline train::CheckpointState load_run_checkpoint(const std::filesystem::path& runs, const std::string& run, int step) {
  char file[32];
  std::snprintf(file, sizeof file, "step_%08d.h5", step);
  return train::load_checkpoint((runs / run / "checkpoints" / file).string());
}

// The model parameters of that checkpoint.
inline train::NamedTensors checkpoint_params(const std::filesystem::path& runs, const std::string& run, int step) {
  return load_run_checkpoint(runs, run, step).model;
}

// Its optimizer state, sorted by name.
inline train::NamedTensors checkpoint_optimizer(const std::filesystem::path& runs, const std::string& run, int step) {
  train::NamedTensors s = load_run_checkpoint(runs, run, step).optimizer;
  std::sort(s.begin(), s.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return s;
}

// The largest |a - b| over all parameters (the same names in the same order).
inline double max_difference(const train::NamedTensors& a, const train::NamedTensors& b) {
  BOOST_TEST_REQUIRE(a.size() == b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    BOOST_TEST_REQUIRE(a[i].first == b[i].first);
    worst = std::max(worst, max(abs(cast(a[i].second, DType::f64) - cast(b[i].second, DType::f64))).item<double>());
  }
  return worst;
}

}  // namespace sparta::test
