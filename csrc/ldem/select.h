// Model selection for local entropy models: each block takes the model column
// (its category) with the fewest data bits plus index bits, blocks may be pooled
// into larger ones first, and Lloyd iterations assign blocks to image models.
//
// Costs are row-major [block, column]. Columns are the F fixed models (the
// channel's global model, then the static dictionary) followed by the I image
// models; a block's category is its column.
#pragma once

#include <cstdint>
#include <vector>

#include "ldem/histograms.h"
#include "ldem/side_info.h"

namespace ldem {

// Bits of each category under the block-map coder's table for `counts` (A entries;
// quantize_counts at `precision` with an empty escape slot, as encode_block_map builds it):
// precision - log2(freq). Selection and partitions estimate index bits with it.
// REQUIRES: kMinPrecision <= precision <= kMaxPrecision and counts.size() + 1 <= 2^precision.
std::vector<double> map_index_bits(const std::vector<uint64_t>& counts, int precision);

// Lloyd assignment: cluster[b] = argmin_k costs[b, k] if that minimum plus
// `penalty` is below fixed_best[b], else -1; best[b] = min(fixed_best[b], min_k costs[b, k]).
// REQUIRES: costs has B * K entries, K >= 1.
// REQUIRES: fixed_best, cluster and best have B entries.
void assign_clusters(const double* costs, int64_t B, int64_t K, const double* fixed_best,
                     double penalty, int64_t* cluster, double* best);

// Costs [C, nby, nbx, A] summed over (fy, fx) groups of blocks: [C, ceil(nby / fy),
// ceil(nbx / fx), A], added in raster order (select_pooled pools with it).
// REQUIRES: costs has C*nby*nbx*A entries (may be null if A == 0).
// REQUIRES: C, nby, nbx >= 0 and fy, fx >= 1.
std::vector<double> pool_costs(const double* costs, int64_t A, int64_t C, int64_t nby, int64_t nbx,
                               int64_t fy, int64_t fx);

struct Selection {
  std::vector<int32_t> categories;  // per pooled block: column of the chosen model
  double data_bits = 0;             // sum of the chosen costs
  double map_bits = 0;              // order-0 cost of the categories under the quantized index table
};

// Per-block model choice minimising data bits plus index bits. Columns are the
// F fixed costs then the I image costs of blocks on the grid [C, nby, nbx]; blocks
// are first summed over (fy, fx) groups (costs are additive). Index costs start
// uniform and are re-estimated `rounds` times from the counts of the categories,
// quantized like the map coder's table (quantize_counts at `precision`).
// REQUIRES: fixed has C*nby*nbx*F entries, F >= 1.
// REQUIRES: image has C*nby*nbx*I entries (may be null if I == 0).
// REQUIRES: C, nby, nbx >= 0 and fy, fx >= 1.
// REQUIRES: kMinPrecision <= precision <= kMaxPrecision and F + I + 1 <= 2^precision.
Selection select_pooled(const double* fixed, int64_t F, const double* image, int64_t I, int64_t C,
                        int64_t nby, int64_t nbx, int64_t fy, int64_t fx, int precision,
                        int rounds);

// One select_pooled problem (the buffers are the caller's).
struct SelectionInput {
  const double* fixed = nullptr;
  int64_t F = 0;
  const double* image = nullptr;
  int64_t I = 0;
  int64_t C = 0, nby = 0, nbx = 0, fy = 1, fx = 1;
};

// select_pooled for each input, on up to `threads` threads (0: every core).
// REQUIRES: each input meets select_pooled's requirements.
std::vector<Selection> select_each(const std::vector<SelectionInput>& grids, int precision, int rounds,
                                   int threads);

// Lloyd iterations of image models over block histograms. Each iteration builds the
// image tables from the blocks of each cluster (accumulate_clusters over the window
// [lo, lo + V), scale_cluster_counts), costs every block under them, and reassigns
// blocks with assign_clusters(penalty); it stops when the assignment is stable or
// after max(1, iterations) iterations.
struct ImageModelFit {
  ImageTables tables;             // empty when no cluster had any block: nothing else is set
  std::vector<Model> models;      // the tables at `precision`
  std::vector<double> costs;      // [B, tables.size()]: the blocks under the last tables
  std::vector<int64_t> cluster;   // the last assignment (-1: no image model)
  std::vector<double> best;       // min(fixed_best, the blocks' costs under the last tables)
};
// REQUIRES: cluster has h.num_blocks() entries, each < K.
// REQUIRES: fixed_best has h.num_blocks() entries.
// REQUIRES: V >= 1, K * V entries fit in memory, lo + V - 1 <= INT32_MAX.
// REQUIRES: kMinTableBits <= table_bits <= kMaxTableBits; kMinPrecision <= precision <= kMaxPrecision.
ImageModelFit fit_image_models(const BlockHistograms& h, std::vector<int64_t> cluster, int64_t K, int32_t lo,
                               int64_t V, int table_bits, int precision, const double* fixed_best,
                               double penalty, int iterations, int threads);

}  // namespace ldem
