// The per-warp algorithms of the CUDA engine, written once for two warps:
//   DeviceWarp (csrc/cuda/*.cu)  one thread per lane, ballots and shuffles;
//   HostWarp   (emulate.cc)      32 simulated lanes in arrays, run on the CPU.
// Code between collectives runs in `w.each([&](int l) { ... })` and touches only
// lane l's values (`x[l]`); collectives (ballot, shfl, suffix sums) take the lane
// arrays. On the device `x[l]` is the thread's own register and `each` runs the body
// once, so the kernels are the plain SIMT code; on the host `each` loops over the
// lanes in order, which is a valid schedule of the same program.
//
// Everything here follows the format of ldem/format.h and ldem/rans.h:
//   state x in [L, 2^63), L = 2^31; put: emit low word while x >= freq << (63 - P),
//   x = floor(x / f) M + x mod f + start via the exact reciprocal; put_bits(b, k):
//   emit if x >= 2^(63 - k), x = x << k | b; escape: [hi bits] [lo bits] 7-bit head,
//   then the escape slot, in that order of puts (so the decoder reads them reversed).
// This header needs no CUDA headers: it compiles with g++ (the emulation, in every
// build) and nvcc.
#pragma once

#include <cstdint>

#include "cuda/kernels.h"
#include "ldem/format.h"

#if defined(__CUDACC__)
#define LDEM_DEV __device__
#define LDEM_FI __forceinline__
#else
#define LDEM_DEV
#define LDEM_FI inline
#endif

namespace ldem::cuda::detail {

constexpr uint64_t kLow = uint64_t{1} << 31;
constexpr uint32_t kFull = 0xFFFFFFFFu;

LDEM_HD LDEM_FI uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
#endif
}

LDEM_HD LDEM_FI int popc(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return __popc(v);
#else
  return __builtin_popcount(v);
#endif
}

LDEM_HD LDEM_FI int bit_length32(uint32_t v) {
#if defined(__CUDA_ARCH__)
  return 32 - __clz(static_cast<int>(v));
#else
  return v ? 32 - __builtin_clz(v) : 0;
#endif
}

// IEEE double operations without contraction (the CPU sums cnt * cost with separate
// roundings; -ffp-contract=off there).
LDEM_HD LDEM_FI double dmul(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}
LDEM_HD LDEM_FI double dadd(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// Division of n < 2^31 by a fixed 1 <= d < 2^31 with a multiply and a shift.
struct FastDiv {
  uint32_t d = 1, m = 1, s = 0;
  FastDiv() = default;
  explicit FastDiv(uint32_t div) : d(div) {
    s = 0;
    while ((uint64_t{1} << s) < d) ++s;
    m = static_cast<uint32_t>(((uint64_t{1} << 32) * ((uint64_t{1} << s) - d)) / d + 1);
  }
  LDEM_HD LDEM_FI uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t t = __umulhi(n, m);
#else
    const uint32_t t = static_cast<uint32_t>((static_cast<uint64_t>(n) * m) >> 32);
#endif
    return (t + n) >> s;
  }
};

// Carves 256-byte aligned arrays out of a scratch arena (base null: sizing only).
class Carver {
 public:
  explicit Carver(void* base) : base_(static_cast<uint8_t*>(base)) {}
  template <class T>
  T* take(uint64_t n) {
    used_ = (used_ + 255) / 256 * 256;
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += n * sizeof(T);
    return p;
  }
  size_t used() const { return static_cast<size_t>((used_ + 255) / 256 * 256); }

 private:
  uint8_t* base_;
  uint64_t used_ = 0;
};

// ---------------------------------------------------------------------------------
// Warps.
// ---------------------------------------------------------------------------------
struct HostWarp {
  template <class T>
  struct R {
    T v[32];
    T& operator[](int l) { return v[l]; }
    const T& operator[](int l) const { return v[l]; }
  };
  template <class F>
  void each(F&& f) {
    for (int l = 0; l < 32; ++l) f(l);
  }
  uint32_t ballot(const R<bool>& p) const {
    uint32_t m = 0;
    for (int l = 0; l < 32; ++l) m |= static_cast<uint32_t>(p.v[l]) << l;
    return m;
  }
  template <class T>
  T shfl(const R<T>& v, int src) const {
    return v.v[src];
  }
  // out[l] = sum of v[m] for m > l; returns the total.
  uint32_t suffix_exclusive(const R<uint32_t>& v, R<uint32_t>& out) const {
    uint32_t s = 0;
    for (int l = 31; l >= 0; --l) {
      out.v[l] = s;
      s += v.v[l];
    }
    return s;
  }
};

#if defined(__CUDACC__)
struct DeviceWarp {
  int lane;
  template <class T>
  struct R {
    T v;
    __device__ __forceinline__ T& operator[](int) { return v; }
    __device__ __forceinline__ const T& operator[](int) const { return v; }
  };
  template <class F>
  __device__ __forceinline__ void each(F&& f) {
    f(lane);
  }
  __device__ __forceinline__ uint32_t ballot(const R<bool>& p) const {
    return __ballot_sync(kFull, p.v);
  }
  template <class T>
  __device__ __forceinline__ T shfl(const R<T>& v, int src) const {
    return __shfl_sync(kFull, v.v, src);
  }
  __device__ __forceinline__ uint32_t suffix_exclusive(const R<uint32_t>& v,
                                                       R<uint32_t>& out) const {
    uint32_t s = v.v;  // inclusive suffix sum over lanes >= lane
#pragma unroll
    for (int d = 1; d < 32; d <<= 1) {
      const uint32_t t = __shfl_down_sync(kFull, s, d);
      if (lane + d < 32) s += t;
    }
    out.v = s - v.v;
    return __shfl_sync(kFull, s, 0);
  }
};
#endif

// ---------------------------------------------------------------------------------
// Geometry: symbol index -> block index, tracked per lane without 64-bit division.
// ---------------------------------------------------------------------------------
struct Geom {
  int64_t plane = 0;  // H * W < 2^31
  uint32_t W = 1, nby = 0, nbx = 0;
  FastDiv div_w, div_bh, div_bw;
  Geom() = default;
  explicit Geom(const GpuLayout& L)
      : plane(L.H * L.W), W(static_cast<uint32_t>(L.W ? L.W : 1)),
        nby(static_cast<uint32_t>(L.nby())), nbx(static_cast<uint32_t>(L.nbx())),
        div_w(static_cast<uint32_t>(L.W ? L.W : 1)),
        div_bh(static_cast<uint32_t>(L.bh < (int64_t{1} << 31) ? L.bh : (int64_t{1} << 31) - 1)),
        div_bw(static_cast<uint32_t>(L.bw < (int64_t{1} << 31) ? L.bw : (int64_t{1} << 31) - 1)) {}
  LDEM_HD LDEM_FI int64_t block(int64_t c, int64_t r) const {
    const uint32_t y = div_w.div(static_cast<uint32_t>(r));
    const uint32_t x = static_cast<uint32_t>(r) - y * W;
    return (c * nby + div_bh.div(y)) * static_cast<int64_t>(nbx) + div_bw.div(x);
  }
};

// Position of a symbol as (plane c, offset r in the plane).
struct Pos {
  int64_t c, r;
};

LDEM_HD LDEM_FI Pos pos_of(int64_t i, int64_t plane) { return {i / plane, i % plane}; }

LDEM_HD LDEM_FI void advance(Pos& p, int64_t delta, int64_t plane) {
  p.r += delta;
  while (p.r >= plane) {
    p.r -= plane;
    ++p.c;
  }
  while (p.r < 0) {
    p.r += plane;
    --p.c;
  }
}

// ---------------------------------------------------------------------------------
// Batches: item of a global segment/chunk/block index, and the encoder's arena.
// ---------------------------------------------------------------------------------
// The largest i in [0, count) with prefix[i] <= g (items with nothing are skipped).
LDEM_HD LDEM_FI int find_item(const uint64_t* prefix, int count, uint64_t g) {
  int lo = 0, hi = count - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) >> 1;
    if (prefix[mid] <= g)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// Segment s = [a, b) of a stream owns arena words [off, off + segment_capacity_words)
// with off = 2 a + s (2 lanes + 4): the segments of a stream tile 2 N + S (2 lanes + 4)
// words exactly.
LDEM_HD LDEM_FI uint64_t segment_arena_offset(int64_t a, int64_t s, int lanes) {
  return 2 * static_cast<uint64_t>(a) + static_cast<uint64_t>(s) * (2 * lanes + 4);
}
LDEM_HD LDEM_FI uint64_t stream_arena_words(int64_t N, int64_t S, int lanes) {
  return 2 * static_cast<uint64_t>(N) + static_cast<uint64_t>(S) * (2 * lanes + 4);
}

// Segment s of a stream of N symbols in S segments: its symbols [a, b) and its arena
// words [offset, offset + capacity) (the encoder writes them downwards from the top).
struct SegmentSlot {
  int64_t a, b;
  uint64_t offset, capacity;
};

// REQUIRES: S >= 1.
// REQUIRES: 0 <= s < S.
LDEM_HD LDEM_FI SegmentSlot segment_slot(int64_t N, int64_t S, int64_t s, int lanes) {
  const int64_t a = format::segment_begin(N, S, s), b = format::segment_begin(N, S, s + 1);
  return {a, b, segment_arena_offset(a, s, lanes), format::segment_capacity_words(b - a, lanes)};
}

// ---------------------------------------------------------------------------------
// Statuses: (class << 56 | position << 8 | code), the smallest wins.
// ---------------------------------------------------------------------------------
LDEM_HD LDEM_FI uint64_t make_status(uint32_t code, uint64_t position) {
  const uint64_t cls = code >= kFirstArgumentError && code < kInternalError ? 0 : 1;
  if (position > (uint64_t{1} << 47)) position = uint64_t{1} << 47;
  return cls << 56 | position << 8 | code;
}

// ---------------------------------------------------------------------------------
// Decoder table lookup: the symbol s of model h with cdf[s] <= slot < cdf[s + 1].
// ---------------------------------------------------------------------------------
LDEM_HD LDEM_FI uint32_t find_symbol(const uint16_t* lut, const uint16_t* cdf, uint32_t n,
                                     uint32_t slot, int precision) {
  const uint32_t b = slot >> (precision - kLutBits);
  uint32_t lo = lut[b];
  uint32_t hi = b + 1 < (1u << kLutBits) ? lut[b + 1] : n;
  while (lo < hi) {
    const uint32_t mid = (lo + hi + 1) >> 1;
    if (cdf[mid] <= slot)
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// ---------------------------------------------------------------------------------
// Encoder.
// ---------------------------------------------------------------------------------
// Up to four words one lane emits for one symbol, in emission order.
struct Emit4 {
  uint32_t w0, w1, w2, w3, count;
  LDEM_HD LDEM_FI void push(uint32_t v) {
    if (count == 0)
      w0 = v;
    else if (count == 1)
      w1 = v;
    else if (count == 2)
      w2 = v;
    else
      w3 = v;
    ++count;
  }
};

LDEM_HD LDEM_FI void put_sym(uint64_t& x, Emit4& e, uint32_t sf, uint64_t rcp, int P) {
  const uint32_t start = sf & 0xFFFFu, freq = sf >> 16;
  const uint64_t x_max = static_cast<uint64_t>(freq) << (63 - P);
  if (x >= x_max) {
    e.push(static_cast<uint32_t>(x));
    x >>= 32;
  }
  const uint32_t M = 1u << P;
  uint32_t shift, bias;
  if (freq == 1) {
    shift = 0;
    bias = start + M - 1;
  } else {
    shift = static_cast<uint32_t>(bit_length32(freq - 1) - 1);
    bias = start;
  }
  const uint64_t q = mulhi64(x, rcp) >> shift;
  x = x + bias + q * (M - freq);
}

LDEM_HD LDEM_FI void put_bits(uint64_t& x, Emit4& e, uint32_t bits, int nbits) {
  if (x >= (uint64_t{1} << (63 - nbits))) {
    e.push(static_cast<uint32_t>(x));
    x >>= 32;
  }
  x = (x << nbits) | bits;
}

// The escape of value v under model (offset, n): payload puts, then the escape slot.
LDEM_HD LDEM_FI void put_escape(uint64_t& x, Emit4& e, int32_t offset, uint32_t n, int32_t v,
                                uint32_t esc_sf, uint64_t esc_rcp, int P) {
  const int64_t lo = offset, hi = lo + n;
  const bool above = v >= hi;
  const uint64_t d = above ? static_cast<uint64_t>(v - hi) : static_cast<uint64_t>(lo - 1 - v);
  const int lm1 = bit_length64(d + 1) - 1;  // 0..32
  const uint64_t payload = (d + 1) & ((uint64_t{1} << lm1) - 1);
  const int lo_bits = lm1 < 16 ? lm1 : 16, hi_bits = lm1 - lo_bits;
  if (hi_bits) put_bits(x, e, static_cast<uint32_t>(payload >> 16), hi_bits);
  if (lo_bits) put_bits(x, e, static_cast<uint32_t>(payload & 0xFFFF), lo_bits);
  put_bits(x, e, (above ? 64u : 0u) | static_cast<uint32_t>(lm1), 7);
  put_sym(x, e, esc_sf, esc_rcp, P);
}

struct EncodeJob {
  const int32_t* symbols;
  const int32_t* models;
  Geom geom;
  int64_t a, b;   // segment [a, b)
  int lanes;      // power of two, 1..32
  uint32_t* arena;      // the segment's words [0, capacity)
  uint64_t capacity;
};

// Encodes one segment into the top of its arena. Returns the number of words (the
// segment's bytes / 4, final states included) or sets *status_code.
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class Wp>
LDEM_HD LDEM_FI uint64_t encode_segment(Wp& w, const DictView& t, const EncodeJob& job,
                                        uint32_t* status_code, uint64_t* status_pos) {
  using RB = typename Wp::template R<bool>;
  using RU = typename Wp::template R<uint32_t>;
  using RX = typename Wp::template R<uint64_t>;
  using RP = typename Wp::template R<Pos>;
  using RE = typename Wp::template R<Emit4>;
  const int P = t.precision;
  const int lanes = job.lanes;
  const int64_t len = job.b - job.a;
  const int64_t G = (len + lanes - 1) / lanes;
  RX x;
  RP pos;
  RB bad, esc, emit;
  RE words;
  RU count, before;
  w.each([&](int l) {
    x[l] = kLow;
    pos[l] = pos_of(job.a + (G > 0 ? G - 1 : 0) * lanes + l, job.geom.plane);
  });
  uint64_t out = job.capacity;  // next word goes to arena[out - 1]
  for (int64_t g = G - 1; g >= 0; --g) {
    w.each([&](int l) {
      const int64_t i = job.a + g * lanes + l;
      bad[l] = false;
      esc[l] = false;
      emit[l] = false;
      words[l].count = 0;
      if (l < lanes && i < job.b) {
        const int32_t m = job.models[job.geom.block(pos[l].c, pos[l].r)];
        if (static_cast<uint32_t>(m) >= t.K) {
          bad[l] = true;
        } else {
          const ModelHeader h = t.header[m];
          const int32_t v = job.symbols[i];
          const uint32_t idx = static_cast<uint32_t>(v) - static_cast<uint32_t>(h.offset);
          if (idx < h.n) {
            put_sym(x[l], words[l], t.sf[h.base + idx], t.rcp[h.base + idx], P);
            emit[l] = words[l].count != 0;
          } else {
            esc[l] = true;
            put_escape(x[l], words[l], h.offset, h.n, v, t.sf[h.base + h.n],
                       t.rcp[h.base + h.n], P);
          }
        }
      }
      advance(pos[l], -lanes, job.geom.plane);
    });
    if (w.ballot(bad)) {
      *status_code = kBadModelIndex;
      *status_pos = static_cast<uint64_t>(job.a + g * lanes);
      return 0;
    }
    if (!w.ballot(esc)) {
      // At most one word per lane: lane l's word follows those of the lanes above it.
      const uint32_t mask = w.ballot(emit);
      const uint32_t total = static_cast<uint32_t>(popc(mask));
      if (total > out) {
        *status_code = kInternalError;
        *status_pos = 0;
        return 0;
      }
      w.each([&](int l) {
        if (emit[l]) {
          const uint32_t above = l == 31 ? 0u : mask >> (l + 1);
          job.arena[out - 1 - popc(above)] = words[l].w0;
        }
      });
      out -= total;
    } else {
      w.each([&](int l) { count[l] = words[l].count; });
      const uint32_t total = w.suffix_exclusive(count, before);
      if (total > out) {
        *status_code = kInternalError;
        *status_pos = 0;
        return 0;
      }
      w.each([&](int l) {
        const uint64_t p = out - 1 - before[l];
        const Emit4& e = words[l];
        if (e.count > 0) job.arena[p] = e.w0;
        if (e.count > 1) job.arena[p - 1] = e.w1;
        if (e.count > 2) job.arena[p - 2] = e.w2;
        if (e.count > 3) job.arena[p - 3] = e.w3;
      });
      out -= total;
    }
  }
  // Final states, lane 0 first: low word, high word.
  if (out < static_cast<uint64_t>(2 * lanes)) {
    *status_code = kInternalError;
    *status_pos = 0;
    return 0;
  }
  w.each([&](int l) {
    if (l < lanes) {
      job.arena[out - 2 * lanes + 2 * l] = static_cast<uint32_t>(x[l]);
      job.arena[out - 2 * lanes + 2 * l + 1] = static_cast<uint32_t>(x[l] >> 32);
    }
  });
  out -= 2 * lanes;
  return job.capacity - out;
}

// ---------------------------------------------------------------------------------
// Decoder.
// ---------------------------------------------------------------------------------
// Word p of a segment that starts at byte `base` (aligned: 4-byte loads).
struct WordReader {
  const uint8_t* base;
  bool aligned;
  LDEM_HD LDEM_FI uint32_t operator()(uint64_t p) const {
    if (aligned) return reinterpret_cast<const uint32_t*>(base)[p];
    const uint8_t* q = base + 4 * p;
    return static_cast<uint32_t>(q[0]) | static_cast<uint32_t>(q[1]) << 8 |
           static_cast<uint32_t>(q[2]) << 16 | static_cast<uint32_t>(q[3]) << 24;
  }
};

// Reads a word into x if x < L. Returns false if the segment has no word left.
LDEM_HD LDEM_FI bool refill_checked(uint64_t& x, uint64_t& cur, const WordReader& in,
                                    uint64_t nwords) {
  if (x < kLow) {
    if (cur >= nwords) return false;
    x = (x << 32) | in(cur++);
  }
  return true;
}

// The escape payload after the escape slot and its refill (CPU: get_escape).
LDEM_HD LDEM_FI uint32_t get_escape(uint64_t& x, uint64_t& cur, const WordReader& in,
                                    uint64_t nwords, int32_t offset, uint32_t n, int32_t& v) {
  const uint32_t head = static_cast<uint32_t>(x) & 127u;
  x >>= 7;
  if (!refill_checked(x, cur, in, nwords)) return kTruncated;
  const int lm1 = static_cast<int>(head & 63);
  if (lm1 > 32) return kBadEscapeLength;
  const int lo_bits = lm1 < 16 ? lm1 : 16, hi_bits = lm1 - lo_bits;
  uint64_t payload = 0;
  if (lo_bits) {
    payload = x & ((uint64_t{1} << lo_bits) - 1);
    x >>= lo_bits;
    if (!refill_checked(x, cur, in, nwords)) return kTruncated;
  }
  if (hi_bits) {
    payload |= (x & ((uint64_t{1} << hi_bits) - 1)) << 16;
    x >>= hi_bits;
    if (!refill_checked(x, cur, in, nwords)) return kTruncated;
  }
  const int64_t d = static_cast<int64_t>(((uint64_t{1} << lm1) | payload) - 1);
  const int64_t lo = offset;
  const int64_t value = (head & 64) ? lo + static_cast<int64_t>(n) + d : lo - 1 - d;
  if (value < INT32_MIN || value > INT32_MAX) return kEscapeOutOfRange;
  v = static_cast<int32_t>(value);
  return 0;
}

struct DecodeJob {
  const int32_t* models;
  Geom geom;
  int64_t a, b;
  int lanes;
  WordReader in;
  uint64_t nwords;
  int32_t* out;
};

// Decodes one segment. Returns 0 or a Status (with *status_pos = a symbol index).
#if defined(__CUDACC__)
#pragma nv_exec_check_disable
#endif
template <class Wp>
LDEM_HD LDEM_FI uint32_t decode_segment(Wp& w, const DictView& t, const DecodeJob& job,
                                        uint64_t* status_pos) {
  using RB = typename Wp::template R<bool>;
  using RX = typename Wp::template R<uint64_t>;
  using RP = typename Wp::template R<Pos>;
  using RI = typename Wp::template R<int32_t>;
  using RH = typename Wp::template R<ModelHeader>;
  using RU = typename Wp::template R<uint32_t>;
  using RC = typename Wp::template R<uint64_t>;
  const int P = t.precision;
  const uint32_t mask = (1u << P) - 1;
  const uint32_t M = 1u << P;
  const int lanes = job.lanes;
  *status_pos = static_cast<uint64_t>(job.a);
  if (job.nwords < static_cast<uint64_t>(2 * lanes)) return kShortSegment;
  RX x;
  RB bad, act, need, esc;
  RP pos;
  RI value;
  RH hdr;
  RU code;
  RC cursor;
  w.each([&](int l) {
    bad[l] = false;
    x[l] = kLow;
    if (l < lanes) {
      x[l] = static_cast<uint64_t>(job.in(2 * l)) | static_cast<uint64_t>(job.in(2 * l + 1)) << 32;
      bad[l] = x[l] < kLow || (x[l] >> 63) != 0;
    }
    pos[l] = pos_of(job.a + l, job.geom.plane);
  });
  if (w.ballot(bad)) return kBadInitialState;
  uint64_t in = 2 * static_cast<uint64_t>(lanes);
  const int64_t G = (job.b - job.a + lanes - 1) / lanes;
  for (int64_t g = 0; g < G; ++g) {
    w.each([&](int l) {
      const int64_t i = job.a + g * lanes + l;
      act[l] = l < lanes && i < job.b;
      bad[l] = false;
      need[l] = false;
      esc[l] = false;
      if (act[l]) {
        const int32_t m = job.models[job.geom.block(pos[l].c, pos[l].r)];
        if (static_cast<uint32_t>(m) >= t.K) {
          bad[l] = true;
        } else {
          hdr[l] = t.header[m];
          const uint32_t n = hdr[l].n;
          const uint16_t* cdf = t.cdf + hdr[l].base;
          const uint32_t slot = static_cast<uint32_t>(x[l]) & mask;
          const uint32_t s =
              find_symbol(t.lut + static_cast<uint64_t>(m) * (1u << kLutBits), cdf, n, slot, P);
          const uint32_t c = cdf[s];
          const uint32_t f = (s < n ? cdf[s + 1] : M) - c;
          x[l] = static_cast<uint64_t>(f) * (x[l] >> P) + slot - c;
          need[l] = x[l] < kLow;
          esc[l] = s == n;
          value[l] = static_cast<int32_t>(static_cast<uint32_t>(hdr[l].offset) + s);
        }
      }
      advance(pos[l], lanes, job.geom.plane);
    });
    if (w.ballot(bad)) {
      *status_pos = static_cast<uint64_t>(job.a + g * lanes);
      return kBadModelIndex;
    }
    if (!w.ballot(esc)) {
      // Lane l reads after the lanes below it that also need a word.
      const uint32_t nm = w.ballot(need);
      const uint64_t total = static_cast<uint64_t>(popc(nm));
      if (in + total > job.nwords) {
        *status_pos = static_cast<uint64_t>(job.a + g * lanes);
        return kTruncated;
      }
      w.each([&](int l) {
        if (need[l]) {
          const uint32_t below = nm & ((1u << l) - 1u);
          x[l] = (x[l] << 32) | job.in(in + popc(below));
        }
      });
      in += total;
    } else {
      // Replays the group lane by lane: main refill, then the escape payload.
      for (int j = 0; j < lanes; ++j) {
        w.each([&](int l) {
          cursor[l] = in;
          code[l] = 0;
          if (l == j && act[l]) {
            uint64_t cur = in;
            if (need[l]) {
              if (cur >= job.nwords)
                code[l] = kTruncated;
              else
                x[l] = (x[l] << 32) | job.in(cur++);
            }
            if (!code[l] && esc[l])
              code[l] = get_escape(x[l], cur, job.in, job.nwords, hdr[l].offset, hdr[l].n,
                                   value[l]);
            cursor[l] = cur;
          }
        });
        const uint32_t c = w.shfl(code, j);
        if (c) {
          *status_pos = static_cast<uint64_t>(job.a + g * lanes + j);
          return c;
        }
        in = w.shfl(cursor, j);
      }
    }
    w.each([&](int l) {
      if (act[l]) job.out[job.a + g * lanes + l] = value[l];
    });
  }
  w.each([&](int l) { bad[l] = l < lanes && x[l] != kLow; });
  *status_pos = static_cast<uint64_t>(job.b);
  if (w.ballot(bad)) return kFinalState;
  if (in != job.nwords) return kUnreadData;
  return 0;
}

// ---------------------------------------------------------------------------------
// CRC-32 (zlib's polynomial), by chunks combined as in zlib's crc32_combine. A
// stream's CRC covers the header bytes before the CRC field, then the payload.
// ---------------------------------------------------------------------------------
constexpr uint32_t kCrcPoly = 0xEDB88320u;

LDEM_HD LDEM_FI uint32_t crc_table_entry(uint32_t i) {
  uint32_t c = i;
  for (int j = 0; j < 8; ++j) c = (c & 1) ? kCrcPoly ^ (c >> 1) : c >> 1;
  return c;
}

// Standard CRC-32 of [p, p + n) (pre- and post-inverted).
LDEM_HD LDEM_FI uint32_t crc32_bytes(const uint32_t* table, const uint8_t* p, uint64_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (uint64_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

// a(x) b(x) mod p(x), reflected.
LDEM_HD LDEM_FI uint32_t crc_multmodp(uint32_t a, uint32_t b) {
  uint32_t m = 1u << 31, p = 0;
  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0) break;
    }
    m >>= 1;
    b = (b & 1) ? (b >> 1) ^ kCrcPoly : b >> 1;
  }
  return p;
}

// x^(8 n) mod p(x).
LDEM_HD LDEM_FI uint32_t crc_x8n(uint64_t n) {
  uint32_t p = 1u << 31;       // x^0
  uint32_t sq = 1u << 30;      // x^1
  for (int k = 0; k < 3; ++k) sq = crc_multmodp(sq, sq);  // x^8
  while (n) {
    if (n & 1) p = crc_multmodp(sq, p);
    n >>= 1;
    if (n) sq = crc_multmodp(sq, sq);
  }
  return p;
}

// CRC of A || B from crc(A), crc(B) and |B|.
LDEM_HD LDEM_FI uint32_t crc_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
  if (len_b == 0) return crc_a;
  return crc_multmodp(crc_x8n(len_b), crc_a) ^ crc_b;
}

// ---------------------------------------------------------------------------------
// Costs (CPU: symbol_cost, block_costs). Runs of one block are (key, count) with
// key = block << 32 | (v ^ 2^31), increasing, so values come in increasing order.
// ---------------------------------------------------------------------------------
LDEM_HD LDEM_FI double value_cost(const DictView& t, const ModelHeader& h, int32_t v) {
  const uint32_t idx = static_cast<uint32_t>(v) - static_cast<uint32_t>(h.offset);
  if (idx < h.n) return t.cost[h.base + idx];
  return dadd(t.cost[h.base + h.n], static_cast<double>(escape_payload_bits(h.offset, h.n, v)));
}

LDEM_HD LDEM_FI uint64_t value_cost_fx(const DictView& t, const ModelHeader& h, int32_t v) {
  const uint32_t idx = static_cast<uint32_t>(v) - static_cast<uint32_t>(h.offset);
  if (idx < h.n) return t.cost_fx[h.base + idx];
  return t.cost_fx[h.base + h.n] +
         (static_cast<uint64_t>(escape_payload_bits(h.offset, h.n, v)) << kCostFixedBits);
}

LDEM_HD LDEM_FI int32_t key_value(uint64_t key) {
  return static_cast<int32_t>(static_cast<uint32_t>(key) ^ 0x80000000u);
}

LDEM_HD LDEM_FI uint64_t make_key(uint64_t block, int32_t v) {
  return block << 32 | (static_cast<uint32_t>(v) ^ 0x80000000u);
}

LDEM_HD LDEM_FI double runs_cost(const DictView& t, uint32_t k, const uint64_t* keys,
                                 const uint32_t* counts, uint64_t r0, uint64_t r1) {
  const ModelHeader h = t.header[k];
  double bits = 0.0;
  for (uint64_t r = r0; r < r1; ++r)
    bits = dadd(bits, dmul(static_cast<double>(counts[r]), value_cost(t, h, key_value(keys[r]))));
  return bits;
}

}  // namespace ldem::cuda::detail
