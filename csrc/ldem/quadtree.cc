// Quadtree partitions of block-cost grids (see quadtree.h).
#include "ldem/quadtree.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

#include "ldem/select.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

struct Grid {
  int64_t gy, gx;
};

}  // namespace

QuadtreeSelection select_quadtree(const double* fixed, int64_t F, const double* image, int64_t I, int64_t C,
                                  int64_t nby, int64_t nbx, int depth, int precision, int rounds,
                                  int threads) {
  const int64_t A = F + I;
  std::vector<Grid> grid(depth + 1);
  for (int k = 0; k <= depth; ++k) grid[k] = {(nby + (int64_t{1} << k) - 1) >> k, (nbx + (int64_t{1} << k) - 1) >> k};
  // Summed costs of every node of every level, per channel: cost[k][((c gy + y) gx + x) A + a].
  std::vector<std::vector<double>> cost(depth + 1);
  for (int k = 0; k <= depth; ++k) cost[k].assign(static_cast<size_t>(C * grid[k].gy * grid[k].gx * A), 0.0);
  parallel_for(C, threads, [&](int64_t c) {
    for (int64_t y = 0; y < nby; ++y)
      for (int64_t x = 0; x < nbx; ++x) {
        const int64_t b = (c * nby + y) * nbx + x;
        double* dst = cost[0].data() + b * A;
        std::copy(fixed + b * F, fixed + (b + 1) * F, dst);
        if (I) std::copy(image + b * I, image + (b + 1) * I, dst + F);
      }
    for (int k = 1; k <= depth; ++k) {
      const Grid g = grid[k], h = grid[k - 1];
      for (int64_t y = 0; y < h.gy; ++y)  // children in raster order: the same sums on every host
        for (int64_t x = 0; x < h.gx; ++x) {
          const double* src = cost[k - 1].data() + ((c * h.gy + y) * h.gx + x) * A;
          double* dst = cost[k].data() + ((c * g.gy + y / 2) * g.gx + x / 2) * A;
          for (int64_t a = 0; a < A; ++a) dst[a] += src[a];
        }
    }
  });
  // Whether node (y, x) of level k covers more than one leaf block.
  auto splittable = [&](int k, int64_t y, int64_t x) {
    const int64_t h = std::min((y + 1) << k, nby) - (y << k), w = std::min((x + 1) << k, nbx) - (x << k);
    return h * w > 1;
  };
  std::vector<double> idx(A, std::log2(static_cast<double>(std::max<int64_t>(A, 1))));
  std::vector<std::array<double, 2>> fbits(depth + 1, {1.0, 1.0});
  QuadtreeSelection sel;
  std::vector<std::vector<double>> best(depth + 1);
  std::vector<std::vector<int32_t>> choice(depth + 1);
  std::vector<std::vector<uint8_t>> split(depth + 1);
  for (int k = 0; k <= depth; ++k) {
    const size_t n = static_cast<size_t>(C * grid[k].gy * grid[k].gx);
    best[k].resize(n);
    choice[k].resize(n);
    split[k].assign(n, 0);
  }
  for (int r = 0;; ++r) {
    parallel_for(C, threads, [&](int64_t c) {
      for (int k = 0; k <= depth; ++k) {
        const Grid g = grid[k];
        for (int64_t y = 0; y < g.gy; ++y)
          for (int64_t x = 0; x < g.gx; ++x) {
            const int64_t node = (c * g.gy + y) * g.gx + x;
            const double* v = cost[k].data() + node * A;
            int32_t arg = 0;
            double lo = v[0] + idx[0];
            for (int64_t a = 1; a < A; ++a) {
              const double t = v[a] + idx[a];
              if (t < lo) lo = t, arg = static_cast<int32_t>(a);
            }
            choice[k][node] = arg;
            if (k == 0 || !splittable(k, y, x)) {
              best[k][node] = lo;
              split[k][node] = 0;
              continue;
            }
            const Grid h = grid[k - 1];
            double sp = 0;
            for (int64_t dy = 0; dy < 2; ++dy)
              for (int64_t dx = 0; dx < 2; ++dx) {
                const int64_t cy = 2 * y + dy, cx = 2 * x + dx;
                if (cy < h.gy && cx < h.gx) sp += best[k - 1][(c * h.gy + cy) * h.gx + cx];
              }
            sp += fbits[k][1];
            const double stay = lo + fbits[k][0];
            split[k][node] = sp < stay;
            best[k][node] = sp < stay ? sp : stay;
          }
      }
    });
    // Walk down from the top: flags, leaves and the leaf map, in the stream's order.
    sel = QuadtreeSelection{};
    sel.flags.assign(depth, {});
    std::vector<uint8_t> no_flags;  // level 0 never splits
    std::vector<uint64_t> counts(A, 0);
    std::vector<std::vector<uint64_t>> flag_counts(depth + 1, std::vector<uint64_t>(2, 0));
    std::vector<uint8_t> exists(static_cast<size_t>(C * grid[depth].gy * grid[depth].gx), 1);
    std::vector<int32_t> cat(exists.size(), -1);
    for (int k = depth; k >= 0; --k) {
      const Grid g = grid[k];
      std::vector<uint8_t>& flags = k > 0 ? sel.flags[depth - k] : no_flags;
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < g.gy; ++y)
          for (int64_t x = 0; x < g.gx; ++x) {
            const int64_t node = (c * g.gy + y) * g.gx + x;
            if (!exists[node]) continue;
            if (k > 0 && splittable(k, y, x)) {
              flags.push_back(split[k][node]);
              ++flag_counts[k][split[k][node]];
            }
            if (!split[k][node]) {
              sel.leaves.push_back(choice[k][node]);
              ++counts[choice[k][node]];
              cat[node] = choice[k][node];
            }
          }
      if (k == 0) break;
      const Grid h = grid[k - 1];
      std::vector<uint8_t> next(static_cast<size_t>(C * h.gy * h.gx), 0);
      std::vector<int32_t> next_cat(next.size(), -1);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t y = 0; y < h.gy; ++y)
          for (int64_t x = 0; x < h.gx; ++x) {
            const int64_t parent = (c * g.gy + y / 2) * g.gx + x / 2, node = (c * h.gy + y) * h.gx + x;
            next[node] = exists[parent] && split[k][parent];
            next_cat[node] = cat[parent];
          }
      exists.swap(next);
      cat.swap(next_cat);
    }
    sel.leaf_map = cat;
    if (r == rounds) {
      const std::vector<double> ib = map_index_bits(counts, precision);
      for (int32_t a : sel.leaves) sel.map_bits += ib[a];
      for (int k = depth; k >= 1; --k) {
        const std::vector<uint8_t>& f = sel.flags[depth - k];
        if (f.empty()) continue;
        const std::vector<double> fb = map_index_bits(flag_counts[k], precision);
        for (uint8_t v : f) sel.map_bits += fb[v];
      }
      for (int64_t b = 0; b < C * nby * nbx; ++b) {
        const int32_t a = sel.leaf_map[b];
        sel.data_bits += a < F ? fixed[b * F + a] : image[b * I + (a - F)];
      }
      return sel;
    }
    idx = map_index_bits(counts, precision);
    for (int k = 1; k <= depth; ++k) {
      fbits[k] = {1.0, 1.0};
      if (flag_counts[k][0] + flag_counts[k][1]) {
        const std::vector<double> fb = map_index_bits(flag_counts[k], precision);
        fbits[k] = {fb[0], fb[1]};
      }
    }
  }
}

}  // namespace ldem
