// Block-wise tensor coding over a model dictionary.
//
// Symbols are int32 [C, H, W] in C order. The plane of each channel is cut into
// bh x bw blocks (edge blocks are partial); models[c, by, bx] names the model
// that codes block (c, by, bx).
//
// Stream layout (little endian), format version 1:
//   u8 'L', u8 'D', u8 (version << 4 | flags)      flags bit 0: CRC-32 present
//   varint length of each segment except the last
//   [u32 CRC-32 of all segment bytes]               if flags bit 0
//   segments: kLanes initial states (u32 low, u32 high), then the words
// The N = C*H*W symbols in raster order are cut into S = max(1, N >> 17)
// segments (S = 0 when N = 0): segment s covers [s N / S, (s + 1) N / S).
// S depends only on N, so the stream never depends on the thread count.
//
// An escaped value v (outside the model's support) is coded as the escape slot,
// then 7 raw bits (bit 6: v above the support, bits 0..5: L - 1 where
// L = bit_length(d + 1), d = distance past the support edge), then the low
// L - 1 bits of d + 1 in chunks of at most 16 bits, low chunk first.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ldem/tables.h"

namespace ldem {

constexpr int kFormatVersion = 1;

// Raised when a stream is corrupt, truncated or does not match the arguments.
struct DecodeFailure {
  std::string message;
};

struct Layout {
  int64_t C = 0, H = 0, W = 0;
  int64_t bh = 1, bw = 1;
  int64_t nby() const { return (H + bh - 1) / bh; }
  int64_t nbx() const { return (W + bw - 1) / bw; }
  int64_t num_symbols() const { return C * H * W; }
  int64_t num_blocks() const { return C * nby() * nbx(); }
};

// Checks shapes and that every model index is in [0, dict.size()).
// REQUIRES: models has layout.num_blocks() entries.
// Throws ArgumentError naming the problem.
void check_layout(const Layout& layout, const int32_t* models, const Dictionary& dict);

int64_t num_segments(int64_t num_symbols);

// Upper bound on the encoded size in bytes for any input of this layout.
size_t max_compressed_size(const Layout& layout);

// REQUIRES: check_layout passed; symbols has layout.num_symbols() entries.
// threads <= 0 means all hardware threads. Output is independent of threads.
std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const Dictionary& dict, int threads, bool checksum);

// REQUIRES: check_layout passed; out has layout.num_symbols() entries.
// Throws DecodeFailure on any inconsistency; reads only [data, data + size).
void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& layout,
            const Dictionary& dict, int threads, int32_t* out);

// Exact coded cost in bits of every block under every model:
// out[((c * nby + by) * nbx + bx) * K + k]. Counts escapes with their payload.
// REQUIRES: symbols has layout.num_symbols() entries, out has num_blocks * K.
void block_costs(const int32_t* symbols, const Layout& layout, const Dictionary& dict,
                 int threads, double* out);

// Exact cost in bits of value v under model m.
double symbol_cost(const Model& m, int32_t v);

}  // namespace ldem
