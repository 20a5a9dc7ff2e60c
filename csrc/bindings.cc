// pybind11 binding of the C++ core. Every argument is checked here before it
// reaches the core: shapes, dtypes (exact, no silent casts), index ranges and
// buffer sizes. Long calls release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "ldem/coder.h"
#include "ldem/tables.h"
#include "ldem/thread_pool.h"

namespace py = pybind11;
using namespace ldem;

#ifdef LDEM_WITH_CUDA
// Defined in csrc/cuda_bindings.cc: adds the GPU entry points to the module.
void register_cuda(py::module_& m);
#endif

namespace {

using I32 = py::array_t<int32_t, py::array::c_style>;

[[noreturn]] void arg_error(const std::string& msg) { throw ArgumentError{msg}; }

// Requires an exact int32, C-contiguous array of the given rank.
const int32_t* int32_data(const py::array& a, const char* name, int ndim) {
  if (!py::isinstance<I32>(a) || !a.dtype().is(py::dtype::of<int32_t>()))
    throw py::type_error(std::string(name) + " must be an int32 numpy array, got dtype " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != ndim)
    arg_error(std::string(name) + " must have " + std::to_string(ndim) + " dimensions, got " +
              std::to_string(a.ndim()));
  if (!(a.flags() & py::array::c_style)) arg_error(std::string(name) + " must be C-contiguous");
  return static_cast<const int32_t*>(a.data());
}

Layout make_layout(int64_t C, int64_t H, int64_t W, int64_t bh, int64_t bw) {
  Layout L{C, H, W, bh, bw};
  if (C < 0 || H < 0 || W < 0) arg_error("shape must be non-negative");
  if (bh < 1 || bw < 1) arg_error("block sizes must be >= 1");
  return L;
}

const int32_t* checked_models(const py::array& models, const Layout& L, const Dictionary& dict) {
  const int32_t* m = int32_data(models, "models", 3);
  if (models.shape(0) != L.C || models.shape(1) != L.nby() || models.shape(2) != L.nbx())
    arg_error("models must have shape [C, ceil(H/bh), ceil(W/bw)] = [" + std::to_string(L.C) +
              ", " + std::to_string(L.nby()) + ", " + std::to_string(L.nbx()) + "], got [" +
              std::to_string(models.shape(0)) + ", " + std::to_string(models.shape(1)) + ", " +
              std::to_string(models.shape(2)) + "]");
  check_layout(L, m, dict);
  return m;
}

std::shared_ptr<Dictionary> dictionary_from_frequencies(const std::vector<py::array_t<uint32_t>>& freqs,
                                                        const std::vector<int64_t>& offsets,
                                                        int precision) {
  if (freqs.size() != offsets.size()) arg_error("offsets must have one entry per model");
  std::vector<Model> models;
  models.reserve(freqs.size());
  for (size_t k = 0; k < freqs.size(); ++k) {
    auto f = freqs[k].unchecked<1>();
    std::vector<uint32_t> v(f.shape(0));
    for (py::ssize_t i = 0; i < f.shape(0); ++i) v[i] = f(i);
    if (offsets[k] < INT32_MIN || offsets[k] > INT32_MAX) arg_error("offsets must fit in int32");
    try {
      models.push_back(make_model(static_cast<int32_t>(offsets[k]), v, precision));
    } catch (const ArgumentError& e) {
      arg_error("model " + std::to_string(k) + ": " + e.message);
    }
  }
  return std::make_shared<Dictionary>(precision, std::move(models));
}

py::dict build_info() {
  py::dict d;
  d["version"] = LDEM_VERSION;
  d["compiler"] = LDEM_CXX_COMPILER;
  d["simd"] = "scalar (x86-64 baseline)";
  d["lanes"] = 4;
#ifdef LDEM_WITH_CUDA
  d["cuda"] = true;
#else
  d["cuda"] = false;
#endif
  d["hardware_threads"] = hardware_threads();
  d["format_version"] = kFormatVersion;
  return d;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "ldem's C++ core: integer tables, interleaved rANS over a model dictionary, exact costs.";

  static py::exception<DecodeFailure> decode_error(m, "DecodeError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const DecodeFailure& e) {
      py::set_error(decode_error, e.message.c_str());
    } catch (const ArgumentError& e) {
      py::set_error(PyExc_ValueError, e.message.c_str());
    }
  });

  py::class_<Dictionary, std::shared_ptr<Dictionary>>(m, "Dictionary")
      .def_static("from_frequencies", &dictionary_from_frequencies, py::arg("freqs"),
                  py::arg("offsets"), py::arg("precision"))
      .def_static("deserialize",
                  [](py::bytes b) {
                    std::string s = b;
                    return std::make_shared<Dictionary>(Dictionary::deserialize(
                        reinterpret_cast<const uint8_t*>(s.data()), s.size()));
                  })
      .def("serialize",
           [](const Dictionary& d) {
             std::vector<uint8_t> v = d.serialize();
             return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
           })
      .def_property_readonly("num_models", [](const Dictionary& d) { return d.size(); })
      .def_property_readonly("precision", &Dictionary::precision)
      .def("offset", [](const Dictionary& d, size_t k) {
        if (k >= d.size()) throw py::index_error("model index out of range");
        return d.model(k).offset;
      })
      .def("frequencies", [](const Dictionary& d, size_t k) {
        if (k >= d.size()) throw py::index_error("model index out of range");
        const auto& f = d.model(k).freq;
        return py::array_t<uint32_t>(f.size(), f.data());
      })
      .def("costs", [](const Dictionary& d, size_t k) {
        if (k >= d.size()) throw py::index_error("model index out of range");
        const auto& c = d.model(k).cost;
        return py::array_t<double>(c.size(), c.data());
      });

  m.def("quantize_counts",
        [](py::array_t<uint64_t, py::array::c_style | py::array::forcecast> w, int precision) {
          std::vector<uint64_t> v(w.data(), w.data() + w.size());
          std::vector<uint32_t> f = quantize_counts(v, precision);
          return py::array_t<uint32_t>(f.size(), f.data());
        },
        py::arg("weights"), py::arg("precision"));
  m.def("quantize_pmf",
        [](py::array_t<double, py::array::c_style | py::array::forcecast> w, int precision) {
          std::vector<double> v(w.data(), w.data() + w.size());
          std::vector<uint32_t> f = quantize_pmf(v, precision);
          return py::array_t<uint32_t>(f.size(), f.data());
        },
        py::arg("weights"), py::arg("precision"));

  m.def("encode",
        [](py::array symbols, py::array models, const Dictionary& dict, int64_t bh, int64_t bw,
           int threads, bool checksum, int lanes_log2, int segment_shift) {
          const int32_t* s = int32_data(symbols, "symbols", 3);
          Layout L = make_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
          const int32_t* mm = checked_models(models, L, dict);
          const StreamParams params{lanes_log2, segment_shift};
          check_params(params);
          std::vector<uint8_t> out;
          {
            py::gil_scoped_release release;
            out = encode(s, mm, L, dict, threads, checksum, params);
          }
          return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
        },
        py::arg("symbols"), py::arg("models"), py::arg("dictionary"), py::arg("bh"), py::arg("bw"),
        py::arg("threads") = 0, py::arg("checksum") = false, py::arg("lanes_log2") = 2,
        py::arg("segment_shift") = 17);

  m.def("decode",
        [](py::buffer data, py::array models, const Dictionary& dict, int64_t C, int64_t H,
           int64_t W, int64_t bh, int64_t bw, int threads) {
          py::buffer_info info = data.request();
          if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1))
            throw py::type_error("data must be a contiguous bytes-like object");
          Layout L = make_layout(C, H, W, bh, bw);
          const int32_t* mm = checked_models(models, L, dict);
          py::array_t<int32_t> out({C, H, W});
          int32_t* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            decode(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size), mm, L,
                   dict, threads, o);
          }
          return out;
        },
        py::arg("data"), py::arg("models"), py::arg("dictionary"), py::arg("C"), py::arg("H"),
        py::arg("W"), py::arg("bh"), py::arg("bw"), py::arg("threads") = 0);

  m.def("block_costs",
        [](py::array symbols, const Dictionary& dict, int64_t bh, int64_t bw, int threads) {
          const int32_t* s = int32_data(symbols, "symbols", 3);
          Layout L = make_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
          const int64_t K = static_cast<int64_t>(dict.size());
          py::array_t<double> out({L.C, L.nby(), L.nbx(), K});
          double* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            block_costs(s, L, dict, threads, o);
          }
          return out;
        },
        py::arg("symbols"), py::arg("dictionary"), py::arg("bh"), py::arg("bw"),
        py::arg("threads") = 0);

  m.def("max_compressed_size", [](int64_t C, int64_t H, int64_t W, int lanes_log2, int segment_shift) {
    const StreamParams params{lanes_log2, segment_shift};
    check_params(params);
    return max_compressed_size(Layout{C, H, W, 1, 1}, params);
  });
  m.def("num_segments", &num_segments);
  m.def("stream_params", [](py::bytes b) {
    std::string s = b;
    StreamParams p = read_params(reinterpret_cast<const uint8_t*>(s.data()), s.size());
    return py::make_tuple(1 << p.lanes_log2, p.segment_shift);
  });
  m.def("hardware_threads", &hardware_threads);
  m.def("build_info", &build_info);
#ifdef LDEM_WITH_CUDA
  register_cuda(m);
#endif
}
