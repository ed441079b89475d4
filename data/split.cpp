#include "data/split.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace sparta::data {

namespace {

class SliceSource : public TokenSource {
 public:
  SliceSource(TokenSourcePtr parent, int64_t begin, int64_t end, std::string name)
      : parent_(std::move(parent)), begin_(begin), end_(end), name_(std::move(name)) {}
  int64_t size() const override { return end_ - begin_; }
  void read(int64_t offset, int64_t n, uint16_t* out) const override {
    // Checked here, not only by the parent: a read past the end of the train split must not
    // quietly return validation tokens.
    SPARTA_CHECK(offset >= 0 && n >= 0 && offset + n <= size(), "TokenSource", "tokens [", offset, ", ", offset + n,
                 ") are outside the ", size(), " tokens of ", describe());
    parent_->read(begin_ + offset, n, out);
  }
  std::string describe() const override {
    return name_ + " (tokens " + std::to_string(begin_) + ".." + std::to_string(end_) + ") of " + parent_->describe();
  }
  int64_t vocab_size() const override { return parent_->vocab_size(); }

 private:
  TokenSourcePtr parent_;
  int64_t begin_, end_;
  std::string name_;
};

}  // namespace

TokenSourcePtr slice_source(TokenSourcePtr source, int64_t begin, int64_t end, const std::string& name) {
  SPARTA_CHECK(source != nullptr, "slice", "no source");
  SPARTA_CHECK(0 <= begin && begin <= end && end <= source->size(), "slice", "tokens [", begin, ", ", end,
               ") are not inside the ", source->size(), " tokens of ", source->describe());
  return std::make_shared<SliceSource>(std::move(source), begin, end, name);
}

Split split_tail(TokenSourcePtr source, double val_fraction) {
  SPARTA_CHECK(source != nullptr, "split", "no source");
  SPARTA_CHECK(val_fraction >= 0 && val_fraction < 1, "split", "val_fraction must be in [0, 1), got ", val_fraction,
               " for ", source->describe());
  const int64_t size = source->size();
  const int64_t n_val = std::min(size, int64_t(std::llround(double(size) * val_fraction)));
  return {slice_source(source, 0, size - n_val, "train split"),
          slice_source(source, size - n_val, size, "validation split")};
}

}  // namespace sparta::data
