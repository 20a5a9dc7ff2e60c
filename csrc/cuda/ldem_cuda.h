// ldem's CUDA engine: a torch-free API over raw device pointers and a cudaStream_t.
//
// The GPU writes and reads the stream format of ldem/format.h, byte for byte:
// the same symbols, model map, dictionary and StreamParams give the same bytes on
// either side, and either side decodes the other's streams. One warp codes one
// segment; its lanes are the segment's interleaved rANS states (lane j of a segment
// [a, b) codes the symbols a + j, a + j + lanes, ...). The encoder walks a segment
// backwards in groups of `lanes` symbols and the decoder forwards; a warp ballot and
// popcount prefix sums put the words each lane emits or reads at exactly the
// position the sequential coder uses. Escapes (rare) keep the order too: the
// encoder gives every lane up to four words and places them with a suffix sum, the
// decoder replays a group that holds an escape one lane at a time.
//
// Every entry point is asynchronous on `stream`: it validates its host-side
// arguments (throwing ldem::ArgumentError), enqueues kernels and returns. Results
// that only the device knows (stream sizes, corruption) land in device arrays the
// caller reads after synchronising: `status[i] == kStatusOk` for a good item, else
// a code from `Status` (see status_message()). Nothing is allocated per call: the
// caller passes a scratch arena of at least the size the matching *_scratch_bytes()
// query returns (any device allocation, 256-byte aligned).
//
// Decoding is safe on hostile input: kernels read only [data, data + size) of each
// stream, write only their own outputs, every loop is bounded by the shape, and a
// corrupt stream sets its status instead of producing an error elsewhere.
//
// REQUIRES (all entry points): the current CUDA device is the one the pointers and
// the DeviceDictionary live on; device pointers stay valid until the stream has run
// the enqueued work.
//
// The plain types (items, statuses, tables, the stream plan) are in kernels.h, which
// needs no CUDA headers; this header adds the entry points that take a cudaStream_t.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "cuda/kernels.h"

namespace ldem::cuda {

// Throws std::runtime_error naming `what` if err != cudaSuccess.
void check_cuda(cudaError_t err, const char* what);

// Number of CUDA devices; 0 (never an exception) without a driver or GPU.
int device_count();

class DeviceDictionary {
 public:
  // Uploads the tables to the current device (synchronises `stream` once).
  // REQUIRES: a CUDA device is current. Throws ArgumentError / std::runtime_error.
  DeviceDictionary(const ModelSet& models, cudaStream_t stream);
  explicit DeviceDictionary(const Dictionary& dict, cudaStream_t stream)
      : DeviceDictionary(ModelSet(dict), stream) {}
  ~DeviceDictionary();
  DeviceDictionary(const DeviceDictionary&) = delete;
  DeviceDictionary& operator=(const DeviceDictionary&) = delete;

  int device() const { return device_; }
  int precision() const { return layout_.precision; }
  uint32_t num_models() const { return layout_.K; }
  size_t bytes() const { return layout_.bytes; }
  bool decode_tables_staged() const { return layout_.decode_bytes <= kStageBytes; }
  const DictView& view() const { return view_; }
  const TableLayout& layout() const { return layout_; }

 private:
  int device_ = -1;
  void* blob_ = nullptr;
  TableLayout layout_;
  DictView view_;
};

// --- encode ----------------------------------------------------------------------
size_t encode_scratch_bytes(const EncodeItem* items, int count, bool checksum);

// Encodes every item into its own stream (the CPU's bytes for the same params).
// Writes sizes[i] (bytes of item i's stream) and status[i] (kStatusOk unless a
// model index is out of range).
// REQUIRES: check_encode_items passes.
// REQUIRES: sizes and status are device arrays of `count` uint64.
// REQUIRES: scratch holds encode_scratch_bytes() bytes.
void encode_batch(const DeviceDictionary& dict, const EncodeItem* items, int count, bool checksum,
                  uint64_t* sizes, uint64_t* status, void* scratch, size_t scratch_bytes,
                  cudaStream_t stream);

// Exact coded size of each item in 1/256 bit (sum of ceil(256 * cost) per symbol,
// escapes with their payload) for plan_stream(). Integer sums: deterministic.
// REQUIRES: items' symbols/models/layout valid.
// REQUIRES: bits and status are device arrays of `count` uint64.
size_t estimate_scratch_bytes(const EncodeItem* items, int count);
void estimate_coded_bits(const DeviceDictionary& dict, const EncodeItem* items, int count,
                         uint64_t* bits, uint64_t* status, void* scratch, size_t scratch_bytes,
                         cudaStream_t stream);

// --- decode ----------------------------------------------------------------------
size_t decode_scratch_bytes(const DecodeItem* items, int count);

// Decodes every item; status[i] tells whether item i decoded (a corrupt, truncated
// or mismatched stream gives a stream error and leaves its output undefined).
// REQUIRES: check_decode_items passes.
// REQUIRES: status is a device array of `count` uint64.
void decode_batch(const DeviceDictionary& dict, const DecodeItem* items, int count,
                  uint64_t* status, void* scratch, size_t scratch_bytes, cudaStream_t stream);

// --- block costs and model selection ---------------------------------------------
// costs[b * K + k] = exact bits of block b under model k, bit-identical to the CPU's
// ldem::block_costs (same terms cnt * cost(v), summed in increasing v). choice[b] =
// argmin_k (costs[b, k] + bias[k]) (bias may be null), ties to the lower k, i.e.
// numpy's argmin of the same float64 matrix. Blocks of all items are sorted with one
// radix sort; the scratch size depends on the device (query with a device current).
// REQUIRES: check_cost_items passes (total symbols of all items < 2^31).
// REQUIRES: bias is null or a device array of K finite doubles.
// REQUIRES (costs_scratch_bytes): a device is current (the radix sort's scratch
// size depends on it).
size_t costs_scratch_bytes(const DeviceDictionary& dict, const CostItem* items, int count);
void block_costs_batch(const DeviceDictionary& dict, const CostItem* items, int count,
                       const double* bias, void* scratch, size_t scratch_bytes,
                       cudaStream_t stream);

}  // namespace ldem::cuda
