// Block-wise tensor coding over a model dictionary: the public coder API.
//
// The stream format (layout, segments, lanes, escapes) is defined in ldem/format.h;
// the model set and block layout in ldem/model_set.h; block costs in ldem/costs.h.
// Any stream written here decodes on the CPU and on the CUDA engine, and back.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ldem/format.h"
#include "ldem/model_set.h"
#include "ldem/tables.h"

namespace ldem {

// Raised when a stream is corrupt, truncated or does not match the arguments.
struct DecodeFailure {
  std::string message;
};

// Throws ArgumentError unless 0 <= lanes_log2 <= kMaxLanesLog2 and
// kMinSegmentShift <= segment_shift <= kMaxSegmentShift.
void check_params(const StreamParams& params);

// Reads the parameters from a stream header. Throws DecodeFailure if invalid.
StreamParams read_params(const uint8_t* data, size_t size);

// Cheap checks, before any output is allocated, that a stream of `size` bytes can
// hold `num_symbols` symbols at `precision` (format::check_fits). Throws DecodeFailure
// otherwise.
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
  // REQUIRES: dst has size() bytes.
  // REQUIRES: no other encode ran on this thread since.
  void write(uint8_t* dst);
};

// encode() without the final copy: the caller writes the stream where it wants it.
// Same REQUIRES as encode().
EncodedStream encode_stream(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params = {});

// REQUIRES: check_layout passed.
// REQUIRES: symbols has layout.num_symbols() entries.
// Throws ArgumentError unless check_params(params) passes.
// symbols and models may be written by another thread during the call: every value is
// read once, and every model index is checked as it is read (ArgumentError if it left
// [0, K)); the output is then unspecified but no memory outside the inputs is touched.
// threads <= 0 means all hardware threads. Output is independent of threads.
std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params = {});

// REQUIRES: check_layout passed.
// REQUIRES: out has layout.num_symbols() entries.
// Throws DecodeFailure on any inconsistency; reads only [data, data + size), whatever
// the bytes: the decoder checks its read position at least once per 4 symbols and
// before each escape payload, against an internal copy with padding words.
// models may be written during the call: indices are checked as read (as encode).
// Detection: the final-state check catches damage to modelled symbols with high
// probability, but escaped values' raw payload bits carry no redundancy; with
// the CRC-32 flag every error of up to 3 bits (and nearly all others) is caught.
void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& layout,
            const ModelSet& dict, int threads, int32_t* out);

// Single-dictionary conveniences.
inline std::vector<uint8_t> encode(const int32_t* s, const int32_t* m, const Layout& l,
                                   const Dictionary& d, int threads, bool checksum,
                                   const StreamParams& params = {}) {
  return encode(s, m, l, ModelSet(d), threads, checksum, params);
}
inline void decode(const uint8_t* data, size_t size, const int32_t* m, const Layout& l,
                   const Dictionary& d, int threads, int32_t* out) {
  decode(data, size, m, l, ModelSet(d), threads, out);
}

// The vector encoder (AVX-512, when simd_level() allows it) codes two segments at once
// and writes the same bytes as the scalar one. Disabling it forces the scalar path at
// any level (tests); its name in use is encoder_kernel() (simd.h).
void set_vector_encoder(bool enabled);
// Pairs of quads the vector encoder has coded in this process (a test hook).
uint64_t vector_encoder_quads();

}  // namespace ldem
