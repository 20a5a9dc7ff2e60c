#include "ldem/histograms.h"

#include <algorithm>
#include <cmath>

#include "ldem/simd.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

constexpr int32_t kWinSize = 512;  // blocks spanning fewer values are counted densely
constexpr uint32_t kWinMask = kWinSize - 1;
static_assert((kWinSize & (kWinSize - 1)) == 0, "the dense window is a power of two");

// o[k] += n * row[k]: every k on its own, so the result is the same at any vector
// width (no fused multiply-add: -ffp-contract=off). Built twice: for the baseline and
// for AVX-512 (chosen by simd_level()).
using AddScaled = void (*)(double* o, const double* row, double n, int64_t K);

void add_scaled(double* o, const double* row, double n, int64_t K) {
  for (int64_t k = 0; k < K; ++k) o[k] += n * row[k];
}

#ifdef LDEM_X86_DISPATCH
LDEM_TARGET("avx512f") void add_scaled_avx512(double* o, const double* row, double n, int64_t K) {
  for (int64_t k = 0; k < K; ++k) o[k] += n * row[k];
}
#endif

AddScaled pick_add_scaled() {
#ifdef LDEM_X86_DISPATCH
  if (simd_level() >= SimdLevel::kAvx512) return add_scaled_avx512;
#endif
  return add_scaled;
}

// Splits [0, n) into about `parts` chunks for parallel_for.
int64_t chunk_count(int64_t n, int threads) {
  const int64_t t = threads <= 0 ? hardware_threads() : threads;
  return std::max<int64_t>(1, std::min<int64_t>(n, 4 * t));
}

struct HistRows {
  std::vector<int64_t> sizes;  // distinct values per block of the rows
  std::vector<int32_t> values, counts;
};

// Histograms of the blocks of block rows [r0, r1): integers only, so every build of it
// gives the same result. Built twice (histogram_rows, histogram_rows_avx2: the min/max
// and counter sums vectorise), chosen by simd_level().
__attribute__((always_inline)) inline void histogram_rows_body(const int32_t* symbols, const Layout& L,
                                                               int64_t r0, int64_t r1, HistRows& row) {
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

void histogram_rows(const int32_t* symbols, const Layout& L, int64_t r0, int64_t r1, HistRows& row) {
  histogram_rows_body(symbols, L, r0, r1, row);
}

#ifdef LDEM_X86_DISPATCH
LDEM_TARGET("avx2") void histogram_rows_avx2(const int32_t* symbols, const Layout& L, int64_t r0, int64_t r1,
                                             HistRows& row) {
  histogram_rows_body(symbols, L, r0, r1, row);
}
#endif

using HistogramRows = void (*)(const int32_t* symbols, const Layout& L, int64_t r0, int64_t r1, HistRows& row);

HistogramRows pick_histogram_rows() {
#ifdef LDEM_X86_DISPATCH
  if (simd_level() >= SimdLevel::kAvx2) return histogram_rows_avx2;
#endif
  return histogram_rows;
}

}  // namespace

const char* histogram_counts_kernel() {
  return pick_histogram_rows() == histogram_rows ? "baseline" : "avx2";
}

const char* histogram_costs_kernel() { return pick_add_scaled() == add_scaled ? "baseline" : "avx512"; }

BlockHistograms::BlockHistograms(const int32_t* symbols, const Layout& L, int threads) {
  const int64_t nbx = L.nbx(), rows = L.C * L.nby();
  // Chunks of block rows, each with its own counters and output.
  const int64_t chunks = chunk_count(rows, threads);
  std::vector<HistRows> out(chunks);
  const HistogramRows rows_of = pick_histogram_rows();
  parallel_for(chunks, threads, [&](int64_t t) {
    rows_of(symbols, L, rows * t / chunks, rows * (t + 1) / chunks, out[t]);
  });
  ptr.resize(rows * nbx + 1);
  ptr[0] = 0;
  int64_t b = 0;
  for (const HistRows& row : out)
    for (int64_t s : row.sizes) {
      ptr[b + 1] = ptr[b] + s;
      ++b;
    }
  values.reserve(ptr[b]);
  counts.reserve(ptr[b]);
  for (const HistRows& row : out) {
    values.insert(values.end(), row.values.begin(), row.values.end());
    counts.insert(counts.end(), row.counts.begin(), row.counts.end());
  }
  const int64_t per_channel = L.nby() * nbx;
  channel.resize(rows * nbx);
  for (int64_t i = 0; i < rows * nbx; ++i) channel[i] = static_cast<int32_t>(i / per_channel);
  num_channels = rows * nbx > 0 ? static_cast<int32_t>(L.C) : 0;
}

BlockHistograms block_histograms(const int32_t* symbols, const Layout& layout, int threads) {
  return BlockHistograms(symbols, layout, threads);
}

BlockHistograms BlockHistograms::concat(const std::vector<const BlockHistograms*>& parts) {
  BlockHistograms h;
  for (const BlockHistograms* p : parts) {
    const int64_t base = h.ptr.back();
    for (int64_t b = 1; b < static_cast<int64_t>(p->ptr.size()); ++b) h.ptr.push_back(base + p->ptr[b]);
    h.values.insert(h.values.end(), p->values.begin(), p->values.end());
    h.counts.insert(h.counts.end(), p->counts.begin(), p->counts.end());
    h.channel.insert(h.channel.end(), p->channel.begin(), p->channel.end());
    h.num_channels = std::max(h.num_channels, p->num_channels);
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
  const AddScaled add_row = pick_add_scaled();
  parallel_for(chunks, threads, [&](int64_t t) {
    const int64_t b0 = B * t / chunks, b1 = B * (t + 1) / chunks;
    for (int64_t b = b0; b < b1; ++b) {
      double* o = out + b * K;
      std::fill(o, o + K, 0.0);
      for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) {
        const double n = counts[i];
        const int64_t v = static_cast<int64_t>(values[i]) - lo;
        if (v >= 0 && v < V) {
          add_row(o, table.data() + v * K, n, K);
        } else {
          for (int64_t k = 0; k < K; ++k) o[k] += n * symbol_cost(*models[k], values[i]);
        }
      }
    }
  });
}

void BlockHistograms::costs(const std::vector<const Model*>& models, int threads, double* out) const {
  histogram_costs(ptr.data(), num_blocks(), values.data(), counts.data(), models, threads, out);
}

void BlockHistograms::assigned_costs(const std::vector<const Model*>& models, const int32_t* assign,
                                     int threads, double* out) const {
  const int64_t B = num_blocks();
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

void BlockHistograms::channel_costs(const std::vector<const Model*>& models, int threads, double* out) const {
  assigned_costs(models, channel.data(), threads, out);
}

void BlockHistograms::self_costs(double* out) const {
  for (int64_t b = 0; b < num_blocks(); ++b) {
    double n = 0, s = 0;
    for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i) n += counts[i];
    for (int64_t i = ptr[b]; i < ptr[b + 1]; ++i)
      if (counts[i] > 0) s += counts[i] * std::log2(n / counts[i]);
    out[b] = s;
  }
}

void BlockHistograms::accumulate_clusters(const int32_t* cluster, int64_t K, int32_t lo, int64_t V,
                                          int64_t* out, int64_t* outside) const {
  for (int64_t b = 0; b < num_blocks(); ++b) {
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

std::pair<int32_t, int64_t> BlockHistograms::window(int32_t half) const {
  if (values.empty()) return {0, 1};
  const auto [mn, mx] = std::minmax_element(values.begin(), values.end());
  const int64_t lo = std::max<int64_t>(*mn, -static_cast<int64_t>(half));
  const int64_t hi = std::min<int64_t>(*mx, static_cast<int64_t>(half) - 1);
  if (hi < lo) return {0, 1};
  return {static_cast<int32_t>(lo), hi - lo + 1};
}

}  // namespace ldem
