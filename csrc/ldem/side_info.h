// Side information of a local-entropy stream (ldem/local/stream.py has the whole
// layout): the image-dependent tables and the counts of the rANS-coded block map,
// as Elias-gamma codes, and the rANS coding of the block map itself. The writer,
// the reader and the bit count live here together.
//
// Side bits, MSB first, zero-padded to whole bytes:
//   with I > 0 image tables: gamma(table_bits), then per table gamma(zigzag(offset) + 1),
//     gamma(n) and gamma(q_i + 1) for its n scaled counts;
//   with the rANS map codec: gamma(count_k + 1) for each of the A categories.
// An image table is the model quantize_counts(q + [0]) at the stream's precision
// (support [offset, offset + n), escape weight 0); the map's table is built the same
// way from its counts with offset 0.
#pragma once

#include <cstdint>
#include <vector>

#include "ldem/tables.h"

namespace ldem {

constexpr int kMinTableBits = 4;   // scaled counts of image tables sum to about 2^table_bits
constexpr int kMaxTableBits = 16;
constexpr int kMaxGammaBits = 40;  // longest gamma code the reader accepts (zeros before the 1)

// Bits of the Elias-gamma code of v.
// REQUIRES: v >= 1.
int64_t gamma_bits(uint64_t v);

// Elias-gamma codes (MSB first) of values >= 1, concatenated and zero-padded to bytes.
// REQUIRES: every value >= 1.
std::vector<uint8_t> gamma_pack(const uint64_t* values, size_t n);

// Reads n gamma codes starting at bit `pos`; advances pos. Returns false (leaving
// out partly filled) if the data ends early or a code is longer than max_bits.
// REQUIRES: out has n entries; 1 <= max_bits <= 63.
bool gamma_unpack(const uint8_t* data, size_t size, uint64_t& pos, size_t n, int max_bits,
                  uint64_t* out);

// Image tables as they are sent: table j covers [offsets[j], offsets[j] + n_j) with
// the scaled counts q[ptr[j] .. ptr[j + 1]), n_j >= 1.
struct ImageTables {
  int table_bits = 8;
  std::vector<int32_t> offsets;
  std::vector<int64_t> ptr{0};  // tables + 1
  std::vector<uint64_t> q;
  size_t size() const { return offsets.size(); }
};

// Image tables from dense cluster counts (rows of [K, V] over [lo, lo + V)). Each
// non-empty row keeps its non-zero range [a, b]; counts are scaled to table_bits with
// round-half-up integer arithmetic, q_i = (2 c_i 2^t + C) / (2 C), C = sum(c). Rows
// that are all zero are dropped.
// REQUIRES: kMinTableBits <= table_bits <= kMaxTableBits.
// REQUIRES: counts has K * V non-negative entries, lo + V - 1 <= INT32_MAX.
ImageTables scale_cluster_counts(const int64_t* counts, int64_t K, int64_t V, int32_t lo, int table_bits);

// The models of the tables at `precision` (the rule the reader applies too).
// REQUIRES: kMinPrecision <= precision <= kMaxPrecision and every n_j < 2^precision.
std::vector<Model> image_models(const ImageTables& tables, int precision);

// Exact bits that write_side_info spends on the tables (0 without tables).
int64_t image_tables_bits(const ImageTables& tables);

// The side bits: the tables (nothing when tables.size() == 0), then map_counts.
std::vector<uint8_t> write_side_info(const ImageTables& tables, const std::vector<uint64_t>& map_counts);

struct SideInfo {
  ImageTables tables;
  std::vector<Model> models;         // the tables' models at the stream's precision
  std::vector<uint64_t> map_counts;  // num_map_counts entries
};

// Reads num_tables image tables, then num_map_counts block-map counts. Every size is
// checked against the bits left before anything is allocated for it; throws
// DecodeFailure on truncated or invalid data (bits after the last code are ignored).
// REQUIRES: kMinPrecision <= precision <= kMaxPrecision.
SideInfo read_side_info(const uint8_t* data, size_t size, int64_t num_tables, int64_t num_map_counts,
                        int precision);

// The rANS block map: the categories of B blocks, each in [0, A), coded as one lane
// of an ldem stream under the table built from their counts. Returns the counts (to
// send as side bits) and the stream.
// REQUIRES: categories has B >= 1 entries, each in [0, A).
// REQUIRES: A + 1 <= 2^precision, kMinPrecision <= precision <= kMaxPrecision.
struct CodedBlockMap {
  std::vector<uint64_t> counts;  // A entries
  std::vector<uint8_t> data;
};
CodedBlockMap encode_block_map(const int32_t* categories, int64_t B, int64_t A, int precision);

// Decodes B categories in [0, A) coded under the table of `counts` (A entries) into
// out. Throws DecodeFailure if the counts do not sum to B or make no table, if the
// stream is invalid, or a category is out of range.
// REQUIRES: out has B entries; kMinPrecision <= precision <= kMaxPrecision.
void decode_block_map(const uint8_t* data, size_t size, const std::vector<uint64_t>& counts, int64_t B,
                      int precision, int32_t* out);

}  // namespace ldem
