// Block costs through the block histograms (ldem/histograms.h).
#include "ldem/costs.h"

#include "ldem/histograms.h"

namespace ldem {

void block_costs(const int32_t* symbols, const Layout& L, const ModelSet& dict, int threads,
                 double* out) {
  const BlockHistograms h = block_histograms(symbols, L, threads);
  histogram_costs(h.ptr.data(), L.num_blocks(), h.values.data(), h.counts.data(), dict.models,
                  threads, out);
}

}  // namespace ldem
