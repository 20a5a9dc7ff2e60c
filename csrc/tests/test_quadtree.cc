// Tests of ldem/quadtree.h: the partition against brute force when side bits are
// negligible, consistency of the leaf map with the leaves, and thread-count independence.
#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <vector>

#include "ldem/quadtree.h"

#include "check.h"

using namespace ldem;
using namespace ldem::test;

namespace {

// Fewest data bits of node (c, k, y, x) over every partition.
double brute(const std::vector<double>& cost, int64_t A, int64_t nby, int64_t nbx, int64_t c, int k, int64_t y,
             int64_t x) {
  const int64_t y0 = y << k, x0 = x << k;
  if (y0 >= nby || x0 >= nbx) return 0;
  const int64_t y1 = std::min((y + 1) << k, nby), x1 = std::min((x + 1) << k, nbx);
  double leaf = 1e300;
  for (int64_t a = 0; a < A; ++a) {
    double s = 0;
    for (int64_t yy = y0; yy < y1; ++yy)
      for (int64_t xx = x0; xx < x1; ++xx) s += cost[((c * nby + yy) * nbx + xx) * A + a];
    leaf = std::min(leaf, s);
  }
  if (k == 0 || (y1 - y0) * (x1 - x0) == 1) return leaf;
  double split = 0;
  for (int dy = 0; dy < 2; ++dy)
    for (int dx = 0; dx < 2; ++dx) split += brute(cost, A, nby, nbx, c, k - 1, 2 * y + dy, 2 * x + dx);
  return std::min(leaf, split);
}

void test_against_brute_force() {
  std::mt19937 rng(4);
  for (int trial = 0; trial < 40; ++trial) {
    const int64_t C = 1 + rng() % 3, nby = 1 + rng() % 9, nbx = 1 + rng() % 9, A = 1 + rng() % 4;
    const int depth = 1 + rng() % 3;
    std::vector<double> cost(C * nby * nbx * A);
    for (double& v : cost) v = (rng() % 1000) * 1000.0;  // side bits are negligible next to these
    const QuadtreeSelection s = select_quadtree(cost.data(), A, nullptr, 0, C, nby, nbx, depth, 16, 1, 2);
    double opt = 0;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t y = 0; y < ((nby + (1 << depth) - 1) >> depth); ++y)
        for (int64_t x = 0; x < ((nbx + (1 << depth) - 1) >> depth); ++x)
          opt += brute(cost, A, nby, nbx, c, depth, y, x);
    CHECK(s.data_bits >= opt - 1e-6 && s.data_bits <= opt + 200.0);  // within the side bits of the optimum
    // The leaf map holds exactly the leaves' categories, and every leaf block is covered.
    std::vector<int64_t> from_map(A, 0), from_leaves(A, 0);
    for (int32_t v : s.leaves) ++from_leaves[v];
    for (int32_t v : s.leaf_map) CHECK(v >= 0 && v < A);
    double data = 0;
    for (int64_t b = 0; b < C * nby * nbx; ++b) data += cost[b * A + s.leaf_map[b]];
    CHECK(std::abs(data - s.data_bits) < 1e-6);
    CHECK(static_cast<int64_t>(s.leaves.size()) <= C * nby * nbx && !s.leaves.empty());
    CHECK(static_cast<int>(s.flags.size()) == depth);
    // The same at any thread count.
    const QuadtreeSelection t = select_quadtree(cost.data(), A, nullptr, 0, C, nby, nbx, depth, 16, 1, 1);
    CHECK(t.leaves == s.leaves && t.flags == s.flags && t.leaf_map == s.leaf_map && t.map_bits == s.map_bits);
  }
}

void test_image_columns_and_uniform_costs() {
  // One image column that is far cheaper everywhere: one leaf per top block, category F.
  const int64_t C = 2, nby = 4, nbx = 4, F = 2, I = 1;
  std::vector<double> fixed(C * nby * nbx * F, 50.0), image(C * nby * nbx * I, 1.0);
  const QuadtreeSelection s = select_quadtree(fixed.data(), F, image.data(), I, C, nby, nbx, 2, 12, 2, 1);
  CHECK(s.leaves == std::vector<int32_t>({2, 2}));
  CHECK(s.flags.size() == 2 && s.flags[0] == std::vector<uint8_t>({0, 0}) && s.flags[1].empty());
  CHECK(std::all_of(s.leaf_map.begin(), s.leaf_map.end(), [](int32_t v) { return v == 2; }));
}

}  // namespace

int main() {
  test_against_brute_force();
  test_image_columns_and_uniform_costs();
  return finish("test_quadtree");
}
