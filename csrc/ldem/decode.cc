// The decoder: the 4-lane fast path per precision, any lane count, and the stream
// header parse of ldem/format.h with the CPU's DecodeFailure messages.
#include <algorithm>
#include <cstring>
#include <string>

#include "ldem/coder.h"
#include "ldem/coder_internal.h"
#include "ldem/endian.h"
#include "ldem/rans.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

using namespace detail;
using rans::kLanes;
using rans::kLow;

[[noreturn]] void corrupt(const std::string& msg) { throw DecodeFailure{msg}; }

// Checked refill for the escape path. REQUIRES: in may already be past end.
inline void refill_checked(uint64_t& x, const uint32_t*& in, const uint32_t* end) {
  if (x < kLow) {
    if (in >= end) corrupt("stream truncated inside an escape");
    x = (x << 32) | *in++;
  }
}

}  // namespace

namespace detail {

// Cold path: takes and returns the state by value so the hot loop keeps it in registers.
DecState get_escape(uint64_t x, const uint32_t* in, const uint32_t* end, const View& m) {
  const uint32_t head = rans::get_bits(x, 7);
  refill_checked(x, in, end);
  const int lm1 = head & 63;
  if (lm1 > 32) corrupt("invalid escape length");
  const int lo_bits = std::min(16, lm1), hi_bits = lm1 - lo_bits;
  uint64_t payload = 0;
  if (lo_bits) {
    payload = rans::get_bits(x, lo_bits);
    refill_checked(x, in, end);
  }
  if (hi_bits) {
    payload |= static_cast<uint64_t>(rans::get_bits(x, hi_bits)) << 16;
    refill_checked(x, in, end);
  }
  const int64_t d = static_cast<int64_t>(((1ull << lm1) | payload) - 1);
  const int64_t lo = static_cast<int32_t>(m.offset);
  const int64_t v = (head & 64) ? lo + m.n + d : lo - 1 - d;
  if (v < INT32_MIN || v > INT32_MAX) corrupt("escaped value outside int32");
  return {x, in, static_cast<int32_t>(v)};
}

void read_initial_states(const uint32_t*& in, const uint32_t* end, int lanes, uint64_t* st) {
  if (end - in < 2 * lanes) corrupt("segment shorter than its initial states");
  for (int l = 0; l < lanes; ++l) {
    uint64_t& x = st[l];
    x = static_cast<uint64_t>(in[0]) | static_cast<uint64_t>(in[1]) << 32;
    in += 2;
    if (x < kLow || x >= (1ull << 63)) corrupt("invalid initial coder state");
  }
}

}  // namespace detail

namespace {

// Decodes one symbol with a branchless refill that reads the word at `in` whether or
// not it takes it. Bound: every caller checks `in <= end` after at most 4 calls (after
// each group of 4 and after each run's tail of 1-3), so no read lands beyond end + 3;
// the buffer has kDecodePad readable words after the last segment's end.
// REQUIRES: in <= end + (calls since the caller's last check), end[0..3] readable.
template <int P>
__attribute__((always_inline)) inline int32_t dec_one(uint64_t& x, const uint32_t*& in,
                                                      const uint32_t* end, const uint16_t* lut,
                                                      const uint32_t* cdf, uint32_t off, uint32_t n,
                                                      const View& m) {
  constexpr uint32_t mask = (1u << P) - 1;
  constexpr int lut_shift = P > kLutBits ? P - kLutBits : 0;
  const uint32_t slot = static_cast<uint32_t>(x) & mask;
  uint32_t s = lut[slot >> lut_shift];
  while (cdf[s + 1] <= slot) ++s;
  const uint32_t c = cdf[s];
  x = static_cast<uint64_t>(cdf[s + 1] - c) * (x >> P) + slot - c;
  // Branchless refill: the word is read unconditionally (the buffer is padded) and taken
  // with a conditional move; one compare feeds the move and the pointer step.
#if defined(__x86_64__) && defined(__GNUC__)
  const uint64_t refilled = (x << 32) | *in;
  uint64_t step = 0;
  __asm__("cmpq %[low], %[x]\n\t"  // CF = (x < L): take the word
          "cmovbq %[r], %[x]\n\t"
          "adcq $0, %[step]"
          : [x] "+&r"(x), [step] "+r"(step)
          : [low] "r"(kLow), [r] "r"(refilled)
          : "cc");
  in += step;
#else
  const uint64_t need = x < kLow;
  const uint64_t w = *in;
  x = (x << (need << 5)) | (w & (0 - need));
  in += need;
#endif
  if (__builtin_expect(s < n, 1)) return static_cast<int32_t>(off + s);
  if (in > end) corrupt("stream truncated");
  const DecState r = get_escape(x, in, end, m);
  x = r.x;
  in = r.in;
  return r.value;
}

#define LDEM_DEC(X) dec_one<P>(X, in, end, m.lut, m.cdf, m.offset, m.n, m)
#define LDEM_DEC_RUN(X) dec_one<P>(X, in, end, lut, cdf, off, n, m)

// Returns the final lane states (all kLow for a consistent stream).
template <int P>
bool decode_segment_p(uint64_t x0, uint64_t x1, uint64_t x2, uint64_t x3, const uint32_t*& in_ref,
                      const uint32_t* end, int64_t a, int64_t b, const int32_t* models,
                      const Layout& L, Views views, int32_t* out) {
  const uint32_t* in = in_ref;
  auto rotate = [&](int64_t r) { rotate_lanes(x0, x1, x2, x3, r); };
  if (L.bh == 1 && L.bw == 1) {
    int64_t i = a;
    for (; i + 4 <= b; i += 4) {
      { const View& m = views[models[i]]; out[i] = LDEM_DEC(x0); }
      { const View& m = views[models[i + 1]]; out[i + 1] = LDEM_DEC(x1); }
      { const View& m = views[models[i + 2]]; out[i + 2] = LDEM_DEC(x2); }
      { const View& m = views[models[i + 3]]; out[i + 3] = LDEM_DEC(x3); }
      if (__builtin_expect(in > end, 0)) corrupt("stream truncated");
    }
    for (; i < b; ++i) {
      const View& m = views[models[i]];
      out[i] = LDEM_DEC(x0);
      rotate(1);
    }
  } else {
    RunCursor runs(a, b, models, L, false);
    int64_t first, len;
    int32_t model;
    while (runs.next(first, len, model)) {
      const View& m = views[model];
      const uint16_t* lut = m.lut;
      const uint32_t* cdf = m.cdf;
      const uint32_t off = m.offset, n = m.n;
      int32_t* o = out + first;
      int64_t i = 0;
      for (; i + 4 <= len; i += 4) {
        o[i] = LDEM_DEC_RUN(x0);
        o[i + 1] = LDEM_DEC_RUN(x1);
        o[i + 2] = LDEM_DEC_RUN(x2);
        o[i + 3] = LDEM_DEC_RUN(x3);
        if (__builtin_expect(in > end, 0)) corrupt("stream truncated");
      }
      const int64_t r = len - i;
      if (r > 0) {
        o[i] = LDEM_DEC_RUN(x0);
        if (r > 1) o[i + 1] = LDEM_DEC_RUN(x1);
        if (r > 2) o[i + 2] = LDEM_DEC_RUN(x2);
        // Runs of 1-3 symbols (narrow blocks) never reach the group check above: without
        // this one, a damaged stream could walk `in` arbitrarily far past the padding.
        if (__builtin_expect(in > end, 0)) corrupt("stream truncated");
        rotate(r);
      }
    }
  }
  if (in > end) corrupt("stream truncated");
  in_ref = in;
  return x0 == kLow && x1 == kLow && x2 == kLow && x3 == kLow;
}
#undef LDEM_DEC
#undef LDEM_DEC_RUN

template <int P>
bool decode_segment_generic(uint64_t* st, int lanes, const uint32_t*& in, const uint32_t* end,
                            int64_t a, int64_t b, const int32_t* models, const Layout& L,
                            Views views, int32_t* out) {
  RunCursor runs(a, b, models, L, false);
  int64_t first, len;
  int32_t model;
  while (runs.next(first, len, model)) {
    for (int64_t i = first; i < first + len; ++i) {
      const View& m = L.bh == 1 && L.bw == 1 ? views[models[i]] : views[model];
      out[i] = dec_one<P>(st[(i - a) & (lanes - 1)], in, end, m.lut, m.cdf, m.offset, m.n, m);
      if (__builtin_expect(in > end, 0)) corrupt("stream truncated");
    }
  }
  for (int l = 0; l < lanes; ++l)
    if (st[l] != kLow) return false;
  return true;
}

// REQUIRES: at least 4 (kDecodePad) readable padding words after `end`; 1 <= lanes <= kMaxLanes.
void decode_segment(const uint32_t* in, const uint32_t* end, int64_t a, int64_t b,
                    const int32_t* models, const Layout& L, const ModelSet& dict,
                    Views views, int lanes, int32_t* out) {
  uint64_t init[kMaxLanes];
  read_initial_states(in, end, lanes, init);
  bool ok;
  const bool fast = lanes == kLanes;
  switch (dict.precision) {
#define LDEM_CASE(P)                                                                                 \
  case P:                                                                                            \
    ok = fast ? decode_segment_p<P>(init[0], init[1], init[2], init[3], in, end, a, b, models, L,    \
                                    views, out)                                                      \
              : decode_segment_generic<P>(init, lanes, in, end, a, b, models, L, views, out);        \
    break;
    LDEM_CASE(12) LDEM_CASE(13) LDEM_CASE(14) LDEM_CASE(15) LDEM_CASE(16)
#undef LDEM_CASE
    default: corrupt("invalid precision");
  }
  if (!ok) corrupt("stream does not match the shape, models or dictionary (final state)");
  if (in != end) corrupt("stream has unread data (wrong shape or trailing bytes)");
}

// The DecodeFailure of a format::ParseStatus (never kParseOk).
[[noreturn]] void header_error(uint32_t code, const uint8_t* data) {
  switch (code) {
    case format::kBadMagic: corrupt("not an ldem stream (bad magic)");
    case format::kBadVersion: corrupt("unsupported stream format version " + std::to_string(data[2] >> 4));
    case format::kBadFlags: corrupt("unknown stream flags");
    case format::kBadParams: corrupt("invalid stream parameters");
    case format::kTooShortForShape: corrupt("stream too short for its shape (segments need their coder states)");
    case format::kTooManySymbols: corrupt("stream too short to hold that many symbols");
    case format::kTruncatedHeader: corrupt("truncated stream header");
    case format::kBadSegmentLength: corrupt("invalid segment length");
    case format::kDataForEmptyShape: corrupt("stream has data but the shape is empty");
    case format::kLengthsExceedData: corrupt("stream truncated (segment lengths exceed the data)");
    case format::kPartialWord: corrupt("stream truncated (payload not a whole number of words)");
    default: corrupt("invalid stream header");
  }
}

}  // namespace

StreamParams read_params(const uint8_t* data, size_t size) {
  StreamParams p;
  bool checksum = false;
  const uint32_t code = format::read_params(data, size, &p, &checksum);
  if (code != format::kParseOk) header_error(code, data);
  return p;
}

void check_stream_fits(const uint8_t* data, size_t size, int64_t N, int precision) {
  const StreamParams params = read_params(data, size);
  const uint32_t code = format::check_fits(size, N, precision, params);
  if (code != format::kParseOk) header_error(code, data);
}

void detail::decode_segments(
    const uint8_t* data, size_t size, int64_t N, int precision, int threads,
    const std::function<void(int64_t, Range, const uint32_t*, const uint32_t*, int)>& segment) {
  const StreamParams params = read_params(data, size);
  // The segment count is bounded by the stream's size before anything is allocated.
  const uint32_t fits = format::check_fits(size, N, precision, params);
  if (fits != format::kParseOk) header_error(fits, data);
  const int64_t S = num_segments(N, params.segment_shift);
  std::vector<uint64_t> starts(static_cast<size_t>(S) + 1);
  format::ParsedStream ps;
  const uint32_t code = format::parse_stream(data, size, N, precision, &ps, starts.data());
  if (code != format::kParseOk) header_error(code, data);
  if (S == 0) return;
  const int lanes = 1 << params.lanes_log2;
  const uint8_t* p = data + ps.payload_off;
  const uint64_t payload = ps.payload_bytes;
  if (ps.checksum && crc32(p, payload, crc32(data, ps.payload_off - 4)) != ps.crc)
    corrupt("checksum mismatch");
  // Copy to aligned host-order words (the payload need not be 4-byte aligned in memory).
  constexpr size_t kPad = kDecodePad;  // the branchless refill may read a few words past a segment
  static thread_local std::vector<uint32_t> words;  // reused across calls
#if defined(__SANITIZE_ADDRESS__)
  // Sanitizer builds: exactly the words needed, so a read past the padding is reported.
  std::vector<uint32_t>(payload / 4 + kPad).swap(words);
#else
  if (words.size() < payload / 4 + kPad) words.resize(payload / 4 + kPad);
#endif
  load_le32_words(words.data(), p, payload / 4);  // payload is whole words (parse_stream)
  std::memset(words.data() + payload / 4, 0, kPad * 4);
  const uint32_t* word_base = words.data();  // the caller's buffer (thread_local is per thread)
  parallel_for(S, threads, [&](int64_t s) {
    segment(s, segment_range(N, S, s), word_base + starts[s], word_base + starts[s + 1], lanes);
  });
  if (words.size() > (size_t{64} << 20)) std::vector<uint32_t>().swap(words);
}

void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& L,
            const ModelSet& dict, int threads, int32_t* out) {
  const std::vector<View> view_list = make_views(dict);
  const Views views{view_list.data(), static_cast<uint32_t>(view_list.size())};
  decode_segments(data, size, L.num_symbols(), dict.precision, threads,
                  [&](int64_t, Range r, const uint32_t* in, const uint32_t* end, int lanes) {
                    decode_segment(in, end, r.a, r.b, models, L, dict, views, lanes, out);
                  });
}

}  // namespace ldem
