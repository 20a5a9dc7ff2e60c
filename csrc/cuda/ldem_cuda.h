// ldem's CUDA engine: a torch-free API over raw device pointers and a cudaStream_t.
//
// The GPU writes and reads the CPU stream format of ldem/coder.h, byte for byte:
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
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ldem/coder.h"
#include "ldem/tables.h"

#if defined(__CUDACC__)
#define LDEM_HD __host__ __device__
#else
#define LDEM_HD
#endif

namespace ldem::cuda {

// ---------------------------------------------------------------------------------
// Stream planning: how many parallel rANS states a stream gets.
//
// Every lane of every segment ends in a 64-bit final state, which costs about
// kLaneOverheadBits bits of rate (measured on the CPU coder: 47-50 bits per lane
// with 32-lane segments, from 0.1 to 3 bits/symbol), plus about 2 bytes of length
// per extra segment and the 4-byte header. The GPU wants many lanes; the rate wants
// few. plan_stream() picks the most parallel layout whose expected overhead stays
// within `overhead_ppm` parts per million of the coded size:
//   1. 32-lane segments, the smallest segment size 2^k (k >= kMinPlanShift) with
//        overhead_bits(S, 32) <= overhead_ppm * 1e-6 * coded_bits;
//   2. if even one 32-lane segment is too costly, one segment with the most lanes
//      (16, 8, 4, 2, 1) that fits; 1 lane if none does;
// where overhead_bits(S, lanes) = 32 + 16 (S - 1) + kLaneOverheadBits * S * lanes.
// coded_bits is the exact cost of the symbols under their models (the GPU sums it
// before encoding: estimate_coded_bits()). The result is a pure function of
// (num_symbols, coded_bits, max_lanes_log2, overhead_ppm), so a CPU encoder given
// the same plan writes the same bytes.
// ---------------------------------------------------------------------------------
constexpr int kLaneOverheadBits = 50;
constexpr int kMinPlanShift = 12;          // never plan segments below 4096 symbols
constexpr uint32_t kDefaultOverheadPpm = 5000;  // 0.5 %
constexpr int kCostFixedBits = 8;          // coded_bits are counted in 1/256 bit units

// REQUIRES: num_symbols >= 0, 0 <= max_lanes_log2 <= kMaxLanesLog2.
// coded_bits_fx is the coded size in 1/256 bit (see estimate_coded_bits()).
StreamParams plan_stream(int64_t num_symbols, uint64_t coded_bits_fx,
                         int max_lanes_log2 = kMaxLanesLog2,
                         uint32_t overhead_ppm = kDefaultOverheadPpm);

// Expected final-state overhead in bits of a stream with these parameters.
LDEM_HD inline uint64_t planned_overhead_bits(int64_t num_segments, int lanes) {
  if (num_segments <= 0) return 32;
  return 32 + 16 * static_cast<uint64_t>(num_segments - 1) +
         static_cast<uint64_t>(kLaneOverheadBits) * num_segments * lanes;
}

// ---------------------------------------------------------------------------------
// Format helpers shared by host and device code (the rules of ldem/coder.h).
// ---------------------------------------------------------------------------------
namespace format {

LDEM_HD inline int64_t num_segments(int64_t n, int shift) {
  if (n <= 0) return 0;
  const int64_t s = n >> shift;
  return s < 1 ? 1 : s;
}

// Segment s of S covers [s N / S, (s + 1) N / S).
// REQUIRES: 0 <= N <= 2^40, S >= 1, 0 <= s <= S.
LDEM_HD inline int64_t segment_begin(int64_t N, int64_t S, int64_t s) {
  return static_cast<int64_t>(static_cast<unsigned __int128>(N) * static_cast<uint64_t>(s) /
                              static_cast<uint64_t>(S));
}

// Arena words one segment may need while encoding (the CPU coder's bound).
// REQUIRES: n >= 0 symbols, 1 <= lanes <= 32.
LDEM_HD inline uint64_t segment_capacity_words(int64_t n, int lanes) {
  return 2 * static_cast<uint64_t>(n) + 2 * static_cast<uint64_t>(lanes) + 4;
}

LDEM_HD inline int varint_size(uint64_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

LDEM_HD inline uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

// Bytes before the first segment: 4 + varints of all segment lengths but the last
// (+ 4 for the CRC).
// REQUIRES: words has S entries (word counts of the segments).
LDEM_HD inline uint64_t header_bytes(const uint32_t* words, int64_t S, bool checksum) {
  uint64_t h = 4;
  for (int64_t s = 0; s + 1 < S; ++s) h += varint_size(static_cast<uint64_t>(words[s]) * 4);
  return h + (checksum ? 4 : 0);
}

// Writes the header of a stream whose segments have `words[s]` words; returns the
// number of bytes written (header_bytes()). The CRC field, if any, is left for the
// caller. REQUIRES: out has header_bytes() bytes; params valid.
LDEM_HD inline uint64_t write_header(uint8_t* out, const uint32_t* words, int64_t S,
                                     int lanes_log2, int segment_shift, bool checksum) {
  uint8_t* p = out;
  *p++ = 'L';
  *p++ = 'D';
  *p++ = static_cast<uint8_t>(kFormatVersion << 4 | (checksum ? 1 : 0));
  *p++ = static_cast<uint8_t>(lanes_log2 << 5 | segment_shift);
  for (int64_t s = 0; s + 1 < S; ++s) p = put_varint(p, static_cast<uint64_t>(words[s]) * 4);
  if (checksum)
    for (int i = 0; i < 4; ++i) *p++ = 0;
  return static_cast<uint64_t>(p - out);
}

}  // namespace format

// ---------------------------------------------------------------------------------
// Status codes. kStatusOk means the item is good. Otherwise the low 8 bits hold a
// Status; argument errors (models outside the dictionary) take precedence over
// stream errors, and among stream errors the one of the lowest segment is kept,
// so the code is deterministic.
// ---------------------------------------------------------------------------------
constexpr uint64_t kStatusOk = ~uint64_t{0};

enum Status : uint32_t {
  kBadMagic = 1,
  kBadVersion,
  kBadFlags,
  kBadParams,
  kTooShortForShape,
  kTruncatedHeader,
  kBadSegmentLength,
  kDataForEmptyShape,
  kLengthsExceedData,
  kPartialWord,
  kChecksumMismatch,
  kShortSegment,
  kBadInitialState,
  kTruncated,
  kBadEscapeLength,
  kEscapeOutOfRange,
  kFinalState,
  kUnreadData,
  kFirstArgumentError = 64,
  kBadModelIndex = 64,   // an entry of the model map is outside [0, K)
  kInternalError = 128,  // an arena bound was violated (a bug; never expected)
};

// Message of a status value (the same texts as the CPU decoder where they exist).
std::string status_message(uint64_t status);
// Throws ldem::DecodeFailure for stream errors, ldem::ArgumentError for argument
// errors, std::runtime_error for internal ones; returns for kStatusOk.
void throw_status(uint64_t status);

// Throws std::runtime_error naming `what` if err != cudaSuccess.
void check_cuda(cudaError_t err, const char* what);

// Number of CUDA devices; 0 (never an exception) without a driver or GPU.
int device_count();

// ---------------------------------------------------------------------------------
// Dictionary tables on the device.
//
// The integer tables of a ModelSet (one Dictionary or several, indices in order)
// packed into one device allocation. Per model k with support n_k (entries
// s = 0..n_k, the escape last, at base_k + s):
//   header[k] = {offset, n, base}
//   lut[k * 64 + b]   first symbol whose slot range holds slot b << (P - 6)
//   cdf[base + s]     u16 start of symbol s (cdf[n + 1] = 2^P is implicit)
//   sf[base + s]      start | freq << 16 (freq <= 2^P - 1 always)
//   rcp[base + s]     the encoder reciprocal of EncSymbol
//   cost[base + s]    Model::cost (double), cost_fx = ceil(cost * 256)
// The decoder's tables (header, lut, cdf) are one contiguous prefix, staged in
// shared memory when they fit kStageBytes; otherwise kernels read them through L1.
// ---------------------------------------------------------------------------------
constexpr int kLutBits = 6;
constexpr uint32_t kStageBytes = 64 * 1024;

struct ModelHeader {
  int32_t offset;
  uint32_t n;
  uint32_t base;
  uint32_t reserved;
};

// Byte offsets of the sections in the packed blob (host and device identical).
struct TableLayout {
  uint32_t K = 0;
  int32_t precision = 16;
  uint64_t total = 0;  // sum of (n_k + 1)
  uint64_t header = 0, lut = 0, cdf = 0, sf = 0, rcp = 0, cost = 0, cost_fx = 0;
  uint64_t decode_bytes = 0;  // [0, decode_bytes): header, lut, cdf
  uint64_t bytes = 0;
};

// Raw pointers into one copy of the packed tables (device or host memory).
struct DictView {
  const ModelHeader* header = nullptr;
  const uint16_t* lut = nullptr;
  const uint16_t* cdf = nullptr;
  const uint32_t* sf = nullptr;
  const uint64_t* rcp = nullptr;
  const double* cost = nullptr;
  const uint32_t* cost_fx = nullptr;
  uint32_t K = 0;
  int32_t precision = 16;
  uint64_t total = 0;                 // entries of cdf/sf/rcp/cost/cost_fx
  uint64_t lut_off = 0, cdf_off = 0;  // offsets of lut and cdf from header (staging)
  uint64_t decode_bytes = 0;          // bytes of [header, cdf end), 16-aligned
  uint64_t rcp_off = 0;               // offset of rcp from sf (16-aligned)
};

// Packs the tables on the host. Throws ArgumentError if the set is empty or has
// more than 2^24 models.
std::vector<uint8_t> pack_tables(const ModelSet& models, TableLayout* layout);
DictView view_of(const uint8_t* blob, const TableLayout& layout);

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

// ---------------------------------------------------------------------------------
// Items of a batch. Every item is its own stream; one launch codes all of them.
// ---------------------------------------------------------------------------------
struct GpuLayout {
  int64_t C = 0, H = 0, W = 0, bh = 1, bw = 1;
  int64_t nby() const { return (H + bh - 1) / bh; }
  int64_t nbx() const { return (W + bw - 1) / bw; }
  int64_t num_symbols() const { return C * H * W; }
  int64_t num_blocks() const { return C * nby() * nbx(); }
  Layout cpu() const { return Layout{C, H, W, bh, bw}; }
};

// Throws ArgumentError unless the shape is valid for the CPU coder (check_layout's
// size rules) and H * W < 2^31, num_blocks < 2^31 (the GPU's index ranges).
void check_gpu_layout(const GpuLayout& layout);

struct EncodeItem {
  const int32_t* symbols = nullptr;  // device, C*H*W in C order
  const int32_t* models = nullptr;   // device, num_blocks model indices
  GpuLayout layout;
  StreamParams params;               // lanes (any power of two <= 32), segment size
  uint8_t* out = nullptr;            // device, out_capacity bytes
  uint64_t out_capacity = 0;         // >= max_compressed_size(layout, params)
};

struct DecodeItem {
  const uint8_t* data = nullptr;     // device, any alignment
  uint64_t size = 0;                 // bytes of the stream
  const int32_t* models = nullptr;   // device, num_blocks
  GpuLayout layout;
  int32_t* out = nullptr;            // device, C*H*W
};

struct CostItem {
  const int32_t* symbols = nullptr;  // device, C*H*W
  GpuLayout layout;
  double* costs = nullptr;           // device [num_blocks, K] or null (select only)
  int32_t* choice = nullptr;         // device [num_blocks] or null (costs only)
};

// Throws ArgumentError for invalid host-side fields (shapes, parameters, null or
// misaligned pointers, capacities). What the host cannot see is a precondition:
// REQUIRES: every pointer is device memory of the dictionary's device holding the
//           number of elements named above (out: out_capacity bytes).
// REQUIRES: outputs do not overlap each other, the inputs or the scratch arena.
void check_encode_items(const EncodeItem* items, int count);
void check_decode_items(const DecodeItem* items, int count);
void check_cost_items(const CostItem* items, int count, uint32_t K);

// --- encode ----------------------------------------------------------------------
size_t encode_scratch_bytes(const EncodeItem* items, int count, bool checksum);

// Encodes every item into its own stream (the CPU's bytes for the same params).
// Writes sizes[i] (bytes of item i's stream) and status[i] (kStatusOk unless a
// model index is out of range).
// REQUIRES: check_encode_items passes; sizes and status are device arrays of
// `count` uint64; scratch holds encode_scratch_bytes() bytes.
void encode_batch(const DeviceDictionary& dict, const EncodeItem* items, int count, bool checksum,
                  uint64_t* sizes, uint64_t* status, void* scratch, size_t scratch_bytes,
                  cudaStream_t stream);

// Exact coded size of each item in 1/256 bit (sum of ceil(256 * cost) per symbol,
// escapes with their payload) for plan_stream(). Integer sums: deterministic.
// REQUIRES: items' symbols/models/layout valid; bits and status are device arrays
// of `count` uint64.
size_t estimate_scratch_bytes(const EncodeItem* items, int count);
void estimate_coded_bits(const DeviceDictionary& dict, const EncodeItem* items, int count,
                         uint64_t* bits, uint64_t* status, void* scratch, size_t scratch_bytes,
                         cudaStream_t stream);

// --- decode ----------------------------------------------------------------------
size_t decode_scratch_bytes(const DecodeItem* items, int count);

// Decodes every item; status[i] tells whether item i decoded (a corrupt, truncated
// or mismatched stream gives a stream error and leaves its output undefined).
// REQUIRES: check_decode_items passes; status is a device array of `count` uint64.
void decode_batch(const DeviceDictionary& dict, const DecodeItem* items, int count,
                  uint64_t* status, void* scratch, size_t scratch_bytes, cudaStream_t stream);

// --- block costs and model selection ---------------------------------------------
// costs[b * K + k] = exact bits of block b under model k, bit-identical to the CPU's
// ldem::block_costs (same terms cnt * cost(v), summed in increasing v). choice[b] =
// argmin_k (costs[b, k] + bias[k]) (bias may be null), ties to the lower k, i.e.
// numpy's argmin of the same float64 matrix. Blocks of all items are sorted with one
// radix sort; the scratch size depends on the device (query with a device current).
// REQUIRES: check_cost_items passes (total symbols of all items < 2^31); bias (if
// not null) is a device array of K finite doubles.
// REQUIRES (costs_scratch_bytes): a device is current (the radix sort's scratch
// size depends on it).
size_t costs_scratch_bytes(const DeviceDictionary& dict, const CostItem* items, int count);
void block_costs_batch(const DeviceDictionary& dict, const CostItem* items, int count,
                       const double* bias, void* scratch, size_t scratch_bytes,
                       cudaStream_t stream);

// ---------------------------------------------------------------------------------
// Host emulation of the kernels' per-warp algorithms (the same code, with a warp of
// 32 simulated lanes). Lets the CPU check the GPU's word placement, escapes, header,
// CRC combination and cost order against the CPU coder without a GPU.
// ---------------------------------------------------------------------------------
namespace emulate {
std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const ModelSet& dict, const StreamParams& params, bool checksum);
// Throws DecodeFailure / ArgumentError like the GPU status would.
void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& layout,
            const ModelSet& dict, int32_t* out);
// Same results as block_costs_batch for one item (costs [B, K], choice [B]).
void block_costs(const int32_t* symbols, const Layout& layout, const ModelSet& dict,
                 const double* bias, double* costs, int32_t* choice);
uint64_t coded_bits(const int32_t* symbols, const int32_t* models, const Layout& layout,
                    const ModelSet& dict);
// CRC-32 of data computed as the GPU does: per chunk, then combined.
uint32_t chunked_crc32(const uint8_t* data, size_t size, size_t chunk);
}  // namespace emulate

}  // namespace ldem::cuda
