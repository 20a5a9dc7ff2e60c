#include "ldem/local.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define LDEM_AVX512_ARGMIN 1
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "ldem/thread_pool.h"

namespace ldem {
namespace {

constexpr int32_t kWinSize = 512;  // blocks spanning fewer values are counted densely
constexpr uint32_t kWinMask = kWinSize - 1;
static_assert((kWinSize & (kWinSize - 1)) == 0, "the dense window is a power of two");

// o[k] += n * row[k] and dst[k] += src[k]: every k on its own, so the result is the same
// at any vector width (no fused multiply-add: -ffp-contract=off). Cloned for AVX-512.
#if defined(__x86_64__) && defined(__GNUC__)
#define LDEM_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define LDEM_CLONES
#endif
LDEM_CLONES void add_scaled(double* o, const double* row, double n, int64_t K) {
  for (int64_t k = 0; k < K; ++k) o[k] += n * row[k];
}
LDEM_CLONES void add_into(double* dst, const double* src, int64_t K) {
  for (int64_t k = 0; k < K; ++k) dst[k] += src[k];
}

// Splits [0, n) into about `parts` chunks for parallel_for.
int64_t chunk_count(int64_t n, int threads) {
  const int64_t t = threads <= 0 ? hardware_threads() : threads;
  return std::max<int64_t>(1, std::min<int64_t>(n, 4 * t));
}

}  // namespace

namespace {

struct HistRows {
  std::vector<int64_t> sizes;  // distinct values per block of the rows
  std::vector<int32_t> values, counts;
};

// Histograms of the blocks of block rows [r0, r1) (cloned for AVX2: the min/max and
// counter sums vectorise).
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("avx2", "default")))
#endif
void histogram_rows(const int32_t* symbols, const Layout& L, int64_t r0, int64_t r1, HistRows& row) {
  const int64_t nby = L.nby(), nbx = L.nbx();
  // Four interleaved sub-histograms: runs of one value (mostly zeros) would otherwise
  // serialise on a single counter. Zeroed once, then cleared after each block.
  std::vector<int32_t> dense_store(5 * kWinSize, 0);
  int32_t* d0 = dense_store.data();
  int32_t* d1 = d0 + kWinSize;
  int32_t* d2 = d1 + kWinSize;
  int32_t* d3 = d2 + kWinSize;
  int32_t* sum = d3 + kWinSize;
  std::vector<int32_t> wide;
  row.sizes.reserve(static_cast<size_t>((r1 - r0) * nbx));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t c = r / nby, by = r % nby;
    const int64_t y0 = by * L.bh, y1 = std::min(L.H, y0 + L.bh);
    for (int64_t bx = 0; bx < nbx; ++bx) {
      const int64_t x0 = bx * L.bw, x1 = std::min(L.W, x0 + L.bw);
      int32_t lo = INT32_MAX, hi = INT32_MIN;
      for (int64_t y = y0; y < y1; ++y) {
        const int32_t* p = symbols + (c * L.H + y) * L.W;
        for (int64_t x = x0; x < x1; ++x) {
          lo = std::min(lo, p[x]);
          hi = std::max(hi, p[x]);
        }
      }
      const size_t before = row.values.size();
      if (static_cast<int64_t>(hi) - lo < kWinSize) {
        const uint32_t base = static_cast<uint32_t>(lo);
        for (int64_t y = y0; y < y1; ++y) {
          const int32_t* p = symbols + (c * L.H + y) * L.W;
          int64_t x = x0;
          // The mask keeps every index inside its counter even if the symbols change
          // between the two passes (a caller's buffer written by another thread); for
          // values within [lo, hi] it changes nothing.
          for (; x + 4 <= x1; x += 4) {
            ++d0[(static_cast<uint32_t>(p[x]) - base) & kWinMask];
            ++d1[(static_cast<uint32_t>(p[x + 1]) - base) & kWinMask];
            ++d2[(static_cast<uint32_t>(p[x + 2]) - base) & kWinMask];
            ++d3[(static_cast<uint32_t>(p[x + 3]) - base) & kWinMask];
          }
          for (; x < x1; ++x) ++d0[(static_cast<uint32_t>(p[x]) - base) & kWinMask];
        }
        const int64_t span = static_cast<int64_t>(hi) - lo + 1;
        for (int64_t i = 0; i < span; ++i) sum[i] = d0[i] + d1[i] + d2[i] + d3[i];
        std::fill(d0, d0 + span, 0);
        std::fill(d1, d1 + span, 0);
        std::fill(d2, d2 + span, 0);
        std::fill(d3, d3 + span, 0);
        for (int64_t i = 0; i < span; ++i)
          if (sum[i]) {
            row.values.push_back(static_cast<int32_t>(lo + i));
            row.counts.push_back(sum[i]);
          }
      } else {  // wide spread: sort
        wide.clear();
        for (int64_t y = y0; y < y1; ++y) {
          const int32_t* p = symbols + (c * L.H + y) * L.W;
          wide.insert(wide.end(), p + x0, p + x1);
        }
        std::sort(wide.begin(), wide.end());
        for (size_t w = 0; w < wide.size();) {
          size_t j = w;
          while (j < wide.size() && wide[j] == wide[w]) ++j;
          row.values.push_back(wide[w]);
          row.counts.push_back(static_cast<int32_t>(j - w));
          w = j;
        }
      }
      row.sizes.push_back(static_cast<int64_t>(row.values.size() - before));
    }
  }
}

}  // namespace

BlockHistograms block_histograms(const int32_t* symbols, const Layout& L, int threads) {
  const int64_t nbx = L.nbx(), rows = L.C * L.nby();
  // Chunks of block rows, each with its own counters and output.
  const int64_t chunks = chunk_count(rows, threads);
  std::vector<HistRows> out(chunks);
  parallel_for(chunks, threads, [&](int64_t t) {
    histogram_rows(symbols, L, rows * t / chunks, rows * (t + 1) / chunks, out[t]);
  });
  BlockHistograms h;
  h.ptr.resize(rows * nbx + 1);
  h.ptr[0] = 0;
  int64_t b = 0;
  for (const HistRows& row : out)
    for (int64_t s : row.sizes) {
      h.ptr[b + 1] = h.ptr[b] + s;
      ++b;
    }
  h.values.reserve(h.ptr[b]);
  h.counts.reserve(h.ptr[b]);
  for (const HistRows& row : out) {
    h.values.insert(h.values.end(), row.values.begin(), row.values.end());
    h.counts.insert(h.counts.end(), row.counts.begin(), row.counts.end());
  }
  return h;
}

void histogram_costs(const int64_t* ptr, int64_t B, const int32_t* values, const int32_t* counts,
                     const std::vector<const Model*>& models, int threads, double* out) {
  const int64_t K = static_cast<int64_t>(models.size());
  if (B == 0) return;
  if (K == 0) return;
  // Value-major cost table over the window of observed values (clipped), so the
  // inner loop over models is contiguous; values outside use symbol_cost().
  int64_t lo = INT32_MAX, hi = INT32_MIN;
  for (int64_t i = 0; i < ptr[B]; ++i) {
    lo = std::min<int64_t>(lo, values[i]);
    hi = std::max<int64_t>(hi, values[i]);
  }
  lo = std::max<int64_t>(lo, -4096);
  hi = std::min<int64_t>(hi, 4095);
  const int64_t V = hi >= lo ? hi - lo + 1 : 0;
  std::vector<double> table(static_cast<size_t>(V * K));
  for (int64_t k = 0; k < K; ++k)
    for (int64_t v = 0; v < V; ++v)
      table[v * K + k] = symbol_cost(*models[k], static_cast<int32_t>(lo + v));
  const int64_t chunks = chunk_count(B, threads);
  parallel_for(chunks, threads, [&](int64_t t) {
    const int64_t b0 = B * t / chunks, b1 = B * (t + 1) / chunks;
    for (int64_t b = b0; b < b1; ++b) {
      double* o = out + b * K;
      std::fill(o, o + K, 0.0);
      for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) {
        const double n = counts[i];
        const int64_t v = static_cast<int64_t>(values[i]) - lo;
        if (v >= 0 && v < V) {
          add_scaled(o, table.data() + v * K, n, K);
        } else {
          for (int64_t k = 0; k < K; ++k) o[k] += n * symbol_cost(*models[k], values[i]);
        }
      }
    }
  });
}

void assigned_costs(const int64_t* ptr, int64_t B, const int32_t* values, const int32_t* counts,
                    const std::vector<const Model*>& models, const int32_t* assign, int threads,
                    double* out) {
  const int64_t chunks = chunk_count(B, threads);
  parallel_for(chunks, threads, [&](int64_t t) {
    const int64_t b0 = B * t / chunks, b1 = B * (t + 1) / chunks;
    for (int64_t b = b0; b < b1; ++b) {
      const Model& m = *models[assign[b]];
      double bits = 0;
      for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) bits += counts[i] * symbol_cost(m, values[i]);
      out[b] = bits;
    }
  });
}

void accumulate_clusters(const int64_t* ptr, int64_t B, const int32_t* values,
                         const int32_t* counts, const int32_t* cluster, int64_t K, int32_t lo,
                         int64_t V, int64_t* out, int64_t* outside) {
  for (int64_t b = 0; b < B; ++b) {
    const int64_t k = cluster[b];
    if (k < 0 || k >= K) continue;
    for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) {
      const int64_t v = static_cast<int64_t>(values[i]) - lo;
      if (v >= 0 && v < V)
        out[k * V + v] += counts[i];
      else
        outside[k] += counts[i];
    }
  }
}

namespace {
int64_t gamma_bits(uint64_t v) { return 2 * (64 - __builtin_clzll(v)) - 1; }
}  // namespace

void assign_clusters(const double* costs, int64_t B, int64_t K, const double* fixed_best,
                     double penalty, int64_t* cluster, double* best) {
  for (int64_t b = 0; b < B; ++b) {
    const double* row = costs + b * K;
    int64_t arg = 0;
    for (int64_t k = 1; k < K; ++k)
      if (row[k] < row[arg]) arg = k;
    cluster[b] = row[arg] + penalty < fixed_best[b] ? arg : -1;
    best[b] = std::min(fixed_best[b], row[arg]);
  }
}

namespace {

// min(v, row[k] + idx[k] for k < n), two columns at a time without branches.
double min_of_sum(const double* row, const double* idx, int64_t n, double v) {
  int64_t k = 0;
#ifdef __SSE2__
  __m128d m = _mm_set1_pd(v);
  for (; k + 2 <= n; k += 2) m = _mm_min_pd(m, _mm_add_pd(_mm_loadu_pd(row + k), _mm_loadu_pd(idx + k)));
  v = std::min(_mm_cvtsd_f64(m), _mm_cvtsd_f64(_mm_unpackhi_pd(m, m)));
#endif
  for (; k < n; ++k) v = std::min(v, row[k] + idx[k]);
  return v;
}

// The first k minimising cost[k] + idx[k] over the columns a[0..F) then b[0..I) (finite
// sums). The minimum is found two columns at a time without branches, then located by
// an exact comparison of the same sums: the index a sequential strict-less scan gives.
// REQUIRES: F >= 1.
int32_t first_argmin_of_sum(const double* a, int64_t F, const double* b, int64_t I, const double* idx) {
  const double v = min_of_sum(b, idx + F, I, min_of_sum(a, idx, F, a[0] + idx[0]));
  for (int64_t k = 0; k < F; ++k)
    if (a[k] + idx[k] == v) return static_cast<int32_t>(k);
  for (int64_t k = 0; k < I; ++k)
    if (b[k] + idx[F + k] == v) return static_cast<int32_t>(F + k);
  return 0;
}

#ifdef LDEM_AVX512_ARGMIN
bool cpu_has_avx512f() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

// GCC 12's AVX-512 intrinsics trip -Wmaybe-uninitialized on their own _undefined() idiom.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
// The smallest column among the lanes holding the overall minimum: with each lane's first
// minimum, that is the sequential strict-less scan's answer (0 if no column is finite).
__attribute__((target("avx512f"))) inline int32_t lanes_first_argmin(__m512d best, __m512i arg) {
  const double v = _mm512_reduce_min_pd(best);
  const int64_t k = _mm512_mask_reduce_min_epi64(_mm512_cmp_pd_mask(best, _mm512_set1_pd(v), _CMP_EQ_OQ), arg);
  return k == INT64_MAX ? 0 : static_cast<int32_t>(k);
}

// For R rows (row q at cost + q * stride), per lane: the first k of cost[k] + idx[k]
// strictly below best (k = k0 + lane + 8 j). The rows are independent compare-select
// chains.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline void argmin_rows(const double* cost, int64_t stride,
                                                                         const double* idx, int64_t n, int64_t k0,
                                                                         __m512d* best, __m512i* arg) {
  __m512i k = _mm512_add_epi64(_mm512_set1_epi64(k0), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
  for (int64_t j = 0; j < n; j += 8) {
    const __mmask8 live = n - j >= 8 ? static_cast<__mmask8>(0xFF) : static_cast<__mmask8>((1u << (n - j)) - 1);
    const __m512d ix = _mm512_maskz_loadu_pd(live, idx + j);
    for (int q = 0; q < R; ++q) {
      const __m512d v = _mm512_add_pd(_mm512_maskz_loadu_pd(live, cost + q * stride + j), ix);
      const __mmask8 lt = _mm512_mask_cmp_pd_mask(live, v, best[q], _CMP_LT_OQ);
      best[q] = _mm512_mask_mov_pd(best[q], lt, v);
      arg[q] = _mm512_mask_mov_epi64(arg[q], lt, k);
    }
    k = _mm512_add_epi64(k, _mm512_set1_epi64(8));
  }
}

// first_argmin_of_sum for blocks [b, b + R) into choice; returns whether any changed.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline bool choose_rows(const double* pf, int64_t F,
                                                                         const double* pi, int64_t I,
                                                                         const double* idx, int64_t b,
                                                                         int32_t* choice) {
  __m512d best[R];
  __m512i arg[R];
  for (int q = 0; q < R; ++q) {
    best[q] = _mm512_set1_pd(std::numeric_limits<double>::infinity());
    arg[q] = _mm512_set1_epi64(INT64_MAX);
  }
  argmin_rows<R>(pf + b * F, F, idx, F, 0, best, arg);
  if (I) argmin_rows<R>(pi + b * I, I, idx + F, I, F, best, arg);
  bool changed = false;
  for (int q = 0; q < R; ++q) {
    const int32_t k = lanes_first_argmin(best[q], arg[q]);
    changed |= choice[b + q] != k;
    choice[b + q] = k;
  }
  return changed;
}

// choice[b] = first_argmin_of_sum for every block (columns a[b, 0..F) then b[b, 0..I)),
// four blocks at a time; returns whether any choice changed.
__attribute__((target("avx512f"))) bool choose_avx512(const double* pf, int64_t F, const double* pi, int64_t I,
                                                      const double* idx, int64_t Bp, int32_t* choice) {
  bool changed = false;
  int64_t b = 0;
  for (; b + 4 <= Bp; b += 4) changed |= choose_rows<4>(pf, F, pi, I, idx, b, choice);
  for (; b < Bp; ++b) changed |= choose_rows<1>(pf, F, pi, I, idx, b, choice);
  return changed;
}
#pragma GCC diagnostic pop
#endif

}  // namespace

std::vector<double> pool_costs(const double* costs, int64_t A, int64_t C, int64_t nby, int64_t nbx,
                               int64_t fy, int64_t fx) {
  const int64_t py = (nby + fy - 1) / fy, px = (nbx + fx - 1) / fx;
  std::vector<double> out(static_cast<size_t>(C * py * px * A), 0.0);
  if (A == 0) return out;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t by = 0; by < nby; ++by) {
      double* row = out.data() + (c * py + by / fy) * px * A;
      const double* src = costs + (c * nby + by) * nbx * A;
      for (int64_t bx = 0; bx < nbx; ++bx) add_into(row + (bx / fx) * A, src + bx * A, A);
    }
  return out;
}

Selection select_pooled(const double* fixed, int64_t F, const double* image, int64_t I, int64_t C,
                        int64_t nby, int64_t nbx, int64_t fy, int64_t fx, int precision,
                        int rounds) {
  const int64_t A = F + I, py = (nby + fy - 1) / fy, px = (nbx + fx - 1) / fx, Bp = C * py * px;
  // Costs of pooled blocks: the inputs themselves when nothing is pooled.
  const double* pf = fixed;
  const double* pi = image;
  std::vector<double> pooled_f, pooled_i;
  if (fy > 1 || fx > 1) {
    pooled_f = pool_costs(fixed, F, C, nby, nbx, fy, fx);
    pooled_i = pool_costs(image, I, C, nby, nbx, fy, fx);
    pf = pooled_f.data();
    pi = pooled_i.data();
  }
  auto cost = [&](int64_t b, int32_t k) { return k < F ? pf[b * F + k] : pi[b * I + (k - F)]; };
  Selection sel;
  sel.choice.assign(Bp, 0);
  std::vector<double> idx(A, std::log2(static_cast<double>(std::max<int64_t>(A, 1))));
#ifdef LDEM_AVX512_ARGMIN
  const bool avx512 = cpu_has_avx512f();
#endif
  auto choose = [&] {
#ifdef LDEM_AVX512_ARGMIN
    if (avx512) return choose_avx512(pf, F, pi, I, idx.data(), Bp, sel.choice.data());
#endif
    bool changed = false;
    for (int64_t b = 0; b < Bp; ++b) {
      const int32_t arg = first_argmin_of_sum(pf + b * F, F, I ? pi + b * I : nullptr, I, idx.data());
      changed |= sel.choice[b] != arg;
      sel.choice[b] = arg;
    }
    return changed;
  };
  auto index_costs = [&] {
    std::vector<uint64_t> counts(A + 1, 0);  // + an empty escape slot, as the map coder
    for (int32_t k : sel.choice) ++counts[k];
    std::vector<uint32_t> f = quantize_counts(counts, precision);
    for (int64_t k = 0; k < A; ++k) idx[k] = precision - std::log2(static_cast<double>(f[k]));
  };
  choose();
  for (int r = 0; r < rounds; ++r) {
    index_costs();
    if (!choose()) break;
  }
  index_costs();
  for (int64_t b = 0; b < Bp; ++b) {
    sel.data_bits += cost(b, sel.choice[b]);
    sel.map_bits += idx[sel.choice[b]];
  }
  return sel;
}

void block_self_costs(const int64_t* ptr, int64_t B, const int32_t* counts, double* out) {
  for (int64_t b = 0; b < B; ++b) {
    double n = 0, s = 0;
    for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) n += counts[i];
    for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i)
      if (counts[i] > 0) s += counts[i] * std::log2(n / counts[i]);
    out[b] = s;
  }
}

std::vector<uint8_t> gamma_pack(const uint64_t* values, size_t n) {
  std::vector<uint8_t> out;
  uint64_t acc = 0;  // pending bits, fewer than 8 between values
  int nacc = 0;
  auto put = [&](uint64_t v, int nbits) {  // nbits <= 32
    acc = (acc << nbits) | v;
    nacc += nbits;
    while (nacc >= 8) {
      nacc -= 8;
      out.push_back(static_cast<uint8_t>(acc >> nacc));
    }
    acc &= (uint64_t{1} << nacc) - 1;
  };
  for (size_t i = 0; i < n; ++i) {
    const uint64_t v = values[i];
    const int len = 64 - __builtin_clzll(v);  // v >= 1
    for (int z = len - 1; z > 0; z -= std::min(z, 32)) put(0, std::min(z, 32));
    if (len > 32) put(v >> 32, len - 32);
    put(v & (len >= 32 ? 0xFFFFFFFFull : ((uint64_t{1} << len) - 1)), std::min(len, 32));
  }
  if (nacc) out.push_back(static_cast<uint8_t>(acc << (8 - nacc)));
  return out;
}

bool gamma_unpack(const uint8_t* data, size_t size, uint64_t& pos, size_t n, int max_bits,
                  uint64_t* out) {
  const uint64_t total = 8 * static_cast<uint64_t>(size);
  auto bit = [&](uint64_t p) { return (data[p >> 3] >> (7 - (p & 7))) & 1; };
  for (size_t i = 0; i < n; ++i) {
    int zeros = 0;
    for (;;) {
      if (pos >= total) return false;
      if (bit(pos++)) break;
      if (++zeros > max_bits) return false;
    }
    if (pos + zeros > total) return false;
    uint64_t v = 1;
    for (int z = 0; z < zeros; ++z) v = (v << 1) | bit(pos++);
    out[i] = v;
  }
  return true;
}

ScaledTables scale_cluster_counts(const int64_t* counts, int64_t K, int64_t V, int32_t lo,
                                  int table_bits) {
  ScaledTables t;
  t.ptr.push_back(0);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t* row = counts + k * V;
    int64_t a = 0, b = V - 1;
    while (a < V && row[a] == 0) ++a;
    if (a == V) continue;
    while (row[b] == 0) --b;
    unsigned __int128 total = 0;
    for (int64_t i = a; i <= b; ++i) total += static_cast<uint64_t>(row[i]);
    t.rows.push_back(static_cast<int32_t>(k));
    t.offsets.push_back(static_cast<int32_t>(lo + a));
    for (int64_t i = a; i <= b; ++i) {
      const unsigned __int128 num = 2 * (static_cast<unsigned __int128>(row[i]) << table_bits) + total;
      t.q.push_back(static_cast<uint64_t>(num / (2 * total)));
    }
    t.ptr.push_back(static_cast<int64_t>(t.q.size()));
  }
  return t;
}

int64_t scaled_tables_bits(const ScaledTables& t, int table_bits) {
  int64_t bits = gamma_bits(static_cast<uint64_t>(table_bits));
  for (size_t j = 0; j + 1 < t.ptr.size(); ++j) {
    const int64_t o = t.offsets[j];
    const uint64_t zz = o >= 0 ? 2 * static_cast<uint64_t>(o) : 2 * static_cast<uint64_t>(-o) - 1;
    bits += gamma_bits(zz + 1) + gamma_bits(static_cast<uint64_t>(t.ptr[j + 1] - t.ptr[j]));
    for (int64_t i = t.ptr[j]; i < t.ptr[j + 1]; ++i) bits += gamma_bits(t.q[i] + 1);
  }
  return bits;
}

}  // namespace ldem
