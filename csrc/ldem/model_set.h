// The models a tensor is coded with, and its block layout.
//
// Symbols are int32 [C, H, W] in C order. The plane of each channel is cut into
// bh x bw blocks (edge blocks are partial); models[c, by, bx] names the model
// that codes block (c, by, bx).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "ldem/tables.h"

namespace ldem {

// An ordered list of models sharing one precision, drawn from one or more
// dictionaries (indices follow the given order). Holds pointers only.
// REQUIRES: the dictionaries outlive the set.
struct ModelSet {
  int precision = 16;
  std::vector<const Model*> models;
  explicit ModelSet(const Dictionary& d);
  // Throws ArgumentError if the list is empty or precisions differ.
  explicit ModelSet(const std::vector<const Dictionary*>& ds);
  // Any list of models (one may appear more than once). Throws ArgumentError if empty.
  // REQUIRES: every model has this precision.
  ModelSet(int precision, std::vector<const Model*> models);
  size_t size() const { return models.size(); }
  const Model& model(size_t k) const { return *models[k]; }
};

struct Layout {
  int64_t C = 0, H = 0, W = 0;
  int64_t bh = 1, bw = 1;
  int64_t nby() const { return (H + bh - 1) / bh; }
  int64_t nbx() const { return (W + bw - 1) / bw; }
  int64_t num_symbols() const { return C * H * W; }
  int64_t num_blocks() const { return C * nby() * nbx(); }
};

// Throws ArgumentError unless C, H, W >= 0, bh, bw >= 1 and C, H, W <= 2^31 with
// C * H * W <= 2^40 symbols.
void check_shape(const Layout& layout);

// check_shape(), and that every model index is in [0, dict.size()).
// REQUIRES: models has layout.num_blocks() entries.
// Throws ArgumentError naming the problem.
void check_layout(const Layout& layout, const int32_t* models, const ModelSet& dict);

inline void check_layout(const Layout& l, const int32_t* m, const Dictionary& d) {
  check_layout(l, m, ModelSet(d));
}

}  // namespace ldem
