// Block-wise tensor coding over a model dictionary.
//
// Symbols are int32 [C, H, W] in C order. The plane of each channel is cut into
// bh x bw blocks (edge blocks are partial); models[c, by, bx] names the model
// that codes block (c, by, bx).
//
// Stream layout (little endian), format version 1:
//   u8 'L', u8 'D', u8 (version << 4 | flags)      flags bit 0: CRC-32 present
//   u8 (lanes_log2 << 5 | segment_shift)
//   varint byte length of each segment except the last (the last takes the rest)
//   [u32 CRC-32 of the header bytes before it and all segment bytes]   if flags bit 0
//   segments: `lanes` initial states (u32 low, u32 high), then the words
// The N = C*H*W symbols in raster order are cut into S = max(1, N >> segment_shift)
// segments (S = 0 when N = 0): segment s covers [s N / S, (s + 1) N / S).
// S depends only on N and the parameters, never on the thread count. Symbol i
// of segment [a, b) is coded by lane (i - a) % lanes. The CPU default is 4 lanes
// and 2^17-symbol segments; any valid parameters decode on the CPU.
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

constexpr int kMaxLanesLog2 = 5;  // up to 32 interleaved lanes per segment
constexpr int kMaxLanes = 1 << kMaxLanesLog2;
constexpr int kMinSegmentShift = 8;
constexpr int kMaxSegmentShift = 31;

struct StreamParams {
  int lanes_log2 = 2;      // 4 lanes: the CPU fast path
  int segment_shift = 17;  // 2^17 symbols per segment
};

// An ordered list of models sharing one precision, drawn from one or more
// dictionaries (indices follow the given order). Holds pointers only.
// REQUIRES: the dictionaries outlive the set.
struct ModelSet {
  int precision = 16;
  std::vector<const Model*> models;
  explicit ModelSet(const Dictionary& d);
  // Throws ArgumentError if the list is empty or precisions differ.
  explicit ModelSet(const std::vector<const Dictionary*>& ds);
  size_t size() const { return models.size(); }
  const Model& model(size_t k) const { return *models[k]; }
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
void check_layout(const Layout& layout, const int32_t* models, const ModelSet& dict);

int64_t num_segments(int64_t num_symbols, int segment_shift);

// Throws ArgumentError unless 0 <= lanes_log2 <= kMaxLanesLog2 and
// kMinSegmentShift <= segment_shift <= kMaxSegmentShift.
void check_params(const StreamParams& params);

// Reads the parameters from a stream header. Throws DecodeFailure if invalid.
StreamParams read_params(const uint8_t* data, size_t size);

// Cheap checks, before any output is allocated, that a stream of `size` bytes can
// hold `num_symbols` symbols at `precision`: every segment needs its lane states,
// and every coded symbol grows the coder state by more than 2^-P / 1.5 bits, so
// num_symbols <= 12 * 2^P * size. Throws DecodeFailure otherwise.
void check_stream_fits(const uint8_t* data, size_t size, int64_t num_symbols, int precision);

// Upper bound on the encoded size in bytes for any input of this layout.
size_t max_compressed_size(const Layout& layout, const StreamParams& params = {});

// A coded stream before it is copied out: the header (with a zeroed CRC slot) and each
// segment's words, which live in the calling thread's scratch arena.
struct EncodedStream {
  std::vector<uint8_t> header;
  std::vector<const uint32_t*> begins;
  std::vector<size_t> words;
  bool checksum = false;
  size_t size() const;  // bytes of the whole stream
  // Copies the stream to dst and fills in the CRC; the words are released after.
  // REQUIRES: dst has size() bytes; no other encode ran on this thread since.
  void write(uint8_t* dst);
};

// encode() without the final copy: the caller writes the stream where it wants it.
// Same REQUIRES as encode().
EncodedStream encode_stream(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params = {});

// REQUIRES: check_layout passed; symbols has layout.num_symbols() entries.
// REQUIRES: check_params(params) passes (throws ArgumentError otherwise).
// symbols and models may be written by another thread during the call: every value is
// read once, and every model index is checked as it is read (ArgumentError if it left
// [0, K)); the output is then unspecified but no memory outside the inputs is touched.
// threads <= 0 means all hardware threads. Output is independent of threads.
std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params = {});

// REQUIRES: check_layout passed; out has layout.num_symbols() entries.
// Throws DecodeFailure on any inconsistency; reads only [data, data + size), whatever
// the bytes: the decoder checks its read position at least once per 4 symbols and
// before each escape payload, against an internal copy with padding words.
// models may be written during the call: indices are checked as read (as encode).
// Detection: the final-state check catches damage to modelled symbols with high
// probability, but escaped values' raw payload bits carry no redundancy; with
// the CRC-32 flag every error of up to 3 bits (and nearly all others) is caught.
void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& layout,
            const ModelSet& dict, int threads, int32_t* out);

// Exact coded cost in bits of every block under every model:
// out[((c * nby + by) * nbx + bx) * K + k]. Counts escapes with their payload.
// REQUIRES: symbols has layout.num_symbols() entries, out has num_blocks * K.
void block_costs(const int32_t* symbols, const Layout& layout, const ModelSet& dict,
                 int threads, double* out);

// Single-dictionary conveniences.
inline void check_layout(const Layout& l, const int32_t* m, const Dictionary& d) {
  check_layout(l, m, ModelSet(d));
}
inline std::vector<uint8_t> encode(const int32_t* s, const int32_t* m, const Layout& l,
                                   const Dictionary& d, int threads, bool checksum,
                                   const StreamParams& params = {}) {
  return encode(s, m, l, ModelSet(d), threads, checksum, params);
}
inline void decode(const uint8_t* data, size_t size, const int32_t* m, const Layout& l,
                   const Dictionary& d, int threads, int32_t* out) {
  decode(data, size, m, l, ModelSet(d), threads, out);
}
inline void block_costs(const int32_t* s, const Layout& l, const Dictionary& d, int threads,
                        double* out) {
  block_costs(s, l, ModelSet(d), threads, out);
}

// The vector encoder (AVX-512, when the CPU has it) codes two segments at once and
// writes the same bytes as the scalar one. Disabling it forces the scalar path (tests).
void set_vector_encoder(bool enabled);
// Pairs of quads the vector encoder has coded in this process (a test hook).
uint64_t vector_encoder_quads();
// The encoder's instruction set in use, for build_info().
std::string encoder_simd();

// Exact cost in bits of value v under model m.
double symbol_cost(const Model& m, int32_t v);

}  // namespace ldem
