// Tests of ldem/select.h: pooling, per-block model selection and Lloyd fitting of image models.
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "ldem/histograms.h"
#include "ldem/select.h"
#include "ldem/tables.h"

#include "check.h"

using namespace ldem;
using namespace ldem::test;


static std::vector<double> uniform(std::mt19937& rng, size_t n, double hi) {
  std::uniform_real_distribution<double> u(0, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

static void test_assign_clusters() {
  const double costs[6] = {5, 3, 9,    // block 0: model 1 (3) + 1 < 10
                           8, 8, 7};   // block 1: model 2 (7) + 1 >= 8: fixed
  const double fixed_best[2] = {10, 8};
  int64_t cluster[2];
  double best[2];
  assign_clusters(costs, 2, 3, fixed_best, 1.0, cluster, best);
  CHECK(cluster[0] == 1 && best[0] == 3);
  CHECK(cluster[1] == -1 && best[1] == 7);
}

static void test_pool_costs_sums_groups() {
  std::mt19937 rng(1);
  const int64_t C = 2, nby = 5, nbx = 7, A = 3, fy = 2, fx = 3;
  const std::vector<double> costs = uniform(rng, C * nby * nbx * A, 100);
  const std::vector<double> pooled = pool_costs(costs.data(), A, C, nby, nbx, fy, fx);
  const int64_t py = 3, px = 3;
  CHECK(static_cast<int64_t>(pooled.size()) == C * py * px * A);
  std::vector<double> ref(pooled.size(), 0.0);
  for (int64_t c = 0; c < C; ++c)
    for (int64_t by = 0; by < nby; ++by)
      for (int64_t bx = 0; bx < nbx; ++bx)
        for (int64_t a = 0; a < A; ++a)
          ref[((c * py + by / fy) * px + bx / fx) * A + a] += costs[((c * nby + by) * nbx + bx) * A + a];
  for (size_t i = 0; i < ref.size(); ++i) CHECK(pooled[i] == ref[i]);
  CHECK(pool_costs(nullptr, 0, C, nby, nbx, fy, fx).empty());
}

static void test_select_prefers_cheap_columns_and_counts_bits() {
  // Block b costs 0 under column b % 3 and 100 elsewhere: each takes its free column.
  const int64_t B = 12, F = 2, I = 1;
  std::vector<double> fixed(B * F, 100), image(B * I, 100);
  for (int64_t b = 0; b < B; ++b) (b % 3 < F ? fixed[b * F + b % 3] : image[b]) = 0;
  const Selection s = select_pooled(fixed.data(), F, image.data(), I, 1, 3, 4, 1, 1, 12, 3);
  CHECK(static_cast<int64_t>(s.categories.size()) == B);
  for (int64_t b = 0; b < B; ++b) CHECK(s.categories[b] == b % 3);
  CHECK(s.data_bits == 0);
  CHECK(std::abs(s.map_bits - B * std::log2(3.0)) < 0.01);  // a third each: log2(3) bits per block
  // Exact ties go to the lowest column.
  const std::vector<double> tied(B * F, 7.0);
  const Selection t = select_pooled(tied.data(), F, nullptr, 0, 1, 3, 4, 1, 1, 12, 3);
  for (int32_t k : t.categories) CHECK(k == 0);
  CHECK(t.data_bits == 7.0 * B);
}

static void test_pooled_selection_equals_selection_of_pooled_costs() {
  std::mt19937 rng(2);
  const int64_t C = 3, nby = 7, nbx = 5, F = 6, I = 4, fy = 2, fx = 2;
  const std::vector<double> fixed = uniform(rng, C * nby * nbx * F, 300);
  const std::vector<double> image = uniform(rng, C * nby * nbx * I, 300);
  const Selection a = select_pooled(fixed.data(), F, image.data(), I, C, nby, nbx, fy, fx, 14, 3);
  const std::vector<double> pf = pool_costs(fixed.data(), F, C, nby, nbx, fy, fx);
  const std::vector<double> pi = pool_costs(image.data(), I, C, nby, nbx, fy, fx);
  const Selection b = select_pooled(pf.data(), F, pi.data(), I, C, 4, 3, 1, 1, 14, 3);
  CHECK(a.categories == b.categories && a.data_bits == b.data_bits && a.map_bits == b.map_bits);
  // select_each gives each grid's select_pooled, at any thread count.
  std::vector<SelectionInput> grids = {{fixed.data(), F, image.data(), I, C, nby, nbx, fy, fx},
                                       {pf.data(), F, nullptr, 0, C, 4, 3, 1, 1},
                                       {fixed.data(), F, image.data(), I, C, nby, nbx, 1, 1}};
  for (int threads : {1, 2, 0}) {
    const std::vector<Selection> each = select_each(grids, 14, 3, threads);
    CHECK(each.size() == grids.size());
    for (size_t j = 0; j < grids.size(); ++j) {
      const SelectionInput& g = grids[j];
      const Selection ref = select_pooled(g.fixed, g.F, g.image, g.I, g.C, g.nby, g.nbx, g.fy, g.fx, 14, 3);
      CHECK(each[j].categories == ref.categories && each[j].data_bits == ref.data_bits);
    }
  }
}

static void test_fit_image_models() {
  // Two regimes: all-zero blocks and blocks of +-20. Fixed models cost 8 bits a symbol.
  const Layout L{1, 16, 16, 4, 4};
  std::vector<int32_t> y(L.num_symbols(), 0);
  std::mt19937 rng(3);
  for (int64_t r = 8; r < 16; ++r)
    for (int64_t x = 0; x < 16; ++x) y[r * 16 + x] = (rng() & 1) ? 20 : -20;
  const BlockHistograms h(y.data(), L, 1);
  const int64_t B = h.num_blocks();
  const std::vector<double> fixed_best(B, 8.0 * 16);
  std::vector<int64_t> cluster(B, -1);
  cluster[0] = 0;   // a zero block
  cluster[15] = 1;  // a +-20 block
  const auto [lo, V] = h.window(2047);
  const ImageModelFit fit = fit_image_models(h, cluster, 2, lo, V, 8, 12, fixed_best.data(), 1.0, 3, 1);
  CHECK(fit.tables.size() == 2 && fit.models.size() == 2);
  CHECK(static_cast<int64_t>(fit.costs.size()) == 2 * B);
  CHECK(static_cast<int64_t>(fit.cluster.size()) == B && static_cast<int64_t>(fit.best.size()) == B);
  for (int64_t b = 0; b < B; ++b) {
    CHECK(fit.cluster[b] == (b < 8 ? 0 : 1));  // every block joins its regime
    CHECK(fit.best[b] <= fixed_best[b]);
    CHECK(fit.best[b] == std::min(fit.costs[b * 2], fit.costs[b * 2 + 1]));
  }
  CHECK(fit.costs[0] < 16);  // a zero block costs under a bit a symbol under its own table
  const ImageModelFit none = fit_image_models(h, std::vector<int64_t>(B, -1), 2, lo, V, 8, 12,
                                              fixed_best.data(), 1.0, 3, 1);
  CHECK(none.tables.size() == 0 && none.cluster.empty());
}

int main() {
  test_assign_clusters();
  test_pool_costs_sums_groups();
  test_select_prefers_cheap_columns_and_counts_bits();
  test_pooled_selection_equals_selection_of_pooled_costs();
  test_fit_image_models();
  return test::finish("test_select");
}
