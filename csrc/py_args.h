// Argument conversion shared by the pybind11 binding files (Python-facing only).
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
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

[[noreturn]] inline void arg_error(const std::string& msg) { throw ArgumentError{msg}; }

// The layout of a [C, H, W] tensor in (bh, bw) blocks, with the sign checks a caller's
// arguments need (the coder's check_shape/check_layout bound the sizes).
inline Layout make_layout(int64_t C, int64_t H, int64_t W, int64_t bh, int64_t bw) {
  Layout L{C, H, W, bh, bw};
  if (C < 0 || H < 0 || W < 0) arg_error("shape must be non-negative");
  if (bh < 1 || bw < 1) arg_error("block sizes must be >= 1");
  return L;
}

// Requires an exact int32, C-contiguous array of the given rank.
inline const int32_t* int32_data(const pybind11::array& a, const char* name, int ndim) {
  // array_t's check compares type equivalence (native int32), not dtype identity, so
  // arrays that crossed a pickle or came from a buffer are accepted.
  if (!pybind11::isinstance<pybind11::array_t<int32_t>>(a))
    throw pybind11::type_error(std::string(name) + " must be an int32 numpy array, got dtype " +
                               std::string(pybind11::str(a.dtype())));
  if (a.ndim() != ndim)
    arg_error(std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got " +
              std::to_string(a.ndim()));
  if (!(a.flags() & pybind11::array::c_style)) arg_error(std::string(name) + " must be C-contiguous");
  return static_cast<const int32_t*>(a.data());
}

// The model map, checked here for the error message; the coder checks each index again
// as it reads it (the array may be written by another thread once the GIL is released).
inline const int32_t* checked_models(const pybind11::array& models, const Layout& L, const ModelSet& dict) {
  const int32_t* m = int32_data(models, "models", 3);
  if (models.shape(0) != L.C || models.shape(1) != L.nby() || models.shape(2) != L.nbx())
    arg_error("models must have shape [C, ceil(H/bh), ceil(W/bw)] = [" + std::to_string(L.C) +
              ", " + std::to_string(L.nby()) + ", " + std::to_string(L.nbx()) + "], got [" +
              std::to_string(models.shape(0)) + ", " + std::to_string(models.shape(1)) + ", " +
              std::to_string(models.shape(2)) + "]");
  check_layout(L, m, dict);
  return m;
}

}  // namespace ldem
