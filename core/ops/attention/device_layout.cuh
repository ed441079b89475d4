#pragma once
// The device copy of a BlockLayout (core/attention/block_layout.h), shared by the CUDA attention
// kernels: the simple one (attention_cuda.cu) and the tensor-core one (attention_flash_*.cu).
//
// Every array of every segment lives in one device allocation, made on first use of a layout
// object and cached while that object lives (attention_cuda.cu defines the cache).
#include <memory>
#include <vector>

#include "core/ops/attention/attention.h"

namespace sparta::cuda {

// One segment of a layout as device pointers into its cached copy (null: an empty array, e.g. the
// identity order for q_pos/k_pos/q_index/k_index).
struct Segment {
  int64_t seq_len, block_q, block_k, n_qblocks, n_kblocks, n_keys;
  int n_layouts;
  // Over every layout's key blocks: the longest CSC list and the sum of their lengths, counted on
  // the host (the backward splits a long list over several CTAs when it would hold up a launch).
  int64_t max_col_entries, total_col_entries;
  const int64_t* row_ptr;
  const int32_t* col_idx;
  const uint8_t* kind;
  const int64_t* col_ptr;
  const int32_t* row_idx;
  const int64_t* csc_entry;
  const int64_t* mask_offset;
  const uint64_t* mask_bits;
  // kind and mask_offset of CSC position c's entry (csc_entry[c]): the backward reads a step's
  // list fields at one index, with no load waiting on another.
  const uint8_t* csc_kind;
  const int64_t* csc_moff;
  const int64_t *q_pos, *k_pos, *q_index, *k_index;
  // attn::residue_stride: > 0 when q_pos and k_pos are both the residue-class order of this stride,
  // which the tensor-core kernels compute instead of reading (attn::ResidueOrder).
  int64_t residue_stride;
};


struct DeviceLayout {
  Tensor blob;
  const Segment* segments = nullptr;  // device table of n_segments
  int n_segments = 0;
  // The same table on the host (its pointers point into blob): kernels that take one segment by
  // value read it from here.
  std::vector<Segment> host_segments;
};

// The cached device copy of L on `dev` (uploaded on the compute stream on first use).
std::shared_ptr<const DeviceLayout> device_layout(const LayoutPtr& L, Device dev);

}  // namespace sparta::cuda
