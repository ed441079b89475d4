#include "data/sampler.h"

#include <vector>

#include "core/error.h"
#include "core/random.h"

namespace sparta::data {

std::map<std::string, int64_t> SamplerState::to_map(const std::string& prefix) const {
  return {{prefix + "epoch", epoch}, {prefix + "index", index}};
}

SamplerState SamplerState::from_map(const std::map<std::string, int64_t>& values, const std::string& prefix) {
  auto get = [&](const char* key) {
    auto it = values.find(prefix + key);
    SPARTA_CHECK(it != values.end(), "sampler", "the data cursor lacks '", prefix + key, "'");
    SPARTA_CHECK(it->second >= 0, "sampler", "the data cursor has '", prefix + key, "' = ", it->second,
                 "; it must be >= 0");
    return it->second;
  };
  return {get("epoch"), get("index")};
}

namespace {

// Four rounds make a Feistel network a pseudo-random permutation (Luby-Rackoff); six leave margin
// for the tiny domains of small datasets, and cost nothing next to reading a window.
constexpr uint32_t kFeistelRounds = 6;
// Mixed into the seed so that the window order is not correlated with other Philox streams (such
// as weight initialisation) that a run keys with the same seed.
constexpr uint64_t kWindowOrderTag = 0x77696E646F77ull;  // "window"

uint64_t feistel(uint64_t x, int half_bits, uint64_t key, uint64_t epoch) {
  const uint64_t mask = (uint64_t(1) << half_bits) - 1;
  uint64_t left = x >> half_bits, right = x & mask;
  for (uint32_t round = 0; round < kFeistelRounds; ++round) {
    const Philox4 f = philox4x32(key, right | uint64_t(round) << 32, epoch);
    const uint64_t mixed = (left ^ (uint64_t(f.v[0]) | uint64_t(f.v[1]) << 32)) & mask;
    left = right;
    right = mixed;
  }
  return left << half_bits | right;
}

}  // namespace

WindowSampler::WindowSampler(TokenSourcePtr source, SamplerOptions options)
    : source_(std::move(source)), options_(options) {
  SPARTA_CHECK(source_ != nullptr, "sampler", "no source");
  SPARTA_CHECK(options_.batch > 0, "sampler", "batch must be positive, got ", options_.batch);
  SPARTA_CHECK(options_.seq_len > 0, "sampler", "seq_len must be positive, got ", options_.seq_len);
  SPARTA_CHECK(options_.world >= 1 && options_.rank >= 0 && options_.rank < options_.world, "sampler", "rank ",
               options_.rank, " of a world of ", options_.world);
  const int64_t need = options_.seq_len + 1;
  SPARTA_CHECK(source_->size() >= need, "sampler", source_->describe(), " has ", source_->size(),
               " tokens; a window of seq_len ", options_.seq_len, " needs at least ", need);
  windows_ = (source_->size() - 1) / options_.seq_len;
  // The smallest even bit count 2h with 4^h >= windows_: at most 4x too large, so the walk back
  // into range takes fewer than 4 steps on average.
  while (half_bits_ < 31 && (uint64_t(1) << (2 * half_bits_)) < uint64_t(windows_)) ++half_bits_;
}

int64_t WindowSampler::window_at(int64_t epoch, int64_t index) const {
  SPARTA_CHECK(epoch >= 0 && index >= 0 && index < windows_, "sampler", "position ", index, " of epoch ", epoch,
               " is outside the ", windows_, " windows of ", source_->describe());
  if (!options_.shuffle) return index;
  // Cycle walking: a permutation of the larger domain, applied until it lands in range, is a
  // permutation of [0, windows_); it terminates because index's own cycle returns into range.
  uint64_t x = uint64_t(index);
  do {
    x = feistel(x, half_bits_, options_.seed ^ kWindowOrderTag, uint64_t(epoch));
  } while (x >= uint64_t(windows_));
  return int64_t(x);
}

void WindowSampler::set_state(const SamplerState& state) {
  SPARTA_CHECK(state.epoch >= 0 && state.index >= 0 && state.index < windows_, "sampler", "cursor {epoch ",
               state.epoch, ", index ", state.index, "} does not fit the ", windows_, " windows of ",
               source_->describe(), " (did the dataset or seq_len change since the checkpoint?)");
  state_ = state;
}

Batch WindowSampler::next() {
  const int64_t B = options_.batch, T = options_.seq_len;
  Batch batch{Tensor::empty({B, T}, DType::i64), Tensor::empty({B, T}, DType::i64)};
  int64_t* inputs = batch.inputs.data<int64_t>();
  int64_t* targets = batch.targets.data<int64_t>();
  std::vector<uint16_t> window(size_t(T + 1));
  SamplerState s = state_;
  auto skip = [&](int64_t n) {
    s.index += n;
    s.epoch += s.index / windows_;
    s.index %= windows_;
  };
  skip(options_.rank * B);
  for (int64_t b = 0; b < B; ++b) {
    source_->read(window_at(s.epoch, s.index) * T, T + 1, window.data());
    for (int64_t t = 0; t < T; ++t) {
      inputs[b * T + t] = window[size_t(t)];
      targets[b * T + t] = window[size_t(t + 1)];
    }
    if (++s.index == windows_) {
      ++s.epoch;
      s.index = 0;
    }
  }
  skip((options_.world - 1 - options_.rank) * B);
  state_ = s;
  return batch;
}

}  // namespace sparta::data
