#include "ldem/coder.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LDEM_AVX512_ENCODER 1
#endif

#include "ldem/histograms.h"
#include "ldem/rans.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

using rans::kLanes;
using rans::kLow;


[[noreturn]] void corrupt(const std::string& msg) { throw DecodeFailure{msg}; }

// Readable words after the last segment's end: dec_one may read 3 words past `end`
// before its caller's bound check (see dec_one); 8 keeps a margin.
constexpr size_t kDecodePad = 8;

int bit_length64(uint64_t v) { return v ? 64 - __builtin_clzll(v) : 0; }

// Flat pointers into one model's tables, for the hot loops.
struct View {
  const EncSymbol* enc;
  const uint32_t* cdf;
  const uint16_t* lut;
  const uint32_t* fc;
  uint32_t offset;
  uint32_t n;
  const Model* model;
};

[[noreturn]] __attribute__((noinline, cold)) void model_index_changed() {
  throw ArgumentError{"models: an index is outside [0, number of models) (was the array written during the call?)"};
}

// The views of a model set, indexed by the model map. The map is the caller's buffer,
// read while the coder runs (another thread may write it after check_layout), so every
// index is checked as it is read: a changed map gives wrong output or ArgumentError,
// never a read outside the tables.
struct Views {
  const View* v;
  uint32_t K;
  __attribute__((always_inline)) const View& operator[](int32_t k) const {
    if (__builtin_expect(static_cast<uint32_t>(k) >= K, 0)) model_index_changed();
    return v[k];
  }
};

std::vector<View> make_views(const ModelSet& dict) {
  std::vector<View> v(dict.size());
  for (size_t k = 0; k < dict.size(); ++k) {
    const Model& m = dict.model(k);
    v[k] = {m.enc.data(), m.cdf.data(), m.lut.data(), m.fc.data(), static_cast<uint32_t>(m.offset), m.n, &m};
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

// Writes the final states of lanes [0, lanes) below out (lane 0 first in memory, each
// as low word then high word); returns the segment's first word.
uint32_t* put_final_states(uint32_t* out, const uint64_t* st, int lanes) {
  for (int lane = lanes - 1; lane >= 0; --lane) {
    *--out = static_cast<uint32_t>(st[lane] >> 32);
    *--out = static_cast<uint32_t>(st[lane]);
  }
  return out;
}

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
                         const Layout& L, Views views, uint32_t* end) {
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
  return put_final_states(out, lanes, kLanes);
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

// ---- Paired-segment vector encoder (AVX-512, chosen at run time) -------------------------
//
// Two segments are encoded at once, their 4 lanes side by side in one 8 x 64-bit
// register, so the two dependency chains overlap. Symbols go in aligned quads
// [i - 4, i) (lane l codes symbol i - 4 + l). The emitted words of each half are packed
// in lane order and stored below that segment's words, exactly where the scalar encoder
// puts them. The division uses doubles: after renormalisation x < f 2^(63-P), so
// q = floor(x / f) < 2^(63-P) <= 2^51, and double(x) * (1 / f) (three roundings of
// 2^-53) is within E = 3 2^(10-P) of x / f. For P >= 13 (E < 0.5) rounding it gives
// q' in {q, q + 1}; at P = 12 truncating gives q' in {q - 1, q, q + 1}. Then
// r = x - q' f is in [-f, 2f), and q' M + r + start, less (M - f) if r < 0 and plus
// (M - f) if r >= f, is C(s, x) exactly. Quads that cross a model run or hold an escape
// go through the scalar code, so the stream is byte-identical to encode_segment's.

std::atomic<bool> g_vector_encoder{true};
std::atomic<uint64_t> g_vector_quads{0};  // quads coded by the vector loop (tests read it)

bool cpu_has_vector_encoder() {
#ifdef LDEM_AVX512_ENCODER
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                         __builtin_cpu_supports("avx512vl");
  return ok;
#else
  return false;
#endif
}

bool paired_encoder_applies(int lanes, const Layout& L, int64_t S) {
  return lanes == kLanes && S >= 2 && !(L.bh == 1 && L.bw == 1) && cpu_has_vector_encoder() &&
         g_vector_encoder.load(std::memory_order_relaxed);
}

// One segment of a pair, walked backwards: symbols [a, i) remain, words are end[pos, 0).
struct PairSide {
  PairSide(int64_t a_, int64_t b_, const int32_t* models, const Layout& L, uint32_t* end_)
      : a(a_), i(b_), end(end_), runs(a_, b_, models, L, true), run_first(b_) {}
  int64_t a, i;
  uint32_t* end;
  int64_t pos = 0;
  RunCursor runs;
  int64_t run_first;  // the current run is [run_first, previous run_first)
  int32_t run_model = -1;

  // Model of symbol p. REQUIRES: a <= p, and p never increases between calls.
  int32_t model_at(int64_t p) {
    int64_t len;
    while (p < run_first) runs.next(run_first, len, run_model);
    return run_model;
  }
};

// Scalar encode of symbols [lo, side.i) into the side's lanes st[0..3].
__attribute__((noinline)) void encode_side_scalar(const int32_t* sym, PairSide& side, uint64_t* st,
                                                  int64_t lo, Views views) {
  uint32_t* out = side.end + side.pos;
  for (int64_t p = side.i - 1; p >= lo; --p) {
    const View& m = views[side.model_at(p)];
    enc_one(st[(p - side.a) & 3], out, m.enc, m.offset, m.n, m, sym[p]);
  }
  side.pos = out - side.end;
  side.i = lo;
}

#ifdef LDEM_AVX512_ENCODER
#define LDEM_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl")))
// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _undefined() idiom.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Rounding is explicit, whatever the caller's MXCSR (signed conversions: x < 2^63).
constexpr int kNearest = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

// pshufb controls: for a 4-bit mask of emitting lanes, the words of those lanes in lane
// order, placed in the top dwords of a 128-bit register.
struct TopWords {
  __m128i v[16];
  TopWords() {
    for (int e = 0; e < 16; ++e) {
      alignas(16) uint8_t b[16];
      const int cnt = __builtin_popcount(e);
      int j = 4 - cnt;
      for (int i = 0; i < 16; ++i) b[i] = 0x80;
      for (int lane = 0; lane < 4; ++lane)
        if (e >> lane & 1) {
          for (int k = 0; k < 4; ++k) b[4 * j + k] = static_cast<uint8_t>(4 * lane + k);
          ++j;
        }
      std::memcpy(&v[e], b, 16);
    }
  }
};
const TopWords kTopWords;

// The model of symbol side.i - 1, for the lanes of one half.
struct HalfModel {
  int32_t offset;
  uint32_t n;
  const uint32_t* fc;
};

HalfModel side_model(PairSide& side, Views views) {
  const View& m = views[side.model_at(side.i - 1)];
  return {static_cast<int32_t>(m.offset), m.n, m.fc};
}

// Encodes the two segments; returns their first words in begin0/begin1.
// kExactRound: P >= 13, the rounded quotient (see above).
template <bool kExactRound>
LDEM_AVX512 void encode_pair_avx512(const int32_t* sym, PairSide& s0, PairSide& s1, Views views,
                                    int precision, uint32_t*& begin0, uint32_t*& begin1) {
  alignas(64) uint64_t st[8];
  for (uint64_t& x : st) x = kLow;
  encode_side_scalar(sym, s0, st, s0.i - ((s0.i - s0.a) & 3), views);  // partial top quads
  encode_side_scalar(sym, s1, st + 4, s1.i - ((s1.i - s1.a) & 3), views);
  const __m128i shift_p = _mm_cvtsi32_si128(precision);
  const __m128i shift_max = _mm_cvtsi32_si128(63 - precision);
  const __m512i M = _mm512_set1_epi64(int64_t{1} << precision);
  const __m512d one = _mm512_set1_pd(1.0);
  const __m256i low16 = _mm256_set1_epi32(0xFFFF);
  __m256i off = _mm256_setzero_si256(), n = _mm256_setzero_si256();
  const uint32_t* fc0 = nullptr;
  const uint32_t* fc1 = nullptr;
  int64_t first0 = INT64_MAX, first1 = INT64_MAX;  // current runs' first symbols
#define LDEM_LOAD_HALF(SIDE, MASK, FC, FIRST)                                  \
  do {                                                                       \
    const HalfModel h = side_model(SIDE, views);                             \
    off = _mm256_mask_set1_epi32(off, MASK, h.offset);                       \
    n = _mm256_mask_set1_epi32(n, MASK, static_cast<int32_t>(h.n));          \
    FC = h.fc;                                                               \
    FIRST = SIDE.run_first;                                                  \
  } while (0)
  if (s0.i > s0.a) LDEM_LOAD_HALF(s0, 0x0F, fc0, first0);
  if (s1.i > s1.a) LDEM_LOAD_HALF(s1, 0xF0, fc1, first1);
  __m512i X = _mm512_load_si512(st);
  // Loop state in registers (the stores below may alias anything).
  int64_t i0 = s0.i, i1 = s1.i, pos0 = s0.pos, pos1 = s1.pos;
  const int64_t a0 = s0.a, a1 = s1.a;
  uint32_t* const end0 = s0.end;
  uint32_t* const end1 = s1.end;
  uint64_t vector_quads = 0;
  while (i0 > a0 && i1 > a1) {
    if (__builtin_expect(first0 <= i0 - 4 && first1 <= i1 - 4, 1)) {  // runs cover both quads
      const __m256i v = _mm256_inserti128_si256(
          _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sym + i0 - 4))),
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(sym + i1 - 4)), 1);
      const __m256i idx = _mm256_sub_epi32(v, off);
      if (__builtin_expect(_mm256_cmp_epu32_mask(idx, n, _MM_CMPINT_NLT) == 0, 1)) {  // no escape
        // Table entries (freq | start << 16), by scalar loads: a gather here ran 40 %
        // slower (it seems to wait for the earlier stores, whose addresses depend on x).
        alignas(32) uint32_t k[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(k), idx);
        const __m256i fc = _mm256_setr_epi32(
            static_cast<int32_t>(fc0[k[0]]), static_cast<int32_t>(fc0[k[1]]), static_cast<int32_t>(fc0[k[2]]),
            static_cast<int32_t>(fc0[k[3]]), static_cast<int32_t>(fc1[k[4]]), static_cast<int32_t>(fc1[k[5]]),
            static_cast<int32_t>(fc1[k[6]]), static_cast<int32_t>(fc1[k[7]]));
        const __m256i f32 = _mm256_and_si256(fc, low16);
        const __m512i F = _mm512_cvtepu32_epi64(f32);
        const __m512i start = _mm512_cvtepu32_epi64(_mm256_srli_epi32(fc, 16));
        const __m512d inv = _mm512_div_round_pd(one, _mm512_cvtepu32_pd(f32), kNearest);
        const __m512i D = _mm512_sub_epi64(M, F);
        // Renormalise: lanes with x >= f 2^(63-P) emit their low word. Each half's words
        // go to the top of a 4-word store, in lane order, just below the words already
        // written (the rest is overwritten later).
        const __mmask8 emit = _mm512_cmp_epu64_mask(X, _mm512_sll_epi64(F, shift_max), _MM_CMPINT_NLT);
        const __m256i w = _mm512_cvtepi64_epi32(X);
        const unsigned e0 = emit & 15u, e1 = emit >> 4;
        _mm_storeu_si128(reinterpret_cast<__m128i*>(end0 + pos0 - 4),
                         _mm_shuffle_epi8(_mm256_castsi256_si128(w), kTopWords.v[e0]));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(end1 + pos1 - 4),
                         _mm_shuffle_epi8(_mm256_extracti128_si256(w, 1), kTopWords.v[e1]));
        pos0 -= __builtin_popcount(e0);
        pos1 -= __builtin_popcount(e1);
        X = _mm512_mask_srli_epi64(X, emit, X, 32);
        // C(s, x) = q M + (x - q f) + start with q = floor(x / f), through the double quotient.
        const __m512i t = _mm512_add_epi64(X, start);
        const __m512d qd = _mm512_mul_round_pd(_mm512_cvt_roundepi64_pd(X, kNearest), inv, kNearest);
        const __m512i q = kExactRound ? _mm512_cvt_roundpd_epi64(qd, kNearest) : _mm512_cvttpd_epi64(qd);
        const __m512i qf = _mm512_mullo_epi64(q, F);
        const __m512i r = _mm512_sub_epi64(X, qf);
        __m512i x = _mm512_sub_epi64(_mm512_add_epi64(_mm512_sll_epi64(q, shift_p), t), qf);
        x = _mm512_sub_epi64(x, _mm512_and_si512(_mm512_srai_epi64(r, 63), D));  // q' = q + 1
        if (!kExactRound) x = _mm512_mask_add_epi64(x, _mm512_cmp_epi64_mask(r, F, _MM_CMPINT_NLT), x, D);
        X = x;
        i0 -= 4;
        i1 -= 4;
        ++vector_quads;
        if (__builtin_expect(first0 > i0 - 1, 0) && i0 > a0) {
          s0.i = i0;
          LDEM_LOAD_HALF(s0, 0x0F, fc0, first0);
        }
        if (__builtin_expect(first1 > i1 - 1, 0) && i1 > a1) {
          s1.i = i1;
          LDEM_LOAD_HALF(s1, 0xF0, fc1, first1);
        }
        continue;
      }
    }
    // A quad that crosses a run or holds an escape: scalar for both halves.
    _mm512_store_si512(st, X);
    s0.i = i0, s0.pos = pos0, s1.i = i1, s1.pos = pos1;
    encode_side_scalar(sym, s0, st, i0 - 4, views);
    encode_side_scalar(sym, s1, st + 4, i1 - 4, views);
    i0 = s0.i, pos0 = s0.pos, i1 = s1.i, pos1 = s1.pos;
    X = _mm512_load_si512(st);
    if (i0 > a0) LDEM_LOAD_HALF(s0, 0x0F, fc0, first0);
    if (i1 > a1) LDEM_LOAD_HALF(s1, 0xF0, fc1, first1);
  }
#undef LDEM_LOAD_HALF
  g_vector_quads.fetch_add(vector_quads, std::memory_order_relaxed);
  _mm512_store_si512(st, X);
  s0.i = i0, s0.pos = pos0, s1.i = i1, s1.pos = pos1;
  encode_side_scalar(sym, s0, st, a0, views);  // the longer segment's last quads
  encode_side_scalar(sym, s1, st + 4, a1, views);
  begin0 = put_final_states(s0.end + s0.pos, st, kLanes);
  begin1 = put_final_states(s1.end + s1.pos, st + 4, kLanes);
}
#pragma GCC diagnostic pop
#undef LDEM_AVX512
#endif  // LDEM_AVX512_ENCODER

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

void set_vector_encoder(bool enabled) { g_vector_encoder.store(enabled); }
uint64_t vector_encoder_quads() { return g_vector_quads.load(); }

std::string encoder_simd() {
  if (cpu_has_vector_encoder() && g_vector_encoder.load())
    return "AVX-512 paired-segment encoder (run-time dispatch), SSE2 otherwise";
  return "SSE2 (x86-64 baseline)";
}

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

namespace {
// One scratch arena per calling thread, reused across calls (no page faults on
// repeated calls); segment s owns words [ends[s] - cap_s, ends[s]).
thread_local std::vector<uint32_t> arena;
}  // namespace

size_t EncodedStream::size() const {
  size_t n = header.size();
  for (size_t w : words) n += 4 * w;
  return n;
}

void EncodedStream::write(uint8_t* dst) {
  std::memcpy(dst, header.data(), header.size());
  uint8_t* p = dst + header.size();
  for (size_t s = 0; s < words.size(); ++s) {
    std::memcpy(p, begins[s], words[s] * 4);  // little-endian hosts only (checked in CMake)
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

EncodedStream encode_stream(const int32_t* symbols, const int32_t* models, const Layout& L,
                            const ModelSet& dict, int threads, bool checksum,
                            const StreamParams& params) {
  check_params(params);
  const int lanes = 1 << params.lanes_log2;
  const int64_t N = L.num_symbols(), S = num_segments(N, params.segment_shift);
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
  const std::vector<View> view_list = make_views(dict);
  const Views views{view_list.data(), static_cast<uint32_t>(view_list.size())};
  uint32_t* base = arena.data();
  auto one_segment = [&](int64_t s) {
    const Range r = segment_range(N, S, s);
    uint32_t* end = base + ends[s];
    begins[s] = lanes == kLanes
                    ? encode_segment(symbols, r.a, r.b, models, L, views, end)
                    : encode_segment_generic(symbols, r.a, r.b, models, L, views, lanes, end);
    words[s] = static_cast<size_t>(end - begins[s]);
  };
  // Pairs of segments go to the vector encoder when every thread still gets a pair
  // (blocks of one symbol keep the scalar per-symbol path).
  const int T = threads <= 0 ? hardware_threads() : threads;
  if (paired_encoder_applies(lanes, L, S) && S / 2 >= T) {
#ifdef LDEM_AVX512_ENCODER
    const int64_t pairs = S / 2;
    parallel_for(pairs + (S & 1), threads, [&](int64_t u) {
      if (u == pairs) return one_segment(S - 1);
      const Range r0 = segment_range(N, S, 2 * u), r1 = segment_range(N, S, 2 * u + 1);
      PairSide s0(r0.a, r0.b, models, L, base + ends[2 * u]);
      PairSide s1(r1.a, r1.b, models, L, base + ends[2 * u + 1]);
      (dict.precision >= 13 ? encode_pair_avx512<true> : encode_pair_avx512<false>)(
          symbols, s0, s1, views, dict.precision, begins[2 * u], begins[2 * u + 1]);
      words[2 * u] = static_cast<size_t>(s0.end - begins[2 * u]);
      words[2 * u + 1] = static_cast<size_t>(s1.end - begins[2 * u + 1]);
    });
#endif
  } else {
    parallel_for(S, threads, one_segment);
  }
  EncodedStream e;
  e.checksum = checksum;
  e.header = {'L', 'D', static_cast<uint8_t>(kFormatVersion << 4 | (checksum ? 1 : 0)),
              static_cast<uint8_t>(params.lanes_log2 << 5 | params.segment_shift)};
  for (int64_t s = 0; s + 1 < S; ++s) put_varint(e.header, words[s] * 4);
  if (checksum) e.header.resize(e.header.size() + 4);
  e.begins.assign(begins.begin(), begins.end());
  e.words = std::move(words);
  return e;
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
    // sum <= size stays true, so the sum cannot wrap whatever the lengths claim.
    if (lengths[s] % 4 || lengths[s] > size - sum) corrupt("invalid segment length");
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
  constexpr size_t kPad = kDecodePad;  // the branchless refill may read a few words past a segment
  static thread_local std::vector<uint32_t> words;  // reused across calls
#if defined(__SANITIZE_ADDRESS__)
  // Sanitizer builds: exactly the words needed, so a read past the padding is reported.
  std::vector<uint32_t>(payload / 4 + kPad).swap(words);
#else
  if (words.size() < payload / 4 + kPad) words.resize(payload / 4 + kPad);
#endif
  std::memcpy(words.data(), p, payload);
  std::memset(words.data() + payload / 4, 0, kPad * 4);
  const std::vector<View> view_list = make_views(dict);
  const Views views{view_list.data(), static_cast<uint32_t>(view_list.size())};
  std::vector<size_t> starts(S);
  for (int64_t s = 1; s < S; ++s) starts[s] = starts[s - 1] + lengths[s - 1] / 4;
  const uint32_t* word_base = words.data();  // the caller's buffer (thread_local is per thread)
  parallel_for(S, threads, [&](int64_t s) {
    const Range r = segment_range(N, S, s);
    const uint32_t* in = word_base + starts[s];
    decode_segment(in, in + lengths[s] / 4, r.a, r.b, models, L, dict, views, lanes, out);
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
