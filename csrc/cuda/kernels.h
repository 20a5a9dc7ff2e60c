// The plain types of ldem's CUDA engine, shared by the device code, its host side and
// the CPU emulation of the kernels: the stream plan, status codes, the packed
// dictionary tables, batch items and their argument checks. No CUDA headers: this
// header (with warp.h and emulate.h) builds in every build, with or without nvcc.
// The device API over these types is ldem_cuda.h.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ldem/coder.h"
#include "ldem/format.h"
#include "ldem/tables.h"

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

// Throws ArgumentError unless num_symbols >= 0 and 0 <= max_lanes_log2 <= kMaxLanesLog2.
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
// Status codes. kStatusOk means the item is good. Otherwise the low 8 bits hold a
// Status; argument errors (models outside the dictionary) take precedence over
// stream errors, and among stream errors the one of the lowest segment is kept,
// so the code is deterministic.
// ---------------------------------------------------------------------------------
constexpr uint64_t kStatusOk = ~uint64_t{0};

// The stream header codes are format::ParseStatus (the same numbers).
enum Status : uint32_t {
  kBadMagic = format::kBadMagic,
  kBadVersion = format::kBadVersion,
  kBadFlags = format::kBadFlags,
  kBadParams = format::kBadParams,
  kTooShortForShape = format::kTooShortForShape,
  kTruncatedHeader = format::kTruncatedHeader,
  kBadSegmentLength = format::kBadSegmentLength,
  kDataForEmptyShape = format::kDataForEmptyShape,
  kLengthsExceedData = format::kLengthsExceedData,
  kPartialWord = format::kPartialWord,
  kChecksumMismatch = 11,
  kShortSegment = 12,
  kBadInitialState = 13,
  kTruncated = 14,
  kBadEscapeLength = 15,
  kEscapeOutOfRange = 16,
  kFinalState = 17,
  kUnreadData = 18,
  kTooManySymbols = format::kTooManySymbols,
  kFirstArgumentError = 64,
  kBadModelIndex = 64,   // an entry of the model map is outside [0, K)
  kInternalError = 128,  // an arena bound was violated (a bug; never expected)
};

// Message of a status value (the same texts as the CPU decoder where they exist).
std::string status_message(uint64_t status);
// Throws ldem::DecodeFailure for stream errors, ldem::ArgumentError for argument
// errors, std::runtime_error for internal ones; returns for kStatusOk.
void throw_status(uint64_t status);

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

}  // namespace ldem::cuda
