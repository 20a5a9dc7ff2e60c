#include "ldem/coder.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "ldem/local.h"
#include "ldem/rans.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

using rans::kLanes;
using rans::kLow;


[[noreturn]] void corrupt(const std::string& msg) { throw DecodeFailure{msg}; }

int bit_length64(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

// Flat pointers into one model's tables, for the hot loops.
struct View {
  const EncSymbol* enc;
  const uint32_t* cdf;
  const uint16_t* lut;
  uint32_t offset;
  uint32_t n;
  const Model* model;
};

std::vector<View> make_views(const ModelSet& dict) {
  std::vector<View> v(dict.size());
  for (size_t k = 0; k < dict.size(); ++k) {
    const Model& m = dict.model(k);
    v[k] = {m.enc.data(), m.cdf.data(), m.lut.data(), static_cast<uint32_t>(m.offset), m.n, &m};
  }
  return v;
}

// Walks [a, b) in raster order as runs of symbols that share one model
// (forwards, or backwards when reverse), tracking row, channel and block
// coordinates incrementally (no division per run).
class RunCursor {
 public:
  RunCursor(int64_t a, int64_t b, const int32_t* models, const Layout& L, bool reverse)
      : reverse_(reverse), models_(models), L_(L), nby_(L.nby()), nbx_(L.nbx()) {
    left_ = b - a;
    if (left_ <= 0 || L.W == 0) return;
    const int64_t i = reverse ? b - 1 : a;
    const int64_t row = i / L.W;
    x_ = i - row * L.W;
    c_ = row / L.H;
    y_ = row % L.H;
    by_ = y_ / L.bh;
    yb_ = y_ % L.bh;
    pos_ = i;
    set_row();
  }

  // Sets the next run; returns false at the end. Neighbouring pieces (next block,
  // next row) that use the same model join the run.
  bool next(int64_t& first, int64_t& len, int32_t& model) {
    if (left_ <= 0) return false;
    piece(first, len, model);
    int64_t f, l;
    int32_t m;
    while (left_ > 0 && mrow_[x_ / L_.bw] == model) {
      piece(f, l, m);
      len += l;
      if (reverse_) first = f;
    }
    return true;
  }

 private:
  // One block-row piece of the run, then moves to the next position.
  void piece(int64_t& first, int64_t& len, int32_t& model) {
    const int64_t bx = x_ / L_.bw;  // one division per piece, by the (small) block width
    model = mrow_[bx];
    if (reverse_) {
      const int64_t start = std::max(bx * L_.bw, x_ - left_ + 1);
      len = x_ - start + 1;
      first = pos_ - len + 1;
      left_ -= len;
      pos_ -= len;
      x_ = start - 1;
      if (x_ < 0 && left_ > 0) {  // previous row
        x_ = L_.W - 1;
        if (--yb_ < 0) {
          yb_ = L_.bh - 1;
          --by_;
        }
        if (--y_ < 0) {
          y_ = L_.H - 1;
          by_ = y_ / L_.bh;
          yb_ = y_ % L_.bh;
          --c_;
        }
        set_row();
      }
    } else {
      const int64_t stop = std::min((bx + 1) * L_.bw, std::min(L_.W, x_ + left_));
      len = stop - x_;
      first = pos_;
      left_ -= len;
      pos_ += len;
      x_ = stop;
      if (x_ == L_.W && left_ > 0) {  // next row
        x_ = 0;
        if (++yb_ == L_.bh) {
          yb_ = 0;
          ++by_;
        }
        if (++y_ == L_.H) {
          y_ = 0;
          by_ = 0;
          yb_ = 0;
          ++c_;
        }
        set_row();
      }
    }
  }

  void set_row() { mrow_ = models_ + (c_ * nby_ + by_) * nbx_; }

  bool reverse_;
  const int32_t* models_;
  const Layout& L_;
  int64_t nby_, nbx_;
  int64_t left_ = 0, pos_ = 0, x_ = 0, c_ = 0, y_ = 0, by_ = 0, yb_ = 0;
  const int32_t* mrow_ = nullptr;
};

struct EncState {
  uint64_t x;
  uint32_t* out;
};

// Cold path: takes and returns the state by value so the hot loop keeps it in registers.
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

// REQUIRES: out[-1] is writable.
__attribute__((always_inline)) inline void enc_one(uint64_t& x, uint32_t*& out, const EncSymbol* enc,
                                                   uint32_t off, uint32_t n, const View& m, int32_t v) {
  const uint32_t idx = static_cast<uint32_t>(v) - off;
  if (__builtin_expect(idx < n, 1)) {
    rans::put(x, out, enc[idx]);
  } else {
    const EncState r = put_escape(x, out, m, v);
    x = r.x;
    out = r.out;
  }
}

#define LDEM_ENC(X, I) enc_one(X, out, m.enc, m.offset, m.n, m, sym[I])
#define LDEM_ENC_RUN(X, I) enc_one(X, out, enc, off, n, m, sym[I])

// Encodes symbols [a, b) into the words ending at `end`; returns the first word.
// Lane of symbol i is (i - a) % 4; walking backwards, x0 is the current symbol's lane.
uint32_t* encode_segment(const int32_t* sym, int64_t a, int64_t b, const int32_t* models,
                         const Layout& L, const View* views, uint32_t* end) {
  uint64_t x0 = kLow, x1 = kLow, x2 = kLow, x3 = kLow, t;
  uint32_t* out = end;
  auto rotate = [&](int64_t r) {
    switch (r & 3) {
      case 1: t = x0; x0 = x1; x1 = x2; x2 = x3; x3 = t; break;
      case 2: std::swap(x0, x2); std::swap(x1, x3); break;
      case 3: t = x3; x3 = x2; x2 = x1; x1 = x0; x0 = t; break;
      default: break;
    }
  };
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
  for (int lane = kLanes - 1; lane >= 0; --lane) {
    *--out = static_cast<uint32_t>(lanes[lane] >> 32);
    *--out = static_cast<uint32_t>(lanes[lane]);
  }
  return out;
}
#undef LDEM_ENC
#undef LDEM_ENC_RUN

// Checked refill for the escape path. REQUIRES: in may already be past end.
inline void refill_checked(uint64_t& x, const uint32_t*& in, const uint32_t* end) {
  if (x < kLow) {
    if (in >= end) corrupt("stream truncated inside an escape");
    x = (x << 32) | *in++;
  }
}

struct DecState {
  uint64_t x;
  const uint32_t* in;
  int32_t value;
};

// Cold path: takes and returns the state by value so the hot loop keeps it in registers.
__attribute__((noinline)) DecState get_escape(uint64_t x, const uint32_t* in, const uint32_t* end,
                                              const View& m) {
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

// Decodes one symbol with a branchless refill that may read up to 4 words past
// `end` (the caller pads the buffer and checks `in <= end` after each group).
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
  // Branchless refill: shift by 0 or 32 and mask the word (no data-dependent branch).
  const uint64_t need = x < kLow;
  const uint64_t w = *in;
  x = (x << (need << 5)) | (w & (0 - need));
  in += need;
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
                      const Layout& L, const View* views, int32_t* out) {
  const uint32_t* in = in_ref;
  uint64_t t;
  auto rotate = [&](int64_t r) {
    switch (r & 3) {
      case 1: t = x0; x0 = x1; x1 = x2; x2 = x3; x3 = t; break;
      case 2: std::swap(x0, x2); std::swap(x1, x3); break;
      case 3: t = x3; x3 = x2; x2 = x1; x1 = x0; x0 = t; break;
      default: break;
    }
  };
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
      if (r > 0) o[i] = LDEM_DEC_RUN(x0);
      if (r > 1) o[i + 1] = LDEM_DEC_RUN(x1);
      if (r > 2) o[i + 2] = LDEM_DEC_RUN(x2);
      rotate(r);
    }
  }
  if (in > end) corrupt("stream truncated");
  in_ref = in;
  return x0 == kLow && x1 == kLow && x2 == kLow && x3 == kLow;
}
#undef LDEM_DEC
#undef LDEM_DEC_RUN

// Generic coders for any lane count (streams made for wide parallel hardware).
// Same operations as the fast paths; lane of symbol i is (i - a) % lanes.
uint32_t* encode_segment_generic(const int32_t* sym, int64_t a, int64_t b, const int32_t* models,
                                 const Layout& L, const View* views, int lanes, uint32_t* end) {
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
  for (int lane = lanes - 1; lane >= 0; --lane) {
    *--out = static_cast<uint32_t>(st[lane] >> 32);
    *--out = static_cast<uint32_t>(st[lane]);
  }
  return out;
}

template <int P>
bool decode_segment_generic(uint64_t* st, int lanes, const uint32_t*& in, const uint32_t* end,
                            int64_t a, int64_t b, const int32_t* models, const Layout& L,
                            const View* views, int32_t* out) {
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

// REQUIRES: at least 4 readable padding words after `end`; 1 <= lanes <= kMaxLanes.
void decode_segment(const uint32_t* in, const uint32_t* end, int64_t a, int64_t b,
                    const int32_t* models, const Layout& L, const ModelSet& dict,
                    const View* views, int lanes, int32_t* out) {
  if (end - in < 2 * lanes) corrupt("segment shorter than its initial states");
  uint64_t init[kMaxLanes];
  for (int l = 0; l < lanes; ++l) {
    uint64_t& x = init[l];
    x = static_cast<uint64_t>(in[0]) | static_cast<uint64_t>(in[1]) << 32;
    in += 2;
    if (x < kLow || x >= (1ull << 63)) corrupt("invalid initial coder state");
  }
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

struct Range {
  int64_t a, b;
};

Range segment_range(int64_t N, int64_t S, int64_t s) {
  const unsigned __int128 n = static_cast<unsigned __int128>(N);
  return {static_cast<int64_t>(n * s / S), static_cast<int64_t>(n * (s + 1) / S)};
}

void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

bool get_varint(const uint8_t*& p, const uint8_t* end, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (p == end) return false;
    const uint8_t byte = *p++;
    v |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if (!(byte & 0x80)) return true;
  }
  return false;
}

size_t segment_words(int64_t n, int lanes) { return static_cast<size_t>(2 * n + 2 * lanes + 4); }

}  // namespace

ModelSet::ModelSet(const Dictionary& d) : precision(d.precision()) {
  models.reserve(d.size());
  for (const Model& m : d.models()) models.push_back(&m);
}

ModelSet::ModelSet(const std::vector<const Dictionary*>& ds) {
  if (ds.empty()) throw ArgumentError{"at least one dictionary is required"};
  precision = ds[0]->precision();
  for (const Dictionary* d : ds) {
    if (d->precision() != precision)
      throw ArgumentError{"dictionaries must share one precision (" + std::to_string(precision) +
                          " vs " + std::to_string(d->precision()) + ")"};
    for (const Model& m : d->models()) models.push_back(&m);
  }
}

void check_layout(const Layout& L, const int32_t* models, const ModelSet& dict) {
  if (L.C < 0 || L.H < 0 || L.W < 0) throw ArgumentError{"shape must be non-negative"};
  if (L.bh < 1 || L.bw < 1) throw ArgumentError{"block sizes must be >= 1"};
  if (L.H > (int64_t{1} << 31) || L.W > (int64_t{1} << 31) || L.C > (int64_t{1} << 31) ||
      (L.C && L.H && L.W > (int64_t{1} << 40) / std::max<int64_t>(1, L.C * L.H)))
    throw ArgumentError{"shape too large"};
  const int64_t nb = L.num_blocks();
  const int64_t K = static_cast<int64_t>(dict.size());
  for (int64_t i = 0; i < nb; ++i)
    if (models[i] < 0 || models[i] >= K)
      throw ArgumentError{"models: index " + std::to_string(models[i]) + " at block " +
                          std::to_string(i) + " is outside [0, " + std::to_string(K) + ")"};
}

int64_t num_segments(int64_t N, int segment_shift) {
  return N <= 0 ? 0 : std::max<int64_t>(1, N >> segment_shift);
}

void check_params(const StreamParams& p) {
  if (p.lanes_log2 < 0 || p.lanes_log2 > kMaxLanesLog2)
    throw ArgumentError{"lanes must be a power of two in [1, " + std::to_string(kMaxLanes) + "]"};
  if (p.segment_shift < kMinSegmentShift || p.segment_shift > kMaxSegmentShift)
    throw ArgumentError{"segment size must be 2^k symbols with k in [" +
                        std::to_string(kMinSegmentShift) + ", " + std::to_string(kMaxSegmentShift) + "]"};
}

size_t max_compressed_size(const Layout& L, const StreamParams& p) {
  const int64_t N = L.num_symbols(), S = num_segments(N, p.segment_shift);
  return 4 + 10 * static_cast<size_t>(S) + 4 +
         4 * (2 * static_cast<size_t>(N) + S * (2 * (size_t{1} << p.lanes_log2) + 4));
}

std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& L,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params) {
  check_params(params);
  const int lanes = 1 << params.lanes_log2;
  const int64_t N = L.num_symbols(), S = num_segments(N, params.segment_shift);
  // One scratch arena per calling thread, reused across calls (no page faults on
  // repeated calls); segment s owns words [ends[s] - cap_s, ends[s]).
  static thread_local std::vector<uint32_t> arena;
  std::vector<size_t> ends(S);
  size_t total_words = 0;
  for (int64_t s = 0; s < S; ++s) {
    const Range r = segment_range(N, S, s);
    total_words += segment_words(r.b - r.a, lanes);
    ends[s] = total_words;
  }
  if (arena.size() < total_words) arena.resize(total_words);
  std::vector<uint32_t*> begins(S);
  std::vector<size_t> words(S);
  const std::vector<View> views = make_views(dict);
  uint32_t* base = arena.data();
  parallel_for(S, threads, [&](int64_t s) {
    const Range r = segment_range(N, S, s);
    uint32_t* end = base + ends[s];
    begins[s] = lanes == kLanes
                    ? encode_segment(symbols, r.a, r.b, models, L, views.data(), end)
                    : encode_segment_generic(symbols, r.a, r.b, models, L, views.data(), lanes, end);
    words[s] = static_cast<size_t>(end - begins[s]);
  });
  std::vector<uint8_t> out = {'L', 'D', static_cast<uint8_t>(kFormatVersion << 4 | (checksum ? 1 : 0)),
                              static_cast<uint8_t>(params.lanes_log2 << 5 | params.segment_shift)};
  size_t total = 0;
  for (int64_t s = 0; s < S; ++s) {
    if (s + 1 < S) put_varint(out, words[s] * 4);
    total += words[s] * 4;
  }
  const size_t crc_at = out.size();
  if (checksum) out.resize(out.size() + 4);
  const size_t data_at = out.size();
  out.resize(data_at + total);
  uint8_t* p = out.data() + data_at;
  for (int64_t s = 0; s < S; ++s) {
    std::memcpy(p, begins[s], words[s] * 4);  // little-endian hosts only (checked in CMake)
    p += words[s] * 4;
  }
  if (checksum) {
    const uint32_t c = crc32(out.data() + data_at, total, crc32(out.data(), crc_at));
    for (int i = 0; i < 4; ++i) out[crc_at + i] = static_cast<uint8_t>(c >> (8 * i));
  }
  if (arena.size() > (size_t{64} << 20)) std::vector<uint32_t>().swap(arena);  // keep <= 256 MiB
  return out;
}

StreamParams read_params(const uint8_t* data, size_t size) {
  if (size < 4 || data[0] != 'L' || data[1] != 'D') corrupt("not an ldem stream (bad magic)");
  if ((data[2] >> 4) != kFormatVersion)
    corrupt("unsupported stream format version " + std::to_string(data[2] >> 4));
  if (data[2] & 0x0E) corrupt("unknown stream flags");
  StreamParams p{data[3] >> 5, data[3] & 31};
  if (p.lanes_log2 > kMaxLanesLog2 || p.segment_shift < kMinSegmentShift ||
      p.segment_shift > kMaxSegmentShift)
    corrupt("invalid stream parameters");
  return p;
}

void check_stream_fits(const uint8_t* data, size_t size, int64_t N, int precision) {
  const StreamParams params = read_params(data, size);
  const int64_t S = num_segments(N, params.segment_shift);
  const uint64_t lanes = uint64_t{1} << params.lanes_log2;
  if (static_cast<uint64_t>(S) > size / (8 * lanes))
    corrupt("stream too short for its shape (segments need their coder states)");
  if (N > 0 && static_cast<double>(N) > 12.0 * std::ldexp(1.0, precision) * static_cast<double>(size))
    corrupt("stream too short to hold that many symbols");
}

void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& L,
            const ModelSet& dict, int threads, int32_t* out) {
  const StreamParams params = read_params(data, size);
  const int lanes = 1 << params.lanes_log2;
  const int64_t N = L.num_symbols(), S = num_segments(N, params.segment_shift);
  const bool checksum = data[2] & 1;
  const uint8_t* p = data + 4;
  const uint8_t* end = data + size;
  // S is bounded by the caller's shape, never by the stream; each segment needs >= 8 bytes.
  if (S > static_cast<int64_t>(size)) corrupt("stream too short for its shape");
  std::vector<uint64_t> lengths(S);
  uint64_t sum = 0;
  for (int64_t s = 0; s + 1 < S; ++s) {
    if (!get_varint(p, end, lengths[s])) corrupt("truncated stream header");
    if (lengths[s] % 4 || lengths[s] > size) corrupt("invalid segment length");
    sum += lengths[s];
  }
  uint32_t crc = 0, header_crc = 0;
  if (checksum) {
    if (end - p < 4) corrupt("truncated stream header");
    header_crc = crc32(data, static_cast<size_t>(p - data));
    crc = uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
    p += 4;
  }
  const uint64_t payload = static_cast<uint64_t>(end - p);
  if (S == 0) {
    if (payload != 0) corrupt("stream has data but the shape is empty");
    return;
  }
  if (sum > payload) corrupt("stream truncated (segment lengths exceed the data)");
  lengths[S - 1] = payload - sum;
  if (lengths[S - 1] % 4) corrupt("stream truncated (payload not a whole number of words)");
  if (checksum && crc32(p, payload, header_crc) != crc) corrupt("checksum mismatch");
  // Copy to aligned words (the payload need not be 4-byte aligned in memory).
  constexpr size_t kPad = 8;  // the branchless refill may read a few words past a segment
  static thread_local std::vector<uint32_t> words;  // reused across calls
  if (words.size() < payload / 4 + kPad) words.resize(payload / 4 + kPad);
  std::memcpy(words.data(), p, payload);
  std::memset(words.data() + payload / 4, 0, kPad * 4);
  const std::vector<View> views = make_views(dict);
  std::vector<size_t> starts(S);
  for (int64_t s = 1; s < S; ++s) starts[s] = starts[s - 1] + lengths[s - 1] / 4;
  const uint32_t* word_base = words.data();  // the caller's buffer (thread_local is per thread)
  parallel_for(S, threads, [&](int64_t s) {
    const Range r = segment_range(N, S, s);
    const uint32_t* in = word_base + starts[s];
    decode_segment(in, in + lengths[s] / 4, r.a, r.b, models, L, dict, views.data(), lanes, out);
  });
  if (words.size() > (size_t{64} << 20)) std::vector<uint32_t>().swap(words);
}

double symbol_cost(const Model& m, int32_t v) {
  const uint32_t idx = static_cast<uint32_t>(v) - static_cast<uint32_t>(m.offset);
  if (idx < m.n) return m.cost[idx];
  return m.cost[m.n] + escape_payload_bits(m.offset, m.n, v);
}

void block_costs(const int32_t* symbols, const Layout& L, const ModelSet& dict, int threads,
                 double* out) {
  const BlockHistograms h = block_histograms(symbols, L, threads);
  histogram_costs(h.ptr.data(), L.num_blocks(), h.values.data(), h.counts.data(), dict.models,
                  threads, out);
}

}  // namespace ldem
