// ModelSet, check_layout and the coder's flat model views.
#include "ldem/model_set.h"

#include <algorithm>
#include <string>

#include "ldem/coder_internal.h"

namespace ldem {

ModelSet::ModelSet(const Dictionary& d) : precision(d.precision()) {
  models.reserve(d.size());
  for (const Model& m : d.models()) models.push_back(&m);
}

ModelSet::ModelSet(const std::vector<const Dictionary*>& ds) {
  if (ds.empty()) throw ArgumentError{"at least one dictionary is required"};
  precision = ds[0]->precision();
  for (const Dictionary* d : ds) {
    if (d->precision() != precision)
      throw ArgumentError{"dictionaries must share one precision (" + std::to_string(precision) +
                          " vs " + std::to_string(d->precision()) + ")"};
    for (const Model& m : d->models()) models.push_back(&m);
  }
}

void check_shape(const Layout& L) {
  if (L.C < 0 || L.H < 0 || L.W < 0) throw ArgumentError{"shape must be non-negative"};
  if (L.bh < 1 || L.bw < 1) throw ArgumentError{"block sizes must be >= 1"};
  if (L.H > (int64_t{1} << 31) || L.W > (int64_t{1} << 31) || L.C > (int64_t{1} << 31) ||
      (L.C && L.H && L.W > (int64_t{1} << 40) / std::max<int64_t>(1, L.C * L.H)))
    throw ArgumentError{"shape too large"};
}

ModelSet::ModelSet(int p, std::vector<const Model*> list) : precision(p), models(std::move(list)) {
  if (models.empty()) throw ArgumentError{"at least one model is required"};
}

void check_layout(const Layout& L, const int32_t* models, const ModelSet& dict) {
  check_shape(L);
  const int64_t nb = L.num_blocks();
  const int64_t K = static_cast<int64_t>(dict.size());
  for (int64_t i = 0; i < nb; ++i)
    if (models[i] < 0 || models[i] >= K)
      throw ArgumentError{"models: index " + std::to_string(models[i]) + " at block " +
                          std::to_string(i) + " is outside [0, " + std::to_string(K) + ")"};
}

namespace detail {

void model_index_changed() {
  throw ArgumentError{"models: an index is outside [0, number of models) (was the array written during the call?)"};
}

std::vector<View> make_views(const ModelSet& dict, bool lookup) {
  std::vector<View> v(dict.size());
  for (size_t k = 0; k < dict.size(); ++k) {
    const Model& m = dict.model(k);
    if (lookup && m.lut.empty())
      throw ArgumentError{"model " + std::to_string(k) + " has no decoder lookup table (its dictionary codes context streams only)"};
    v[k] = {m.enc.data(), m.cdf.data(), m.lut.data(), m.fc.data(), static_cast<uint32_t>(m.offset), m.n, &m};
  }
  return v;
}

}  // namespace detail
}  // namespace ldem
