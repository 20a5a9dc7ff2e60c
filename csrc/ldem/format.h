// The ldem stream format: every rule a writer or reader of a coded stream follows,
// defined once for the CPU coder (ldem/coder.h) and the CUDA engine (csrc/cuda).
// Header-only and dependency-free: no CUDA headers; under nvcc the functions are
// __host__ __device__ (LDEM_HD).
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
// and 2^17-symbol segments; any valid parameters decode on the CPU and the GPU.
// Varints: 7 bits per byte, low group first, bit 7 set on every byte but the last.
//
// An escaped value v (outside the model's support [offset, offset + n)) is coded as
// the escape slot, then 7 raw bits (bit 6: v above the support, bits 0..5: L - 1
// where L = bit_length(d + 1), d = distance past the support edge), then the low
// L - 1 bits of d + 1 in chunks of at most 16 bits, low chunk first.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define LDEM_HD __host__ __device__
#else
#define LDEM_HD
#endif

namespace ldem {

constexpr int kFormatVersion = 1;
constexpr int kMaxLanesLog2 = 5;  // up to 32 interleaved lanes per segment
constexpr int kMaxLanes = 1 << kMaxLanesLog2;
constexpr int kMinSegmentShift = 8;
constexpr int kMaxSegmentShift = 31;

struct StreamParams {
  int lanes_log2 = 2;      // 4 lanes: the CPU fast path
  int segment_shift = 17;  // 2^17 symbols per segment
};

// Number of segments of a stream of n symbols.
LDEM_HD inline int64_t num_segments(int64_t n, int segment_shift) {
  if (n <= 0) return 0;
  const int64_t s = n >> segment_shift;
  return s < 1 ? 1 : s;
}

// Bit length of v (0 for v = 0).
LDEM_HD inline int bit_length64(uint64_t v) {
#if defined(__CUDA_ARCH__)
  return 64 - __clzll(static_cast<long long>(v));
#else
  return v ? 64 - __builtin_clzll(v) : 0;
#endif
}

// Raw payload bits of an escaped value v outside [offset, offset + n): the 7-bit head
// (side + length) and bit_length(d + 1) - 1 bits.
LDEM_HD inline int escape_payload_bits(int32_t offset, uint32_t n, int32_t v) {
  const int64_t lo = offset, hi = static_cast<int64_t>(offset) + n;
  const uint64_t d = v < lo ? static_cast<uint64_t>(lo - 1 - v) : static_cast<uint64_t>(v - hi);
  return 7 + bit_length64(d + 1) - 1;
}

namespace format {

// Segment s of S covers [segment_begin(s), segment_begin(s + 1)).
// REQUIRES: 0 <= N <= 2^40.
// REQUIRES: S >= 1.
// REQUIRES: 0 <= s <= S.
LDEM_HD inline int64_t segment_begin(int64_t N, int64_t S, int64_t s) {
  return static_cast<int64_t>(static_cast<unsigned __int128>(N) * static_cast<uint64_t>(s) /
                              static_cast<uint64_t>(S));
}

// Words one segment of n symbols may need while encoding: two per symbol (escapes
// included), the final states, and a margin. The encoders' arena bound.
// REQUIRES: n >= 0.
// REQUIRES: 1 <= lanes <= kMaxLanes.
LDEM_HD inline uint64_t segment_capacity_words(int64_t n, int lanes) {
  return 2 * static_cast<uint64_t>(n) + 2 * static_cast<uint64_t>(lanes) + 4;
}

// Upper bound on the bytes of any stream of N symbols with these parameters: the
// fixed header, at most 10 varint bytes per segment, the CRC, every segment's capacity.
// REQUIRES: N >= 0.
// REQUIRES: params valid (see check_params in ldem/coder.h).
LDEM_HD inline uint64_t max_stream_bytes(int64_t N, const StreamParams& params) {
  const uint64_t S = static_cast<uint64_t>(num_segments(N, params.segment_shift));
  return 4 + 10 * S + 4 +
         4 * (2 * static_cast<uint64_t>(N) + S * (2 * (uint64_t{1} << params.lanes_log2) + 4));
}

LDEM_HD inline int varint_size(uint64_t v) {
  int n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// Writes v at p; returns the byte after it.
// REQUIRES: p has varint_size(v) bytes.
LDEM_HD inline uint8_t* put_varint(uint8_t* p, uint64_t v) {
  while (v >= 0x80) {
    *p++ = static_cast<uint8_t>(v | 0x80);
    v >>= 7;
  }
  *p++ = static_cast<uint8_t>(v);
  return p;
}

// Reads a varint from [p, end) and advances p; false if it is truncated or longer
// than 64 bits.
LDEM_HD inline bool get_varint(const uint8_t*& p, const uint8_t* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p == end) return false;
    const uint8_t byte = *p++;
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

// Bytes before the first segment of a stream whose segments have words[s] words.
// REQUIRES: words has S entries.
template <class Word>
LDEM_HD inline uint64_t header_bytes(const Word* words, int64_t S, bool checksum) {
  uint64_t h = 4;
  for (int64_t s = 0; s + 1 < S; ++s) h += varint_size(static_cast<uint64_t>(words[s]) * 4);
  return h + (checksum ? 4 : 0);
}

// Writes the header (the CRC field, if any, zeroed: the caller fills it in); returns
// header_bytes().
// REQUIRES: out has header_bytes(words, S, checksum) bytes.
// REQUIRES: words has S entries.
// REQUIRES: params valid (see check_params in ldem/coder.h).
template <class Word>
LDEM_HD inline uint64_t write_header(uint8_t* out, const Word* words, int64_t S,
                                     const StreamParams& params, bool checksum) {
  uint8_t* p = out;
  *p++ = 'L';
  *p++ = 'D';
  *p++ = static_cast<uint8_t>(kFormatVersion << 4 | (checksum ? 1 : 0));
  *p++ = static_cast<uint8_t>(params.lanes_log2 << 5 | params.segment_shift);
  for (int64_t s = 0; s + 1 < S; ++s) p = put_varint(p, static_cast<uint64_t>(words[s]) * 4);
  if (checksum)
    for (int i = 0; i < 4; ++i) *p++ = 0;
  return static_cast<uint64_t>(p - out);
}

// Outcomes of reading a stream header. The CPU turns them into DecodeFailure
// messages, the CUDA engine uses the same numbers as its statuses.
enum ParseStatus : uint32_t {
  kParseOk = 0,
  kBadMagic = 1,
  kBadVersion = 2,
  kBadFlags = 3,
  kBadParams = 4,
  kTooShortForShape = 5,  // fewer bytes than the segments' lane states need
  kTruncatedHeader = 6,
  kBadSegmentLength = 7,
  kDataForEmptyShape = 8,
  kLengthsExceedData = 9,
  kPartialWord = 10,
  kTooManySymbols = 19,   // more symbols than a stream of this size can hold
};

// Reads the fixed 4 header bytes: the parameters and the CRC flag.
LDEM_HD inline uint32_t read_params(const uint8_t* data, uint64_t size, StreamParams* params,
                                    bool* checksum) {
  if (size < 4 || data[0] != 'L' || data[1] != 'D') return kBadMagic;
  if ((data[2] >> 4) != kFormatVersion) return kBadVersion;
  if (data[2] & 0x0E) return kBadFlags;
  const int lanes_log2 = data[3] >> 5, shift = data[3] & 31;
  if (lanes_log2 > kMaxLanesLog2 || shift < kMinSegmentShift || shift > kMaxSegmentShift)
    return kBadParams;
  params->lanes_log2 = lanes_log2;
  params->segment_shift = shift;
  *checksum = (data[2] & 1) != 0;
  return kParseOk;
}

// Cheap checks, before any output is allocated, that a stream of `size` bytes can hold
// N symbols at `precision`: every segment needs its lane states (8 bytes per lane), and
// every coded symbol grows the coder state by more than 2^-P / 1.5 bits, so
// N <= 12 * 2^P * size.
// REQUIRES: N >= 0.
// REQUIRES: 0 <= precision <= 32.
LDEM_HD inline uint32_t check_fits(uint64_t size, int64_t N, int precision,
                                   const StreamParams& params) {
  const int64_t S = num_segments(N, params.segment_shift);
  if (static_cast<uint64_t>(S) > size / (8 * (uint64_t{1} << params.lanes_log2)))
    return kTooShortForShape;
  if (N > 0 && static_cast<unsigned __int128>(N) >
                   (static_cast<unsigned __int128>(size) * 12) << precision)
    return kTooManySymbols;
  return kParseOk;
}

// A parsed stream header: where the segments are.
struct ParsedStream {
  int64_t S;            // segments
  int32_t lanes_log2;
  int32_t checksum;     // 1 if the CRC field is present
  uint32_t crc;         // its value
  uint32_t pad;
  uint64_t payload_off;    // bytes before the first segment
  uint64_t payload_bytes;  // bytes of all segments
};

// Parses the header and the segment lengths of a stream for N symbols at `precision`
// (read_params, check_fits, the varints and the CRC field). Writes *ps and
// starts[0..S]: word offsets of the segments in the payload, starts[S] = payload words.
// Returns kParseOk or a ParseStatus. Reads only [data, data + size); O(S) byte reads.
// REQUIRES: N >= 0.
// REQUIRES: 0 <= precision <= 32.
// REQUIRES: starts has num_segments(N, shift) + 1 entries for the stream's shift
//           (max(1, N >> kMinSegmentShift) + 1 is enough for any stream).
LDEM_HD inline uint32_t parse_stream(const uint8_t* data, uint64_t size, int64_t N,
                                     int precision, ParsedStream* ps, uint64_t* starts) {
  ps->S = 0;
  ps->lanes_log2 = 0;
  ps->checksum = 0;
  ps->crc = 0;
  ps->pad = 0;
  ps->payload_off = 0;
  ps->payload_bytes = 0;
  StreamParams params;
  bool checksum = false;
  uint32_t code = read_params(data, size, &params, &checksum);
  if (code == kParseOk) code = check_fits(size, N, precision, params);
  if (code != kParseOk) return code;
  const int64_t S = num_segments(N, params.segment_shift);
  const uint8_t* p = data + 4;
  const uint8_t* const end = data + size;
  uint64_t sum = 0;
  starts[0] = 0;
  for (int64_t s = 0; s + 1 < S; ++s) {
    uint64_t v = 0;
    if (!get_varint(p, end, v)) return kTruncatedHeader;
    if (v % 4 || v > size - sum) return kBadSegmentLength;  // sum <= size: no wrap-around
    sum += v;
    starts[s + 1] = starts[s] + v / 4;
  }
  uint32_t crc = 0;
  if (checksum) {
    if (end - p < 4) return kTruncatedHeader;
    crc = static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 |
          static_cast<uint32_t>(p[2]) << 16 | static_cast<uint32_t>(p[3]) << 24;
    p += 4;
  }
  const uint64_t payload = static_cast<uint64_t>(end - p);
  ps->lanes_log2 = params.lanes_log2;
  ps->checksum = checksum ? 1 : 0;
  ps->crc = crc;
  ps->payload_off = static_cast<uint64_t>(p - data);
  ps->payload_bytes = payload;
  if (S == 0) return payload != 0 ? kDataForEmptyShape : kParseOk;
  if (sum > payload) return kLengthsExceedData;
  if ((payload - sum) % 4) return kPartialWord;
  starts[S] = payload / 4;
  ps->S = S;
  return kParseOk;
}

}  // namespace format
}  // namespace ldem
