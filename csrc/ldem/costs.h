// Exact coded costs of blocks, in bits, under the integer tables the coder uses (the
// cost of one value is symbol_cost() in ldem/tables.h).
#pragma once

#include <cstdint>

#include "ldem/model_set.h"

namespace ldem {

// Exact coded cost in bits of every block under every model:
// out[((c * nby + by) * nbx + bx) * K + k]. Counts escapes with their payload.
// REQUIRES: symbols has layout.num_symbols() entries.
// REQUIRES: out has layout.num_blocks() * dict.size() entries.
// REQUIRES: the layout is valid (check_layout).
void block_costs(const int32_t* symbols, const Layout& layout, const ModelSet& dict,
                 int threads, double* out);

inline void block_costs(const int32_t* s, const Layout& l, const Dictionary& d, int threads,
                        double* out) {
  block_costs(s, l, ModelSet(d), threads, out);
}

}  // namespace ldem
