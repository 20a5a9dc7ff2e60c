// The scalar encoder (4-lane fast path and any lane count), the stream assembly and
// EncodedStream. The paired-segment AVX-512 encoder is in encode_avx512.cc.
#include <algorithm>
#include <cstring>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ldem/coder.h"
#include "ldem/coder_internal.h"
#include "ldem/endian.h"
#include "ldem/rans.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace detail {

__attribute__((noinline)) EncState put_escape(uint64_t x, uint32_t* out, const View& m, int32_t v) {
  const int64_t lo = static_cast<int32_t>(m.offset), hi = lo + m.n;
  const bool above = v >= hi;
  const uint64_t d = above ? static_cast<uint64_t>(v - hi) : static_cast<uint64_t>(lo - 1 - v);
  const int lm1 = bit_length64(d + 1) - 1;  // 0..32
  const uint64_t payload = (d + 1) & ((1ull << lm1) - 1);
  const int lo_bits = std::min(16, lm1), hi_bits = lm1 - lo_bits;
  if (hi_bits) rans::put_bits(x, out, static_cast<uint32_t>(payload >> 16), hi_bits);
  if (lo_bits) rans::put_bits(x, out, static_cast<uint32_t>(payload & 0xFFFF), lo_bits);
  rans::put_bits(x, out, (above ? 64u : 0u) | static_cast<uint32_t>(lm1), 7);
  rans::put(x, out, m.enc[m.n]);
  return {x, out};
}

}  // namespace detail

namespace {

using namespace detail;
using rans::kLanes;
using rans::kLow;

#define LDEM_ENC(X, I) enc_one(X, out, m.enc, m.offset, m.n, m, sym[I])
#define LDEM_ENC_RUN(X, I) enc_one(X, out, enc, off, n, m, sym[I])

// Encodes symbols [a, b) into the words ending at `end`; returns the first word.
// Lane of symbol i is (i - a) % 4; walking backwards, x0 is the current symbol's lane.
uint32_t* encode_segment(const int32_t* sym, int64_t a, int64_t b, const int32_t* models,
                         const Layout& L, Views views, uint32_t* end) {
  uint64_t x0 = kLow, x1 = kLow, x2 = kLow, x3 = kLow;
  uint32_t* out = end;
  auto rotate = [&](int64_t r) { rotate_lanes(x0, x1, x2, x3, r); };
  if (L.bh == 1 && L.bw == 1) {  // one model per symbol
    int64_t i = b;
    for (; i - a >= 4 && (i - a) % 4; --i) {
      const View& m = views[models[i - 1]];
      LDEM_ENC(x0, i - 1);
      rotate(1);
    }
    for (; i - 4 >= a; i -= 4) {
      { const View& m = views[models[i - 1]]; LDEM_ENC(x0, i - 1); }
      { const View& m = views[models[i - 2]]; LDEM_ENC(x1, i - 2); }
      { const View& m = views[models[i - 3]]; LDEM_ENC(x2, i - 3); }
      { const View& m = views[models[i - 4]]; LDEM_ENC(x3, i - 4); }
    }
    for (; i > a; --i) {
      const View& m = views[models[i - 1]];
      LDEM_ENC(x0, i - 1);
      rotate(1);
    }
  } else {
    RunCursor runs(a, b, models, L, true);
    int64_t first, len;
    int32_t model;
    while (runs.next(first, len, model)) {
      const View& m = views[model];
      const EncSymbol* enc = m.enc;
      const uint32_t off = m.offset, n = m.n;
      int64_t i = first + len;
#ifdef __SSE2__
      // Table offsets and the escape test for four symbols at once (SSE2 is x86-64 baseline).
      const __m128i off_v = _mm_set1_epi32(static_cast<int32_t>(off));
      const __m128i sign = _mm_set1_epi32(INT32_MIN);
      const __m128i last_v = _mm_xor_si128(_mm_set1_epi32(static_cast<int32_t>(n - 1)), sign);
      const uint8_t* enc_bytes = reinterpret_cast<const uint8_t*>(enc);
      int64_t pos = out - end;
      for (; i - 4 >= first; i -= 4) {
        const __m128i idx = _mm_sub_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sym + i - 4)), off_v);
        if (__builtin_expect(_mm_movemask_epi8(_mm_cmpgt_epi32(_mm_xor_si128(idx, sign), last_v)) == 0, 1)) {
          alignas(16) uint32_t t[4];
          _mm_store_si128(reinterpret_cast<__m128i*>(t), _mm_slli_epi32(idx, 5));
          static_assert(sizeof(EncSymbol) == 32, "byte offsets assume 32-byte EncSymbol");
          rans::put_at(x0, end, pos, *reinterpret_cast<const EncSymbol*>(enc_bytes + t[3]));
          rans::put_at(x1, end, pos, *reinterpret_cast<const EncSymbol*>(enc_bytes + t[2]));
          rans::put_at(x2, end, pos, *reinterpret_cast<const EncSymbol*>(enc_bytes + t[1]));
          rans::put_at(x3, end, pos, *reinterpret_cast<const EncSymbol*>(enc_bytes + t[0]));
          continue;
        }
        out = end + pos;
        LDEM_ENC_RUN(x0, i - 1);
        LDEM_ENC_RUN(x1, i - 2);
        LDEM_ENC_RUN(x2, i - 3);
        LDEM_ENC_RUN(x3, i - 4);
        pos = out - end;
      }
      out = end + pos;
#else
      for (; i - 4 >= first; i -= 4) {
        LDEM_ENC_RUN(x0, i - 1);
        LDEM_ENC_RUN(x1, i - 2);
        LDEM_ENC_RUN(x2, i - 3);
        LDEM_ENC_RUN(x3, i - 4);
      }
#endif
      const int64_t r = i - first;
      if (r > 0) LDEM_ENC_RUN(x0, i - 1);
      if (r > 1) LDEM_ENC_RUN(x1, i - 2);
      if (r > 2) LDEM_ENC_RUN(x2, i - 3);
      rotate(r);
    }
  }
  // Now x0 is lane (a - 1) % 4 = 3, x1 lane 2, x2 lane 1, x3 lane 0.
  const uint64_t lanes[kLanes] = {x3, x2, x1, x0};
  return put_final_states(out, lanes, kLanes);
}
#undef LDEM_ENC
#undef LDEM_ENC_RUN


// Generic coders for any lane count (streams made for wide parallel hardware).
// Same operations as the fast paths; lane of symbol i is (i - a) % lanes.
uint32_t* encode_segment_generic(const int32_t* sym, int64_t a, int64_t b, const int32_t* models,
                                 const Layout& L, Views views, int lanes, uint32_t* end) {
  uint64_t st[kMaxLanes];
  for (int l = 0; l < lanes; ++l) st[l] = kLow;
  uint32_t* out = end;
  RunCursor runs(a, b, models, L, true);
  int64_t first, len;
  int32_t model;
  while (runs.next(first, len, model)) {
    for (int64_t i = first + len - 1; i >= first; --i) {
      const View& m = L.bh == 1 && L.bw == 1 ? views[models[i]] : views[model];
      enc_one(st[(i - a) & (lanes - 1)], out, m.enc, m.offset, m.n, m, sym[i]);
    }
  }
  return put_final_states(out, st, lanes);
}

}  // namespace

// One scratch arena per calling thread, reused across calls (no page faults on
// repeated calls): SegmentArena's words.
static thread_local std::vector<uint32_t> arena;

void check_params(const StreamParams& p) {
  if (p.lanes_log2 < 0 || p.lanes_log2 > kMaxLanesLog2)
    throw ArgumentError{"lanes must be a power of two in [1, " + std::to_string(kMaxLanes) + "]"};
  if (p.segment_shift < kMinSegmentShift || p.segment_shift > kMaxSegmentShift)
    throw ArgumentError{"segment size must be 2^k symbols with k in [" +
                        std::to_string(kMinSegmentShift) + ", " + std::to_string(kMaxSegmentShift) + "]"};
}

size_t max_compressed_size(const Layout& L, const StreamParams& p) {
  return static_cast<size_t>(format::max_stream_bytes(L.num_symbols(), p));
}

size_t EncodedStream::size() const {
  size_t n = header.size();
  for (size_t w : words) n += 4 * w;
  return n;
}

void EncodedStream::write(uint8_t* dst) {
  std::memcpy(dst, header.data(), header.size());
  uint8_t* p = dst + header.size();
  for (size_t s = 0; s < words.size(); ++s) {
    store_le32_words(p, begins[s], words[s]);
    p += words[s] * 4;
  }
  if (checksum) {
    const size_t crc_at = header.size() - 4;
    const uint32_t c = crc32(dst + header.size(), static_cast<size_t>(p - dst) - header.size(), crc32(dst, crc_at));
    for (int i = 0; i < 4; ++i) dst[crc_at + i] = static_cast<uint8_t>(c >> (8 * i));
  }
  begins.clear();
  words.clear();
  if (arena.size() > (size_t{64} << 20)) std::vector<uint32_t>().swap(arena);  // keep <= 256 MiB
}

std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& L,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params) {
  EncodedStream e = encode_stream(symbols, models, L, dict, threads, checksum, params);
  std::vector<uint8_t> out(e.size());
  e.write(out.data());
  return out;
}

detail::SegmentArena::SegmentArena(int64_t n, const StreamParams& params)
    : N(n), S(0), lanes(1 << params.lanes_log2), params_(params) {
  check_params(params);
  S = num_segments(N, params.segment_shift);
  ends_.resize(S);
  size_t total_words = 0;
  for (int64_t s = 0; s < S; ++s) {
    const Range r = range(s);
    total_words += format::segment_capacity_words(r.b - r.a, lanes);
    ends_[s] = total_words;
  }
  if (arena.size() < total_words) arena.resize(total_words);
  begins_.resize(S);
  words_.resize(S);
  base_ = arena.data();
}

void detail::SegmentArena::done(int64_t s, uint32_t* begin) {
  begins_[s] = begin;
  words_[s] = static_cast<size_t>(end(s) - begin);
}

EncodedStream detail::SegmentArena::finish(bool checksum) {
  EncodedStream e;
  e.checksum = checksum;
  e.header.resize(format::header_bytes(words_.data(), S, checksum));
  format::write_header(e.header.data(), words_.data(), S, params_, checksum);
  e.begins.assign(begins_.begin(), begins_.end());
  e.words = std::move(words_);
  return e;
}

EncodedStream encode_stream(const int32_t* symbols, const int32_t* models, const Layout& L,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params) {
  SegmentArena seg(L.num_symbols(), params);
  const int lanes = seg.lanes;
  const int64_t S = seg.S;
  const std::vector<View> view_list = make_views(dict);
  const Views views{view_list.data(), static_cast<uint32_t>(view_list.size())};
  auto one_segment = [&](int64_t s) {
    const Range r = seg.range(s);
    uint32_t* end = seg.end(s);
    seg.done(s, lanes == kLanes ? encode_segment(symbols, r.a, r.b, models, L, views, end)
                                : encode_segment_generic(symbols, r.a, r.b, models, L, views, lanes, end));
  };
  // Pairs of segments go to the vector encoder when every thread still gets a pair
  // (blocks of one symbol keep the scalar per-symbol path).
  const int T = threads <= 0 ? hardware_threads() : threads;
  if (paired_encoder_applies(lanes, L, S) && S / 2 >= T) {
    const int64_t pairs = S / 2;
    parallel_for(pairs + (S & 1), threads, [&](int64_t u) {
      if (u == pairs) return one_segment(S - 1);
      uint32_t *begin0, *begin1;
      encode_pair(symbols, models, L, views, dict.precision, seg.range(2 * u), seg.end(2 * u),
                  seg.range(2 * u + 1), seg.end(2 * u + 1), begin0, begin1);
      seg.done(2 * u, begin0);
      seg.done(2 * u + 1, begin1);
    });
  } else {
    parallel_for(S, threads, one_segment);
  }
  return seg.finish(checksum);
}

}  // namespace ldem
