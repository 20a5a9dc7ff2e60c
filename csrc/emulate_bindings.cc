// pybind11 binding of the host emulation of the CUDA kernels (csrc/cuda/emulate.h):
// the kernels' per-warp algorithms run on the CPU. Registered in every build, with or
// without the CUDA engine, so the GPU code is checked against the CPU coder everywhere.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "cuda/emulate.h"
#include "cuda/kernels.h"
#include "py_args.h"

namespace py = pybind11;
using namespace ldem;

namespace {

Layout np_layout(const py::array& symbols, int64_t bh, int64_t bw) {
  Layout L{symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw};
  cuda::check_gpu_layout(cuda::GpuLayout{L.C, L.H, L.W, L.bh, L.bw});
  return L;
}

}  // namespace

// Adds the cuda_emulate_* functions to the module (called from bindings.cc).
void register_emulate(py::module_& m) {
  m.def("cuda_emulate_encode",
        [](py::array symbols, py::array models, py::object dicts, int64_t bh, int64_t bw,
           int lanes_log2, int segment_shift, bool checksum) {
          const ModelSet set = model_set(dicts);
          const int32_t* s = int32_data(symbols, "symbols", 3);
          const Layout L = np_layout(symbols, bh, bw);
          const int32_t* mm = checked_models(models, L, set);
          std::vector<uint8_t> out;
          {
            py::gil_scoped_release release;
            out = cuda::emulate::encode(s, mm, L, set, StreamParams{lanes_log2, segment_shift},
                                        checksum);
          }
          return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
        },
        py::arg("symbols"), py::arg("models"), py::arg("dictionary"), py::arg("bh"),
        py::arg("bw"), py::arg("lanes_log2"), py::arg("segment_shift"),
        py::arg("checksum") = false);
  m.def("cuda_emulate_decode",
        [](py::buffer data, py::array models, py::object dicts, int64_t C, int64_t H, int64_t W,
           int64_t bh, int64_t bw) {
          const ModelSet set = model_set(dicts);
          py::buffer_info info = data.request();
          if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
            throw py::type_error("data must be a contiguous bytes-like object");
          Layout L{C, H, W, bh, bw};
          cuda::check_gpu_layout(cuda::GpuLayout{C, H, W, bh, bw});
          const int32_t* mm = checked_models(models, L, set);
          py::array_t<int32_t> out({C, H, W});
          int32_t* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            cuda::emulate::decode(static_cast<const uint8_t*>(info.ptr),
                                  static_cast<size_t>(info.size), mm, L, set, o);
          }
          return out;
        },
        py::arg("data"), py::arg("models"), py::arg("dictionary"), py::arg("C"), py::arg("H"),
        py::arg("W"), py::arg("bh"), py::arg("bw"));
  m.def("cuda_emulate_block_costs",
        [](py::array symbols, py::object dicts, int64_t bh, int64_t bw, py::object bias) {
          const ModelSet set = model_set(dicts);
          const int32_t* s = int32_data(symbols, "symbols", 3);
          const Layout L = np_layout(symbols, bh, bw);
          const int64_t K = static_cast<int64_t>(set.size());
          std::vector<double> b;
          if (!bias.is_none()) {
            auto arr = bias.cast<py::array_t<double, py::array::c_style | py::array::forcecast>>();
            if (arr.ndim() != 1 || arr.shape(0) != K) arg_error("bias must have one entry per model");
            b.assign(arr.data(), arr.data() + K);
          }
          py::array_t<double> costs({L.C, L.nby(), L.nbx(), K});
          py::array_t<int32_t> choice({L.C, L.nby(), L.nbx()});
          double* c = costs.mutable_data();
          int32_t* ch = choice.mutable_data();
          {
            py::gil_scoped_release release;
            cuda::emulate::block_costs(s, L, set, b.empty() ? nullptr : b.data(), c, ch);
          }
          return py::make_tuple(costs, choice);
        },
        py::arg("symbols"), py::arg("dictionary"), py::arg("bh"), py::arg("bw"),
        py::arg("bias") = py::none());
  m.def("cuda_emulate_coded_bits",
        [](py::array symbols, py::array models, py::object dicts, int64_t bh, int64_t bw) {
          const ModelSet set = model_set(dicts);
          const int32_t* s = int32_data(symbols, "symbols", 3);
          const Layout L = np_layout(symbols, bh, bw);
          const int32_t* mm = checked_models(models, L, set);
          return cuda::emulate::coded_bits(s, mm, L, set);
        },
        py::arg("symbols"), py::arg("models"), py::arg("dictionary"), py::arg("bh"),
        py::arg("bw"));
  m.def("cuda_emulate_crc32",
        [](py::bytes data, size_t chunk) {
          const std::string s = data;
          return cuda::emulate::chunked_crc32(reinterpret_cast<const uint8_t*>(s.data()), s.size(),
                                              chunk);
        },
        py::arg("data"), py::arg("chunk"));
}
