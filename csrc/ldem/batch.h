// Coding a batch of tensors in one call: the items are spread over the threads.
//
// Each item is coded by one thread (its segments in turn), so a batch of many small
// tensors keeps every thread busy. Only when there are fewer items than threads and
// every item has more segments than there are items are the items coded one after
// another, each over all threads. Either way the bytes of each item are exactly those
// of encode() (coder.h) for that item alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ldem/coder.h"

namespace ldem {

// One tensor of a batch and its model map.
struct BatchItem {
  const int32_t* symbols = nullptr;  // layout.num_symbols() values (decode: the output)
  const int32_t* models = nullptr;   // layout.num_blocks() model indices
  Layout layout;
};

// One stream of a batch to decode into `out`.
struct BatchStream {
  const uint8_t* data = nullptr;
  size_t size = 0;
  const int32_t* models = nullptr;
  Layout layout;
  int32_t* out = nullptr;
};

// Raised for a failure of one item: its index and the item's own message.
struct BatchFailure {
  int64_t index = 0;
  bool decode = false;  // the item's stream failed to decode (else: an argument was bad)
  std::string message;
};

// encode() of every item with the same dictionary, checksum flag and parameters.
// REQUIRES: check_layout passed for every item.
// REQUIRES: each item's symbols has layout.num_symbols() entries.
// Throws ArgumentError unless check_params(params) passes; BatchFailure (decode false)
// for the lowest-numbered item whose model map changed to an invalid index while read.
// threads <= 0 means all hardware threads. Output is independent of threads.
std::vector<std::vector<uint8_t>> encode_batch(const std::vector<BatchItem>& items, const ModelSet& dict,
                                               int threads, bool checksum, const StreamParams& params = {});

// decode() of every stream with the same dictionary.
// REQUIRES: check_layout passed for every stream.
// REQUIRES: each stream's out has layout.num_symbols() entries, and no two outs overlap.
// Throws BatchFailure for the lowest-numbered stream that fails (decode true for a
// DecodeFailure, false for an ArgumentError); other outputs are then unspecified.
// Reads only each stream's own bytes, as decode() does.
void decode_batch(const std::vector<BatchStream>& streams, const ModelSet& dict, int threads);

}  // namespace ldem
