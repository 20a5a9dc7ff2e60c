// Hot paths of local entropy modelling: per-block histograms, their exact costs
// under many models, and per-cluster accumulation for Lloyd iterations.
//
// Block histograms are sparse (CSR): block b holds the distinct values
// values[ptr[b] .. ptr[b + 1]) in increasing order with their counts. Blocks are
// numbered (c, by, bx) in C order, as in the model map of coder.h.
#pragma once

#include <cstdint>
#include <vector>

#include "ldem/coder.h"
#include "ldem/tables.h"

namespace ldem {

struct BlockHistograms {
  std::vector<int64_t> ptr;      // num_blocks + 1
  std::vector<int32_t> values;   // distinct values, increasing within a block
  std::vector<int32_t> counts;   // >= 1
};

// REQUIRES: symbols has layout.num_symbols() entries; layout valid (check_layout).
BlockHistograms block_histograms(const int32_t* symbols, const Layout& layout, int threads);

// Exact bits of each block histogram under each model: out[b * K + k], K = models.size().
// REQUIRES: ptr has B + 1 non-decreasing entries starting at 0; values/counts have ptr[B].
// REQUIRES: every pointer in models is valid for the duration of the call.
void histogram_costs(const int64_t* ptr, int64_t B, const int32_t* values, const int32_t* counts,
                     const std::vector<const Model*>& models, int threads, double* out);

// Exact bits of block b under the single model models[assign[b]]: out[b].
// REQUIRES: 0 <= assign[b] < models.size() for every b.
void assigned_costs(const int64_t* ptr, int64_t B, const int32_t* values, const int32_t* counts,
                    const std::vector<const Model*>& models, const int32_t* assign, int threads,
                    double* out);

// Adds each block's counts into out[k * V + (v - lo)] for k = cluster[b] >= 0 and
// lo <= v < lo + V; values outside the window go to outside[k]. Blocks with
// cluster[b] < 0 are skipped.
// REQUIRES: cluster[b] < K; out has K * V zeroed entries, outside has K.
void accumulate_clusters(const int64_t* ptr, int64_t B, const int32_t* values,
                         const int32_t* counts, const int32_t* cluster, int64_t K, int32_t lo,
                         int64_t V, int64_t* out, int64_t* outside);

// Image-model tables from dense cluster counts (rows of [K, V] over [lo, lo + V)).
// Each non-empty row keeps its non-zero range [a, b]; counts are scaled to
// table_bits with round-half-up integer arithmetic, q_i = (2 c_i 2^t + C) / (2 C),
// C = sum(c). Rows that are all zero are dropped.
struct ScaledTables {
  std::vector<int32_t> rows;     // source row of each kept table
  std::vector<int32_t> offsets;  // lo + a
  std::vector<int64_t> ptr;      // tables + 1: q of table j is q[ptr[j] .. ptr[j + 1])
  std::vector<uint64_t> q;
};
// REQUIRES: 1 <= table_bits <= 24, counts non-negative with K * V entries.
ScaledTables scale_cluster_counts(const int64_t* counts, int64_t K, int64_t V, int32_t lo,
                                  int table_bits);

// Bits of the Elias-gamma side information for the tables (see ldem/local.py):
// gamma(table_bits) + sum over tables of gamma(zigzag(offset) + 1) + gamma(n) + sum gamma(q_i + 1).
int64_t scaled_tables_bits(const ScaledTables& t, int table_bits);

// Lloyd assignment: cluster[b] = argmin_k costs[b, k] if that minimum plus
// `penalty` is below fixed_best[b], else -1; best[b] = min(fixed_best[b], min_k costs[b, k]).
// REQUIRES: costs has B * K entries, K >= 1.
void assign_clusters(const double* costs, int64_t B, int64_t K, const double* fixed_best,
                     double penalty, int64_t* cluster, double* best);

struct Selection {
  std::vector<int32_t> choice;  // per pooled block: column of the chosen model
  double data_bits = 0;         // sum of the chosen costs
  double map_bits = 0;          // order-0 cost of the choices under the quantized index table
};

// Costs [C, nby, nbx, A] summed over (fy, fx) groups of blocks: [C, ceil(nby / fy),
// ceil(nbx / fx), A], added in raster order (select_pooled pools with it).
// REQUIRES: costs has C*nby*nbx*A entries (may be null if A == 0); fy, fx >= 1.
std::vector<double> pool_costs(const double* costs, int64_t A, int64_t C, int64_t nby, int64_t nbx,
                               int64_t fy, int64_t fx);

// Per-block model choice minimising data bits plus index bits. Columns are the
// F fixed costs then the I image costs of blocks on the grid [C, nby, nbx]; blocks
// are first summed over (fy, fx) groups (costs are additive). Index costs start
// uniform and are re-estimated `rounds` times from the counts of the choices,
// quantized like the map coder's table (quantize_counts at `precision`).
// REQUIRES: fixed has C*nby*nbx*F entries, image C*nby*nbx*I (may be null if I == 0).
Selection select_pooled(const double* fixed, int64_t F, const double* image, int64_t I, int64_t C,
                        int64_t nby, int64_t nbx, int64_t fy, int64_t fx, int precision,
                        int rounds);

// Bits of each block under its own empirical distribution: sum_i c_i log2(N / c_i).
void block_self_costs(const int64_t* ptr, int64_t B, const int32_t* counts, double* out);

// Elias-gamma codes (MSB first) of values >= 1, concatenated and zero-padded to bytes.
std::vector<uint8_t> gamma_pack(const uint64_t* values, size_t n);

// Reads n gamma codes starting at bit `pos`; advances pos. Returns false (leaving
// out partly filled) if the data ends early or a code is longer than max_bits.
// REQUIRES: out has n entries; 1 <= max_bits <= 63.
bool gamma_unpack(const uint8_t* data, size_t size, uint64_t& pos, size_t n, int max_bits,
                  uint64_t* out);

}  // namespace ldem
