// The paired-segment vector encoder (AVX-512, chosen at run time): two 4-lane
// segments at once, byte-identical to the scalar encoder of encode.cc.
#include <atomic>
#include <cstring>
#include <stdexcept>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LDEM_AVX512_ENCODER 1
#endif

#include "ldem/coder.h"
#include "ldem/coder_internal.h"
#include "ldem/rans.h"
#include "ldem/simd.h"

namespace ldem {
namespace detail {
namespace {

using rans::kLanes;
using rans::kLow;

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

// Whether the SIMD level allows the vector encoder (the avx512 level has F, DQ and VL)
// and it is enabled (set_vector_encoder).
bool vector_encoder_runs() {
#ifdef LDEM_AVX512_ENCODER
  return simd_level() >= SimdLevel::kAvx512 && g_vector_encoder.load(std::memory_order_relaxed);
#else
  return false;
#endif
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

}  // namespace

bool paired_encoder_applies(int lanes, const Layout& L, int64_t S) {
  return lanes == kLanes && S >= 2 && !(L.bh == 1 && L.bw == 1) && vector_encoder_runs();
}

void encode_pair(const int32_t* symbols, const int32_t* models, const Layout& L, Views views,
                 int precision, Range r0, uint32_t* end0, Range r1, uint32_t* end1,
                 uint32_t*& begin0, uint32_t*& begin1) {
#ifdef LDEM_AVX512_ENCODER
  PairSide s0(r0.a, r0.b, models, L, end0);
  PairSide s1(r1.a, r1.b, models, L, end1);
  (precision >= 13 ? encode_pair_avx512<true> : encode_pair_avx512<false>)(symbols, s0, s1, views,
                                                                            precision, begin0, begin1);
#else
  (void)symbols, (void)models, (void)L, (void)views, (void)precision, (void)r0, (void)end0;
  (void)r1, (void)end1, (void)begin0, (void)begin1;
  throw std::logic_error("encode_pair: no vector encoder in this build");
#endif
}

}  // namespace detail

void set_vector_encoder(bool enabled) { detail::g_vector_encoder.store(enabled); }
uint64_t vector_encoder_quads() { return detail::g_vector_quads.load(); }

const char* encoder_kernel() {
  if (detail::vector_encoder_runs()) return "avx512-paired";
#ifdef __SSE2__
  return "sse2";  // the quad loop of encode.cc, part of the x86-64 baseline at every level
#else
  return "scalar";
#endif
}

}  // namespace ldem
