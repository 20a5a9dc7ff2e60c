#include "ldem/select.h"

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#include "ldem/simd.h"
#ifdef LDEM_X86_DISPATCH
#include <immintrin.h>
#define LDEM_AVX512_ARGMIN 1
#endif

#include <algorithm>
#include <cmath>
#include <limits>

#include "ldem/tables.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

// dst[k] += src[k]: every k on its own, so the result is the same at any vector width.
// Built twice: for the baseline and for AVX-512 (chosen by simd_level()).
using AddInto = void (*)(double* dst, const double* src, int64_t K);

void add_into(double* dst, const double* src, int64_t K) {
  for (int64_t k = 0; k < K; ++k) dst[k] += src[k];
}

#ifdef LDEM_X86_DISPATCH
LDEM_TARGET("avx512f") void add_into_avx512(double* dst, const double* src, int64_t K) {
  for (int64_t k = 0; k < K; ++k) dst[k] += src[k];
}
#endif

AddInto pick_add_into() {
#ifdef LDEM_X86_DISPATCH
  if (simd_level() >= SimdLevel::kAvx512) return add_into_avx512;
#endif
  return add_into;
}

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

// min(v, row[k] + idx[k] for k < n): with sse2, two columns at a time without branches.
double min_of_sum(const double* row, const double* idx, int64_t n, double v, bool sse2) {
  int64_t k = 0;
#ifdef __SSE2__
  if (sse2) {
    __m128d m = _mm_set1_pd(v);
    for (; k + 2 <= n; k += 2) m = _mm_min_pd(m, _mm_add_pd(_mm_loadu_pd(row + k), _mm_loadu_pd(idx + k)));
    v = std::min(_mm_cvtsd_f64(m), _mm_cvtsd_f64(_mm_unpackhi_pd(m, m)));
  }
#else
  (void)sse2;
#endif
  for (; k < n; ++k) v = std::min(v, row[k] + idx[k]);
  return v;
}

// The first k minimising cost[k] + idx[k] over the columns a[0..F) then b[0..I) (finite
// sums). The minimum is found two columns at a time without branches, then located by
// an exact comparison of the same sums: the index a sequential strict-less scan gives,
// whatever order min_of_sum visits the columns in (sse2 or not).
// REQUIRES: F >= 1.
int32_t first_argmin_of_sum(const double* a, int64_t F, const double* b, int64_t I, const double* idx,
                            bool sse2) {
  const double v = min_of_sum(b, idx + F, I, min_of_sum(a, idx, F, a[0] + idx[0], sse2), sse2);
  for (int64_t k = 0; k < F; ++k)
    if (a[k] + idx[k] == v) return static_cast<int32_t>(k);
  for (int64_t k = 0; k < I; ++k)
    if (b[k] + idx[F + k] == v) return static_cast<int32_t>(F + k);
  return 0;
}

#ifdef LDEM_AVX512_ARGMIN
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

// first_argmin_of_sum for blocks [b, b + R) into categories; returns whether any changed.
template <int R>
__attribute__((target("avx512f"), always_inline)) inline bool choose_rows(const double* pf, int64_t F,
                                                                         const double* pi, int64_t I,
                                                                         const double* idx, int64_t b,
                                                                         int32_t* categories) {
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
    changed |= categories[b + q] != k;
    categories[b + q] = k;
  }
  return changed;
}

// categories[b] = first_argmin_of_sum for every block (columns a[b, 0..F) then b[b, 0..I)),
// four blocks at a time; returns whether any category changed.
__attribute__((target("avx512f"))) bool choose_avx512(const double* pf, int64_t F, const double* pi, int64_t I,
                                                      const double* idx, int64_t Bp, int32_t* categories) {
  bool changed = false;
  int64_t b = 0;
  for (; b + 4 <= Bp; b += 4) changed |= choose_rows<4>(pf, F, pi, I, idx, b, categories);
  for (; b < Bp; ++b) changed |= choose_rows<1>(pf, F, pi, I, idx, b, categories);
  return changed;
}

// The AVX2 build of choose_avx512: the same per-lane scans, 4 columns per register.
LDEM_TARGET("avx2") inline int32_t lanes_first_argmin_avx2(__m256d best, __m256i arg) {
  alignas(32) double v[4];
  alignas(32) int64_t k[4];
  _mm256_store_pd(v, best);
  _mm256_store_si256(reinterpret_cast<__m256i*>(k), arg);
  const double m = std::min(std::min(v[0], v[1]), std::min(v[2], v[3]));
  int64_t first = INT64_MAX;
  for (int l = 0; l < 4; ++l)
    if (v[l] == m) first = std::min(first, k[l]);
  return first == INT64_MAX ? 0 : static_cast<int32_t>(first);
}

template <int R>
LDEM_TARGET("avx2") __attribute__((always_inline)) inline void argmin_rows_avx2(
    const double* cost, int64_t stride, const double* idx, int64_t n, int64_t k0, __m256d* best, __m256i* arg) {
  __m256i k = _mm256_add_epi64(_mm256_set1_epi64x(k0), _mm256_set_epi64x(3, 2, 1, 0));
  const __m256i lane = _mm256_set_epi64x(3, 2, 1, 0);
  for (int64_t j = 0; j < n; j += 4) {
    const __m256i live = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n - j), lane);  // all ones where j + lane < n
    const __m256d ix = _mm256_maskload_pd(idx + j, live);
    for (int q = 0; q < R; ++q) {
      const __m256d v = _mm256_add_pd(_mm256_maskload_pd(cost + q * stride + j, live), ix);
      const __m256d lt = _mm256_and_pd(_mm256_cmp_pd(v, best[q], _CMP_LT_OQ), _mm256_castsi256_pd(live));
      best[q] = _mm256_blendv_pd(best[q], v, lt);
      arg[q] = _mm256_castpd_si256(_mm256_blendv_pd(_mm256_castsi256_pd(arg[q]), _mm256_castsi256_pd(k), lt));
    }
    k = _mm256_add_epi64(k, _mm256_set1_epi64x(4));
  }
}

template <int R>
LDEM_TARGET("avx2") __attribute__((always_inline)) inline bool choose_rows_avx2(
    const double* pf, int64_t F, const double* pi, int64_t I, const double* idx, int64_t b, int32_t* categories) {
  __m256d best[R];
  __m256i arg[R];
  for (int q = 0; q < R; ++q) {
    best[q] = _mm256_set1_pd(std::numeric_limits<double>::infinity());
    arg[q] = _mm256_set1_epi64x(INT64_MAX);
  }
  argmin_rows_avx2<R>(pf + b * F, F, idx, F, 0, best, arg);
  if (I) argmin_rows_avx2<R>(pi + b * I, I, idx + F, I, F, best, arg);
  bool changed = false;
  for (int q = 0; q < R; ++q) {
    const int32_t k = lanes_first_argmin_avx2(best[q], arg[q]);
    changed |= categories[b + q] != k;
    categories[b + q] = k;
  }
  return changed;
}

LDEM_TARGET("avx2") bool choose_avx2(const double* pf, int64_t F, const double* pi, int64_t I, const double* idx,
                                     int64_t Bp, int32_t* categories) {
  bool changed = false;
  int64_t b = 0;
  for (; b + 4 <= Bp; b += 4) changed |= choose_rows_avx2<4>(pf, F, pi, I, idx, b, categories);
  for (; b < Bp; ++b) changed |= choose_rows_avx2<1>(pf, F, pi, I, idx, b, categories);
  return changed;
}
#pragma GCC diagnostic pop
#endif

}  // namespace

const char* selection_kernel() {
  const SimdLevel level = simd_level();
#ifdef LDEM_AVX512_ARGMIN
  if (level >= SimdLevel::kAvx512) return "avx512";
  if (level >= SimdLevel::kAvx2) return "avx2";
#endif
#ifdef __SSE2__
  if (level >= SimdLevel::kSse2) return "sse2";
#endif
  (void)level;
  return "scalar";
}

const char* pooling_kernel() { return pick_add_into() == add_into ? "baseline" : "avx512"; }

std::vector<double> pool_costs(const double* costs, int64_t A, int64_t C, int64_t nby, int64_t nbx,
                               int64_t fy, int64_t fx) {
  const int64_t py = (nby + fy - 1) / fy, px = (nbx + fx - 1) / fx;
  std::vector<double> out(static_cast<size_t>(C * py * px * A), 0.0);
  if (A == 0) return out;
  const AddInto add_row = pick_add_into();
  for (int64_t c = 0; c < C; ++c)
    for (int64_t by = 0; by < nby; ++by) {
      double* row = out.data() + (c * py + by / fy) * px * A;
      const double* src = costs + (c * nby + by) * nbx * A;
      for (int64_t bx = 0; bx < nbx; ++bx) add_row(row + (bx / fx) * A, src + bx * A, A);
    }
  return out;
}

std::vector<double> map_index_bits(const std::vector<uint64_t>& counts, int precision) {
  std::vector<uint64_t> w(counts);
  w.push_back(0);  // the escape slot, empty
  const std::vector<uint32_t> f = quantize_counts(w, precision);
  std::vector<double> bits(counts.size());
  for (size_t k = 0; k < counts.size(); ++k) bits[k] = precision - std::log2(static_cast<double>(f[k]));
  return bits;
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
  sel.categories.assign(Bp, 0);
  std::vector<double> idx(A, std::log2(static_cast<double>(std::max<int64_t>(A, 1))));
  // The same categories at every level (see first_argmin_of_sum and choose_avx512).
  const SimdLevel level = simd_level();
  const bool sse2 = level >= SimdLevel::kSse2;
#ifdef LDEM_AVX512_ARGMIN
  const bool avx512 = level >= SimdLevel::kAvx512, avx2 = level >= SimdLevel::kAvx2;
#endif
  auto choose = [&] {
#ifdef LDEM_AVX512_ARGMIN
    if (avx512) return choose_avx512(pf, F, pi, I, idx.data(), Bp, sel.categories.data());
    if (avx2) return choose_avx2(pf, F, pi, I, idx.data(), Bp, sel.categories.data());
#endif
    bool changed = false;
    for (int64_t b = 0; b < Bp; ++b) {
      const int32_t arg = first_argmin_of_sum(pf + b * F, F, I ? pi + b * I : nullptr, I, idx.data(), sse2);
      changed |= sel.categories[b] != arg;
      sel.categories[b] = arg;
    }
    return changed;
  };
  auto index_costs = [&] {
    std::vector<uint64_t> counts(A, 0);
    for (int32_t k : sel.categories) ++counts[k];
    idx = map_index_bits(counts, precision);
  };
  choose();
  for (int r = 0; r < rounds; ++r) {
    index_costs();
    if (!choose()) break;
  }
  index_costs();
  for (int64_t b = 0; b < Bp; ++b) {
    sel.data_bits += cost(b, sel.categories[b]);
    sel.map_bits += idx[sel.categories[b]];
  }
  return sel;
}


std::vector<Selection> select_each(const std::vector<SelectionInput>& grids, int precision, int rounds,
                                   int threads) {
  std::vector<Selection> out(grids.size());
  parallel_for(static_cast<int64_t>(grids.size()), threads, [&](int64_t j) {
    const SelectionInput& s = grids[j];
    out[j] = select_pooled(s.fixed, s.F, s.image, s.I, s.C, s.nby, s.nbx, s.fy, s.fx, precision, rounds);
  });
  return out;
}

ImageModelFit fit_image_models(const BlockHistograms& h, std::vector<int64_t> cluster, int64_t K, int32_t lo,
                               int64_t V, int table_bits, int precision, const double* fixed_best,
                               double penalty, int iterations, int threads) {
  const int64_t B = h.num_blocks();
  ImageModelFit fit;
  std::vector<int32_t> cluster32(B);
  std::vector<int64_t> dense, outside, next(B);
  std::vector<double> best(B);
  for (int it = 0; it < std::max(1, iterations); ++it) {
    for (int64_t b = 0; b < B; ++b) cluster32[b] = static_cast<int32_t>(std::max<int64_t>(cluster[b], -1));
    dense.assign(static_cast<size_t>(K * V), 0);
    outside.assign(static_cast<size_t>(K), 0);
    h.accumulate_clusters(cluster32.data(), K, lo, V, dense.data(), outside.data());
    ImageTables tables = scale_cluster_counts(dense.data(), K, V, lo, table_bits);
    if (tables.size() == 0) return ImageModelFit{};
    std::vector<Model> models = image_models(tables, precision);
    std::vector<const Model*> ptrs;
    for (const Model& m : models) ptrs.push_back(&m);
    const int64_t I = static_cast<int64_t>(models.size());
    std::vector<double> costs(static_cast<size_t>(B * I));
    h.costs(ptrs, threads, costs.data());
    assign_clusters(costs.data(), B, I, fixed_best, penalty, next.data(), best.data());
    fit.tables = std::move(tables);
    fit.models = std::move(models);
    fit.costs = std::move(costs);
    fit.best = best;
    K = I;
    if (next == cluster) break;
    cluster = next;
  }
  fit.cluster = std::move(cluster);
  return fit;
}

}  // namespace ldem
