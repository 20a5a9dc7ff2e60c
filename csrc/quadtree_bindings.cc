// pybind11 binding of the quadtree partition search (csrc/ldem/quadtree.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "ldem/quadtree.h"
#include "ldem/tables.h"
#include "py_args.h"

namespace py = pybind11;
using namespace ldem;

// Adds select_quadtree to the module (called from bindings.cc).
void register_quadtree(py::module_& m) {
  m.def("select_quadtree",
        [](py::array_t<double, py::array::c_style> fixed, py::object image_obj, int64_t C, int64_t nby, int64_t nbx,
           int depth, int precision, int rounds, int threads) {
          if (C < 0 || nby < 0 || nbx < 0) arg_error("invalid grid");
          if (depth < 1 || depth > 16) arg_error("depth must be in [1, 16]");
          if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
          if (rounds < 0 || rounds > 16) arg_error("rounds must be in [0, 16]");
          const int64_t B = C * nby * nbx;
          if (fixed.ndim() != 2 || fixed.shape(0) != B || fixed.shape(1) < 1)
            arg_error("fixed must be [C*nby*nbx, F] with F >= 1");
          const int64_t F = fixed.shape(1);
          py::array_t<double, py::array::c_style> image;
          int64_t I = 0;
          if (!image_obj.is_none()) {
            image = image_obj.cast<py::array_t<double, py::array::c_style>>();
            if (image.ndim() != 2 || image.shape(0) != B) arg_error("image must be [C*nby*nbx, I]");
            I = image.shape(1);
          }
          if (F + I + 1 > (int64_t{1} << precision)) arg_error("too many categories for the precision");
          QuadtreeSelection sel;
          {
            py::gil_scoped_release release;
            sel = select_quadtree(fixed.data(), F, I ? image.data() : nullptr, I, C, nby, nbx, depth, precision,
                                  rounds, threads);
          }
          py::list flags;
          for (const auto& f : sel.flags) flags.append(py::array_t<uint8_t>(f.size(), f.data()));
          py::array_t<int32_t> leaf_map({C, nby, nbx});
          std::copy(sel.leaf_map.begin(), sel.leaf_map.end(), leaf_map.mutable_data());
          return py::make_tuple(flags, py::array_t<int32_t>(sel.leaves.size(), sel.leaves.data()), leaf_map,
                                sel.data_bits, sel.map_bits);
        },
        py::arg("fixed"), py::arg("image"), py::arg("C"), py::arg("nby"), py::arg("nbx"), py::arg("depth"),
        py::arg("precision"), py::arg("rounds") = 1, py::arg("threads") = 1,
        "Quadtree partition of a block-cost grid: (flags per level from the top, leaf categories, leaf map, "
        "data bits, map bits).");
}
