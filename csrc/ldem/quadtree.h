// Quadtree partitions of block-cost grids (the encoder's choice; the layout and the
// order of flags and leaves are those of ldem/local/quadtree.py, which also decodes them).
//
// Costs are given per leaf block of the grid [C, nby, nbx], per category (the F fixed
// columns, then the I image columns). Node (c, y, x) of level k covers leaf blocks
// [y 2^k, (y + 1) 2^k) x [x 2^k, (x + 1) 2^k), clipped to the grid; level `depth` is
// the top. A node may split when it covers more than one leaf block. The cost of a leaf
// node is min over categories of (its summed cost + index bits); a splittable node also
// pays its flag bits (per level). Index and flag bits come from the counts of the
// previous round (uniform at first), quantized as the map coder's tables.
#pragma once

#include <cstdint>
#include <vector>

namespace ldem {

struct QuadtreeSelection {
  std::vector<std::vector<uint8_t>> flags;  // per level from the top (depth .. 1): flags in raster order
  std::vector<int32_t> leaves;              // leaf categories: levels from the top, raster order
  std::vector<int32_t> leaf_map;            // [C, nby, nbx]: the category of each leaf block
  double data_bits = 0;                     // summed costs of the leaf map
  double map_bits = 0;                      // index bits of the leaves plus flag bits, final tables
};

// REQUIRES: fixed has C*nby*nbx*F entries, F >= 1.
// REQUIRES: image has C*nby*nbx*I entries (may be null if I == 0).
// REQUIRES: C, nby, nbx >= 0; 1 <= depth <= 16.
// REQUIRES: kMinPrecision <= precision <= kMaxPrecision and F + I + 1 <= 2^precision.
QuadtreeSelection select_quadtree(const double* fixed, int64_t F, const double* image, int64_t I, int64_t C,
                                  int64_t nby, int64_t nbx, int depth, int precision, int rounds,
                                  int threads);

}  // namespace ldem
