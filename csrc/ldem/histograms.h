// Block histograms: the distinct values of each block with their counts, and the
// exact bits of blocks under integer models computed from them.
//
// Histograms are sparse (CSR): block b holds the distinct values
// values[ptr[b] .. ptr[b + 1]) in increasing order with their counts (>= 1). Blocks
// are numbered (c, by, bx) in C order, as in the model map of coder.h.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "ldem/coder.h"
#include "ldem/tables.h"

namespace ldem {

// The histograms of every block of one or more latents. The members are read by
// the functions below; only the constructor and concat write them, so for every
// object: ptr has num_blocks() + 1 non-decreasing entries from 0 to values.size()
// == counts.size(), each block's values increase, every count is >= 1, and channel
// has one entry per block in [0, num_channels).
class BlockHistograms {
 public:
  BlockHistograms() : ptr(1, 0) {}
  // REQUIRES: symbols has layout.num_symbols() entries.
  // REQUIRES: layout has C, H, W >= 0 and bh, bw >= 1.
  BlockHistograms(const int32_t* symbols, const Layout& layout, int threads);

  // The blocks of each part, in order (channel numbers are kept).
  static BlockHistograms concat(const std::vector<const BlockHistograms*>& parts);

  int64_t num_blocks() const { return static_cast<int64_t>(ptr.size()) - 1; }
  int64_t num_values() const { return static_cast<int64_t>(values.size()); }

  // Exact bits of each block under each model: out[b * K + k], K = models.size().
  // REQUIRES: every pointer in models is valid for the duration of the call.
  // REQUIRES: out has num_blocks() * models.size() entries.
  void costs(const std::vector<const Model*>& models, int threads, double* out) const;

  // Exact bits of block b under the single model models[assign[b]]: out[b].
  // REQUIRES: 0 <= assign[b] < models.size() for every block b.
  // REQUIRES: out has num_blocks() entries.
  void assigned_costs(const std::vector<const Model*>& models, const int32_t* assign, int threads,
                      double* out) const;

  // Exact bits of each block under the model of its channel, models[channel[b]].
  // REQUIRES: num_channels <= models.size().
  // REQUIRES: out has num_blocks() entries.
  void channel_costs(const std::vector<const Model*>& models, int threads, double* out) const;

  // Bits of each block under its own empirical distribution: sum_i c_i log2(N / c_i).
  // REQUIRES: out has num_blocks() entries.
  void self_costs(double* out) const;

  // Adds each block's counts into out[k * V + (v - lo)] for k = cluster[b] in [0, K)
  // and lo <= v < lo + V; values outside the window go to outside[k]. Blocks with
  // cluster[b] outside [0, K) are skipped.
  // REQUIRES: cluster has num_blocks() entries.
  // REQUIRES: out has K * V zeroed entries, outside has K zeroed entries.
  void accumulate_clusters(const int32_t* cluster, int64_t K, int32_t lo, int64_t V, int64_t* out,
                           int64_t* outside) const;

  // (lo, V): the range from the smallest to the largest value, clipped to
  // [-half, half - 1], as the window [lo, lo + V); (0, 1) when that range is empty.
  // REQUIRES: half >= 1.
  std::pair<int32_t, int64_t> window(int32_t half) const;

  std::vector<int64_t> ptr;      // num_blocks() + 1
  std::vector<int32_t> values;   // distinct values, increasing within a block
  std::vector<int32_t> counts;   // >= 1
  std::vector<int32_t> channel;  // channel of each block
  int32_t num_channels = 0;      // 1 + the largest channel (0 without blocks)
};

// The histograms of every block of symbols (see BlockHistograms).
// REQUIRES: as the BlockHistograms constructor.
BlockHistograms block_histograms(const int32_t* symbols, const Layout& layout, int threads);

// Exact bits of each CSR block histogram under each model: out[b * K + k].
// REQUIRES: ptr has B + 1 non-decreasing entries starting at 0; values/counts have ptr[B].
// REQUIRES: every pointer in models is valid for the duration of the call.
void histogram_costs(const int64_t* ptr, int64_t B, const int32_t* values, const int32_t* counts,
                     const std::vector<const Model*>& models, int threads, double* out);

}  // namespace ldem
