#pragma once
// Weight export in the safetensors format (Hugging Face; loadable by PyTorch and transformers):
//
//   8 bytes   N, little-endian u64
//   N bytes   JSON header {"__metadata__": {str: str}, "<name>": {"dtype": "F32", "shape": [2, 3],
//             "data_offsets": [begin, end]}, ...}, padded with spaces so the data starts 8-aligned
//   rest      the tensors' raw little-endian bytes, contiguous, in header order; offsets count
//             from the start of this section
//
// Written atomically (see train/atomic_file.h). Reading validates everything before trusting it:
// errors name the file and the tensor for truncated data, bad JSON, unknown dtypes, offsets out of
// range, overlapping or leaving holes, and byte counts that disagree with dtype and shape.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace sparta::train {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

struct Safetensors {
  NamedTensors tensors;  // in header order, fresh contiguous CPU tensors
  std::map<std::string, std::string> metadata;
};

// Tensors may have any strides and live on any device. Names must be unique and non-empty, and
// "__metadata__" is reserved. The "__metadata__" entry is written only when metadata is not empty.
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
Safetensors read_safetensors(const std::string& path);

// "F32", "BF16", ... and back (throws naming the unknown string).
const char* safetensors_dtype(DType dtype);
DType dtype_from_safetensors(const std::string& name);

}  // namespace sparta::train
