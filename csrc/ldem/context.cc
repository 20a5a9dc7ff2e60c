// Context-coded streams (see context.h): the context rule, the segment coders and the
// block costs the encoder's search uses.
#include "ldem/context.h"

#include <algorithm>
#include <string>

#include "ldem/coder_internal.h"
#include "ldem/rans.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

using namespace detail;
using rans::kLow;

[[noreturn]] void corrupt(const std::string& msg) { throw DecodeFailure{msg}; }

constexpr int kActivityLevels = 8;
constexpr uint32_t kActivity[kActivityLevels - 1] = {1, 3, 6, 10, 16, 24, 36};
constexpr int kLocalLevels = 11;
constexpr uint32_t kLocal[kLocalLevels - 1] = {1, 2, 3, 4, 6, 9, 14, 22, 32, 48};
constexpr int kMaxMagnitude = 64;
static_assert(kLocalLevels * kActivityLevels == kNumContexts, "contexts: local levels x activity levels");

// k for s = 0..48 (s >= 48 gives the last level): the thresholds kLocal reached.
struct LocalLevels {
  uint8_t k[49];
  constexpr LocalLevels() : k() {
    for (uint32_t s = 0; s <= 48; ++s) {
      uint8_t n = 0;
      for (uint32_t t : kLocal) n += s >= t;
      k[s] = n;
    }
  }
};
constexpr LocalLevels kLocalLevel;

inline uint32_t magnitude(int32_t v) {
  const uint32_t m = v < 0 ? 0u - static_cast<uint32_t>(v) : static_cast<uint32_t>(v);
  return m < kMaxMagnitude ? m : kMaxMagnitude;
}

// The context state of one segment [a, b), visited in order: the magnitudes of the
// current and the two previous rows of the channel (zero-padded, and zero before a, so
// the local sum needs no bounds checks), and the count of non-zero symbols per plane
// position over the earlier channels of the segment (kept only when the segment spans
// more than one plane; otherwise no position repeats and the count is always 0).
class SegmentContexts {
 public:
  SegmentContexts(const Layout& L, int64_t a, int64_t b)
      : W_(L.W), HW_(L.H * L.W), a_(a), ca_(HW_ ? a / HW_ : 0) {
    if (HW_ > 0 && b - a > HW_) nonzero_.assign(static_cast<size_t>(HW_), 0);
    const size_t row = static_cast<size_t>(W_) + 3;  // 2 zeros before x = 0, 1 after W - 1
    rows_.assign(3 * row, 0);
    cur_ = rows_.data() + 2;
    up1_ = cur_ + row;
    up2_ = up1_ + row;
  }

  // Called before the first symbol of each row (c, r) the segment visits.
  inline void start_row(int64_t c, int64_t r) {
    const size_t row = static_cast<size_t>(W_) + 3;
    if (r == 0 || c != row_c_) {  // a new channel: no rows above
      std::fill(rows_.begin(), rows_.end(), 0);
    } else {
      uint32_t* t = up2_;  // up2 <- up1 <- cur <- (the old up2, cleared)
      up2_ = up1_;
      up1_ = cur_;
      cur_ = t;
      std::fill(cur_ - 2, cur_ - 2 + row, 0);
    }
    row_c_ = c;
    if (!nonzero_.empty() && c != cached_c_) cache_levels(c);
  }

  // The context of the symbol at (c, x) of the current row, at plane position p.
  inline int at(int64_t x, int64_t p) const {
    const uint32_t s = 2 * cur_[x - 1] + cur_[x - 2] + 2 * up1_[x] + up1_[x - 1] + up1_[x + 1] + up2_[x];
    const int k = kLocalLevel.k[s < 48 ? s : 48];
    int q = 0;
    if (!nonzero_.empty()) {
      const bool late = ca_ * HW_ + p < a_;  // position p of the segment's first channel lies before a
      q = (late ? q_late_ : q_early_)[nonzero_[p]];
    }
    return k * kActivityLevels + q;
  }

  inline void add(int64_t x, int64_t p, int32_t value) {
    cur_[x] = magnitude(value);
    if (!nonzero_.empty()) nonzero_[p] += value != 0;
  }

 private:
  // The activity level q of every count z for channel c: n = c - ca earlier channels at
  // positions of the segment's first channel (n - 1 where that position lies before a).
  void cache_levels(int64_t c) {
    auto fill = [](std::vector<uint8_t>& t, int64_t n) {
      t.assign(static_cast<size_t>(std::max<int64_t>(n, 0)) + 1, 0);
      for (int64_t z = 0; z <= n && n > 0; ++z) {
        int q = 0;
        for (uint32_t th : kActivity) q += 64 * static_cast<uint64_t>(z) >= th * static_cast<uint64_t>(n);
        t[static_cast<size_t>(z)] = static_cast<uint8_t>(q);
      }
    };
    fill(q_early_, c - ca_);
    fill(q_late_, c - ca_ - 1);
    cached_c_ = c;
  }

  int64_t W_, HW_, a_, ca_;
  std::vector<uint32_t> nonzero_;
  std::vector<uint32_t> rows_;
  uint32_t *cur_, *up1_, *up2_;
  int64_t row_c_ = -1, cached_c_ = -1;
  std::vector<uint8_t> q_early_, q_late_;
};

// Calls row(c, r) before the first symbol of each row and f(i, x, p, block) for
// i = a .. b-1 in order (p: position in the plane; block: index into the per-block map).
template <class Row, class F>
inline void walk(const Layout& L, int64_t a, int64_t b, Row&& row, F&& f) {
  if (a >= b) return;
  const int64_t HW = L.H * L.W, nby = L.nby(), nbx = L.nbx();
  int64_t c = a / HW, p = a % HW, r = p / L.W, x = p % L.W;
  int64_t row_block = (c * nby + r / L.bh) * nbx, bx = x / L.bw, xb = x % L.bw;
  row(c, r);
  for (int64_t i = a; i < b; ++i) {
    f(i, x, p, row_block + bx);
    ++p;
    if (++x == L.W) {
      x = 0, bx = 0, xb = 0;
      if (++r == L.H) r = 0, p = 0, ++c;
      row_block = (c * nby + r / L.bh) * nbx;
      if (i + 1 < b) row(c, r);
    } else if (++xb == L.bw) {
      xb = 0, ++bx;
    }
  }
}

inline int64_t model_of(const int32_t* families, int64_t block, int ctx, uint32_t num_families) {
  const int32_t f = families[block];
  if (__builtin_expect(static_cast<uint32_t>(f) >= num_families, 0)) model_index_changed();
  return static_cast<int64_t>(f) * kNumContexts + ctx;
}

uint32_t* encode_segment(const int32_t* y, const uint8_t* known, const int32_t* families, const Layout& L,
                         Views views, int64_t a, int64_t b, int lanes, uint32_t* end) {
  static thread_local std::vector<uint32_t> model;
  model.resize(static_cast<size_t>(b - a));
  const uint32_t F = views.K / kNumContexts;
  if (known) {
    walk(L, a, b, [](int64_t, int64_t) {}, [&](int64_t i, int64_t, int64_t, int64_t block) {
      const int k = known[i];
      if (__builtin_expect(k >= kNumContexts, 0)) model_index_changed();
      model[i - a] = static_cast<uint32_t>(model_of(families, block, k, F));
    });
  } else {
    SegmentContexts ctx(L, a, b);
    walk(L, a, b, [&](int64_t c, int64_t r) { ctx.start_row(c, r); },
         [&](int64_t i, int64_t x, int64_t p, int64_t block) {
           model[i - a] = static_cast<uint32_t>(model_of(families, block, ctx.at(x, p), F));
           ctx.add(x, p, y[i]);
         });
  }
  uint64_t st[kMaxLanes];
  for (int l = 0; l < lanes; ++l) st[l] = kLow;
  uint32_t* out = end;
  for (int64_t i = b - 1; i >= a; --i) {
    const View& m = views[static_cast<int32_t>(model[i - a])];
    enc_one(st[(i - a) & (lanes - 1)], out, m.enc, m.offset, m.n, m, y[i]);
  }
  return put_final_states(out, st, lanes);
}

void decode_segment(const uint32_t* in, const uint32_t* end, const int32_t* families, const Layout& L,
                    Views views, int precision, int64_t a, int64_t b, int lanes, int32_t* out) {
  uint64_t st[kMaxLanes];
  read_initial_states(in, end, lanes, st);
  SegmentContexts ctx(L, a, b);
  const uint32_t F = views.K / kNumContexts;
  const uint32_t mask = (1u << precision) - 1;
  walk(L, a, b, [&](int64_t c, int64_t r) { ctx.start_row(c, r); },
       [&](int64_t i, int64_t x, int64_t p, int64_t block) {
    const View& m = views[static_cast<int32_t>(model_of(families, block, ctx.at(x, p), F))];
    uint64_t& xs = st[(i - a) & (lanes - 1)];
    const uint32_t slot = static_cast<uint32_t>(xs) & mask;
    // The symbol s with cdf[s] <= slot < cdf[s + 1] (cdf[n + 1] = 2^P > slot): value 0,
    // the common case, is tried first, then a binary search.
    const uint32_t* cdf = m.cdf;
    const uint32_t zero = 0u - m.offset;  // slot index of value 0 (>= n if 0 is outside the support)
    uint32_t s;
    if (zero < m.n && cdf[zero] <= slot && slot < cdf[zero + 1]) {
      s = zero;
    } else {
      s = 0;
      uint32_t len = m.n + 1;
      while (len > 1) {
        const uint32_t half = len >> 1;
        s = cdf[s + half] <= slot ? s + half : s;
        len -= half;
      }
    }
    xs = static_cast<uint64_t>(cdf[s + 1] - cdf[s]) * (xs >> precision) + slot - cdf[s];
    if (xs < kLow) {
      if (in >= end) corrupt("stream truncated");
      xs = (xs << 32) | *in++;
    }
    int32_t v;
    if (__builtin_expect(s < m.n, 1)) {
      v = static_cast<int32_t>(m.offset + s);
    } else {
      const DecState e = get_escape(xs, in, end, m);
      xs = e.x;
      in = e.in;
      v = e.value;
    }
    out[i] = v;
    ctx.add(x, p, v);
  });
  for (int l = 0; l < lanes; ++l)
    if (st[l] != kLow) corrupt("stream does not match the shape, models or dictionary (final state)");
  if (in != end) corrupt("stream has unread data (wrong shape or trailing bytes)");
}

}  // namespace

void context_map(const int32_t* y, const Layout& L, const StreamParams& params, int threads, uint8_t* ctx_out) {
  check_params(params);
  const int64_t N = L.num_symbols(), S = num_segments(N, params.segment_shift);
  parallel_for(S, threads, [&](int64_t s) {
    const Range r = segment_range(N, S, s);
    SegmentContexts ctx(L, r.a, r.b);
    walk(L, r.a, r.b, [&](int64_t c, int64_t row) { ctx.start_row(c, row); },
         [&](int64_t i, int64_t x, int64_t p, int64_t) {
           ctx_out[i] = static_cast<uint8_t>(ctx.at(x, p));
           ctx.add(x, p, y[i]);
         });
  });
}

void check_context_layout(const Layout& L, const int32_t* families, const ModelSet& tables) {
  check_shape(L);
  if (tables.size() == 0 || tables.size() % kNumContexts)
    throw ArgumentError{"context tables: the number of models must be a positive multiple of " +
                        std::to_string(kNumContexts)};
  const int64_t F = static_cast<int64_t>(tables.size() / kNumContexts);
  const int64_t nb = L.num_blocks();
  for (int64_t i = 0; i < nb; ++i)
    if (families[i] < 0 || families[i] >= F)
      throw ArgumentError{"families: index " + std::to_string(families[i]) + " at block " + std::to_string(i) +
                          " is outside [0, " + std::to_string(F) + ")"};
}

EncodedStream encode_context_stream(const int32_t* symbols, const int32_t* families, const Layout& L,
                                    const ModelSet& tables, int threads, bool checksum,
                                    const StreamParams& params, const uint8_t* contexts) {
  SegmentArena seg(L.num_symbols(), params);
  const std::vector<View> view_list = make_views(tables, false);
  const Views views{view_list.data(), static_cast<uint32_t>(view_list.size())};
  parallel_for(seg.S, threads, [&](int64_t s) {
    const Range r = seg.range(s);
    seg.done(s, encode_segment(symbols, contexts, families, L, views, r.a, r.b, seg.lanes, seg.end(s)));
  });
  return seg.finish(checksum);
}

std::vector<uint8_t> encode_context(const int32_t* symbols, const int32_t* families, const Layout& L,
                                    const ModelSet& tables, int threads, bool checksum,
                                    const StreamParams& params, const uint8_t* contexts) {
  EncodedStream e = encode_context_stream(symbols, families, L, tables, threads, checksum, params, contexts);
  std::vector<uint8_t> out(e.size());
  e.write(out.data());
  return out;
}

void decode_context(const uint8_t* data, size_t size, const int32_t* families, const Layout& L,
                    const ModelSet& tables, int threads, int32_t* out) {
  const std::vector<View> view_list = make_views(tables, false);
  const Views views{view_list.data(), static_cast<uint32_t>(view_list.size())};
  decode_segments(data, size, L.num_symbols(), tables.precision, threads,
                  [&](int64_t, Range r, const uint32_t* in, const uint32_t* end, int lanes) {
                    decode_segment(in, end, families, L, views, tables.precision, r.a, r.b, lanes, out);
                  });
}

void context_block_costs(const int32_t* y, const uint8_t* ctx, const Layout& L, const ModelSet& tables,
                         bool own_channel, int64_t first, int64_t count_arg, int threads, double* costs) {
  check_shape(L);
  const int64_t F = static_cast<int64_t>(tables.size() / kNumContexts);
  if (tables.size() % kNumContexts) throw ArgumentError{"context tables: not a multiple of the contexts"};
  if (own_channel ? F < L.C : (first < 0 || count_arg < 0 || first + count_arg > F))
    throw ArgumentError{"context tables: fewer families than asked for"};
  // Dense costs of the values in [-R, R] for every context, families innermost:
  // dense[(k * V + v + R) * G + g], G = count (none for own_channel: with one family
  // per block, the channel's, direct lookups are cheaper).
  constexpr int R = 7, V = 2 * R + 1;
  const int64_t G = own_channel ? 0 : count_arg, base = first;
  std::vector<double> dense(static_cast<size_t>(kNumContexts) * V * G);
  parallel_for(G, threads, [&](int64_t g) {
    for (int k = 0; k < kNumContexts; ++k) {
      const Model& m = tables.model(static_cast<size_t>((base + g) * kNumContexts + k));
      for (int v = -R; v <= R; ++v) dense[(static_cast<size_t>(k) * V + v + R) * G + g] = symbol_cost(m, v);
    }
  });
  const int64_t nby = L.nby(), nbx = L.nbx(), HW = L.H * L.W;
  parallel_for(L.C * nby, threads, [&](int64_t cb) {
    const int64_t c = cb / nby, by = cb % nby;
    // Counts of the (context, value) pairs of one block: in-window pairs in a dense array
    // (only the touched entries are reset), the rest (escapes) in a short list.
    std::vector<uint32_t> count(static_cast<size_t>(kNumContexts) * V, 0);
    std::vector<uint32_t> touched;
    struct Wide {
      int32_t value;
      uint8_t ctx;
    };
    std::vector<Wide> wide;
    for (int64_t bx = 0; bx < nbx; ++bx) {
      touched.clear();
      wide.clear();
      const int64_t r1 = std::min(L.H, (by + 1) * L.bh), x1 = std::min(L.W, (bx + 1) * L.bw);
      for (int64_t r = by * L.bh; r < r1; ++r) {
        const int64_t row = c * HW + r * L.W;
        for (int64_t x = bx * L.bw; x < x1; ++x) {
          const int32_t v = y[row + x];
          const uint8_t k = ctx[row + x];
          if (v >= -R && v <= R) {
            const uint32_t key = static_cast<uint32_t>(k * V + v + R);
            if (count[key]++ == 0) touched.push_back(key);
          } else {
            wide.push_back({v, k});
          }
        }
      }
      const int64_t block = cb * nbx + bx;
      if (own_channel) {
        double bits = 0;
        for (uint32_t key : touched) {
          const Model& m = tables.model(static_cast<size_t>(c * kNumContexts + key / V));
          bits += count[key] * symbol_cost(m, static_cast<int32_t>(key % V) - R);
        }
        for (const Wide& w : wide) bits += symbol_cost(tables.model(static_cast<size_t>(c * kNumContexts + w.ctx)), w.value);
        costs[block] = bits;
      } else {
        double* out = costs + block * count_arg;
        std::fill(out, out + count_arg, 0.0);
        for (uint32_t key : touched) {
          const double* row = dense.data() + static_cast<size_t>(key) * G;
          const double n = count[key];
          for (int64_t f = 0; f < count_arg; ++f) out[f] += n * row[f];
        }
        for (const Wide& w : wide)
          for (int64_t f = 0; f < count_arg; ++f)
            out[f] += symbol_cost(tables.model(static_cast<size_t>((first + f) * kNumContexts + w.ctx)), w.value);
      }
      for (uint32_t key : touched) count[key] = 0;
    }
  });
}

}  // namespace ldem
