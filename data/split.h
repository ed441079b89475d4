#pragma once
// The deterministic train/validation split of a token stream: validation is the last
// `val_fraction` of the tokens, train everything before it.
//
// Why the tail and not every k-th chunk: both splits stay contiguous, so every window the sampler
// draws is genuine running text (an interleaved split would join the end of one train chunk to
// the start of the next, across the held-out chunk between them), the two splits share a single
// boundary instead of one per chunk (only the windows next to that boundary see context from the
// other side), and the split depends on nothing but the stream's length and the fraction. This
// is also what GPT-2 style recipes do (nanoGPT keeps the last 10%). The price: in a directory
// sorted by name validation comes from the last files; shuffle or interleave the corpus when it
// is written if they differ from the rest.
#include "data/token_source.h"

namespace sparta::data {

struct Split {
  TokenSourcePtr train;       // tokens [0, size - n_val)
  TokenSourcePtr validation;  // tokens [size - n_val, size), n_val = round(size * val_fraction)
};

// val_fraction in [0, 1). The splits are views: they read through to `source`.
Split split_tail(TokenSourcePtr source, double val_fraction);

// Tokens [begin, end) of a source as a source of their own, named `name` ("train split").
TokenSourcePtr slice_source(TokenSourcePtr source, int64_t begin, int64_t end, const std::string& name);

}  // namespace sparta::data
