// Internal pieces shared by the coder's translation units (model_set.cc, encode.cc,
// encode_avx512.cc, decode.cc): flat model views, the run iteration over a model map,
// and the scalar encoder's per-symbol step. Not part of the public API.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

#include "ldem/coder.h"
#include "ldem/format.h"
#include "ldem/rans.h"

namespace ldem::detail {

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

// Throws ArgumentError: a model index read by the coder is outside [0, K).
[[noreturn]] __attribute__((noinline, cold)) void model_index_changed();

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

// REQUIRES: dict outlives the views.
// Throws ArgumentError if a model has no decoder lookup table and `lookup` is asked
// (Dictionary::drop_lookups: such models code context streams only).
std::vector<View> make_views(const ModelSet& dict, bool lookup = true);

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

// Moves the four lane states of the 4-lane coders on by r symbols (mod 4): after a run
// of r symbols, x0 is again the lane of the next symbol. The encoder walks backwards,
// the decoder forwards; both rotate the same way.
inline void rotate_lanes(uint64_t& x0, uint64_t& x1, uint64_t& x2, uint64_t& x3, int64_t r) {
  uint64_t t;
  switch (r & 3) {
    case 1: t = x0; x0 = x1; x1 = x2; x2 = x3; x3 = t; break;
    case 2: std::swap(x0, x2); std::swap(x1, x3); break;
    case 3: t = x3; x3 = x2; x2 = x1; x1 = x0; x0 = t; break;
    default: break;
  }
}

// Writes the final states of lanes [0, lanes) below out (lane 0 first in memory, each
// as low word then high word); returns the segment's first word.
inline uint32_t* put_final_states(uint32_t* out, const uint64_t* st, int lanes) {
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

// The escape of v under m (payload bits, then the escape slot). Cold path: takes and
// returns the state by value so the hot loop keeps it in registers.
// REQUIRES: kLow <= x < 2^63.
// REQUIRES: out has 4 writable words below it.
__attribute__((noinline)) EncState put_escape(uint64_t x, uint32_t* out, const View& m, int32_t v);

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

// Symbols [a, b) of a segment (see format.h).
struct Range {
  int64_t a, b;
};

inline Range segment_range(int64_t N, int64_t S, int64_t s) {
  return {format::segment_begin(N, S, s), format::segment_begin(N, S, s + 1)};
}

// The segments of one stream being encoded, in the calling thread's scratch arena
// (reused across calls); segment s owns the words below end(s).
class SegmentArena {
 public:
  // Throws ArgumentError unless check_params(params) passes.
  SegmentArena(int64_t N, const StreamParams& params);
  int64_t N, S;
  int lanes;
  Range range(int64_t s) const { return segment_range(N, S, s); }
  uint32_t* end(int64_t s) const { return base_ + ends_[s]; }
  // Records segment s as the words [begin, end(s)).
  void done(int64_t s, uint32_t* begin);
  // REQUIRES: done() was called for every segment.
  EncodedStream finish(bool checksum);

 private:
  StreamParams params_;
  std::vector<size_t> ends_;
  std::vector<uint32_t*> begins_;
  std::vector<size_t> words_;
  uint32_t* base_;
};

// Reads the stream header of a stream of N symbols at `precision`, checks it (and the
// CRC) and copies the payload to aligned words with kDecodePad padding words; then runs
// segment(s, range, in, end, lanes) for every segment on up to `threads` threads.
// Throws DecodeFailure on a bad header.
constexpr size_t kDecodePad = 8;
void decode_segments(const uint8_t* data, size_t size, int64_t N, int precision, int threads,
                     const std::function<void(int64_t, Range, const uint32_t*, const uint32_t*, int)>& segment);

// Reads `lanes` initial states at `in` (advancing it) into st. Throws DecodeFailure if
// the segment is too short or a state is invalid.
void read_initial_states(const uint32_t*& in, const uint32_t* end, int lanes, uint64_t* st);

struct DecState {
  uint64_t x;
  const uint32_t* in;
  int32_t value;
};

// The escaped value after an escape slot of m was decoded (see format.h).
// Throws DecodeFailure if the payload is truncated or invalid.
__attribute__((noinline)) DecState get_escape(uint64_t x, const uint32_t* in, const uint32_t* end,
                                              const View& m);

// The paired-segment vector encoder (encode_avx512.cc).
// Whether it codes this stream: 4 lanes, S >= 2, blocks of more than one symbol, the
// SIMD level is avx512 (simd.h) and it is enabled (set_vector_encoder).
bool paired_encoder_applies(int lanes, const Layout& L, int64_t S);
// Encodes segments r0 and r1 (4 lanes each) into the words ending at end0 and end1 and
// returns their first words in begin0/begin1: the bytes of encode_segment.
// REQUIRES: paired_encoder_applies(4, L, S) for the stream.
// REQUIRES: each end has format::segment_capacity_words(b - a, 4) writable words below it.
void encode_pair(const int32_t* symbols, const int32_t* models, const Layout& L, Views views,
                 int precision, Range r0, uint32_t* end0, Range r1, uint32_t* end1,
                 uint32_t*& begin0, uint32_t*& begin1);

}  // namespace ldem::detail
