// Argument conversion shared by the pybind11 binding files (Python-facing only).
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

#include "ldem/coder.h"

namespace ldem {

// One Dictionary or a sequence of them (model indices follow the order).
// Throws TypeError for anything else; ArgumentError if precisions differ.
inline ModelSet model_set(const pybind11::handle& obj) {
  namespace py = pybind11;
  if (py::isinstance<Dictionary>(obj)) return ModelSet(obj.cast<const Dictionary&>());
  if (!py::isinstance<py::sequence>(obj) || py::isinstance<py::str>(obj))
    throw py::type_error("dictionary must be a Dictionary or a sequence of them");
  std::vector<const Dictionary*> ds;
  for (const py::handle& h : obj.cast<py::sequence>()) {
    if (!py::isinstance<Dictionary>(h))
      throw py::type_error("dictionary must be a Dictionary or a sequence of them");
    ds.push_back(&h.cast<const Dictionary&>());
  }
  return ModelSet(ds);
}

}  // namespace ldem
