// pybind11 binding of the C++ core. Every argument is checked here before it
// reaches the core: shapes, dtypes (exact, no silent casts), index ranges and
// buffer sizes. Long calls release the GIL, and another thread may then write to the
// caller's arrays: an array whose checked contents the core relies on (CSR offsets,
// assignments) is copied and the copy is checked and used; model maps are checked
// again by the coder as it reads them (a copy would cost 8 % at 1x1 blocks).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "py_args.h"
#include "ldem/coder.h"
#include "ldem/costs.h"
#include "ldem/local.h"
#include "ldem/tables.h"
#include "ldem/thread_pool.h"

namespace py = pybind11;
using namespace ldem;

// Defined in csrc/emulate_bindings.cc: adds the host emulation of the GPU kernels.
void register_emulate(py::module_& m);
#ifdef LDEM_WITH_CUDA
// Defined in csrc/cuda_bindings.cc: adds the GPU entry points to the module.
void register_cuda(py::module_& m);
#endif

namespace {

using I32 = py::array_t<int32_t, py::array::c_style>;

[[noreturn]] void arg_error(const std::string& msg) { throw ArgumentError{msg}; }

// Requires an exact int32, C-contiguous array of the given rank.
const int32_t* int32_data(const py::array& a, const char* name, int ndim) {
  // array_t's check compares type equivalence (native int32), not dtype identity, so
  // arrays that crossed a pickle or came from a buffer are accepted.
  if (!py::isinstance<py::array_t<int32_t>>(a))
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


// Block histograms handed in from Python (CSR arrays). The offsets are a private copy
// (checked after copying): the core indexes values and counts with them. Values and
// counts are read in place (any contents are memory-safe for the core).
struct Csr {
  std::vector<int64_t> offsets;  // the copy of ptr
  int64_t B;
  const int32_t* values;
  const int32_t* counts;
};

Csr checked_csr(const py::array& ptr, const py::array& values, const py::array& counts) {
  if (!py::isinstance<py::array_t<int64_t>>(ptr) || ptr.ndim() != 1 ||
      !(ptr.flags() & py::array::c_style) || ptr.size() < 1)
    throw py::type_error("ptr must be a non-empty 1-D contiguous int64 array");
  const int32_t* v = int32_data(values, "values", 1);
  const int32_t* c = int32_data(counts, "counts", 1);
  const int64_t* src = static_cast<const int64_t*>(ptr.data());
  Csr h{std::vector<int64_t>(src, src + ptr.size()), ptr.size() - 1, v, c};
  const int64_t* p = h.offsets.data();
  const int64_t B = h.B;
  if (p[0] != 0) arg_error("ptr[0] must be 0");
  for (int64_t b = 0; b < B; ++b)
    if (p[b + 1] < p[b]) arg_error("ptr must be non-decreasing");
  if (p[B] != values.size() || p[B] != counts.size())
    arg_error("ptr[-1] must equal len(values) == len(counts)");
  for (py::ssize_t i = 0; i < counts.size(); ++i)
    if (c[i] < 0) arg_error("counts must be non-negative");
  return h;
}

// A checked private copy of a 1-D int32 index array with n entries in [0, K).
std::vector<int32_t> checked_indices(const py::array& a, const char* name, int64_t n, int64_t K) {
  const int32_t* src = int32_data(a, name, 1);
  if (a.size() != n) arg_error(std::string(name) + " must have one entry per block");
  std::vector<int32_t> v(src, src + n);
  for (int64_t b = 0; b < n; ++b)
    if (v[b] < 0 || v[b] >= K) arg_error(std::string(name) + ": model index out of range");
  return v;
}

// The model map, checked here for the error message; the coder checks each index again
// as it reads it (the array may be written by another thread once the GIL is released).
const int32_t* checked_models(const py::array& models, const Layout& L, const ModelSet& dict) {
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

// One block grid's selection inputs, checked: fixed [C*nby*nbx, F >= 1] costs and
// optional image costs [C*nby*nbx, I].
struct SelectJob {
  py::array_t<double, py::array::c_style> fixed, image;  // keep the buffers alive
  int64_t C, nby, nbx, F, I = 0;
  const double* fixed_ptr = nullptr;
  const double* image_ptr = nullptr;  // null when I == 0
  SelectJob(py::array_t<double, py::array::c_style> f, py::object image_obj, int64_t C_, int64_t nby_,
            int64_t nbx_, int precision)
      : fixed(std::move(f)), C(C_), nby(nby_), nbx(nbx_) {
    if (C < 0 || nby < 0 || nbx < 0) arg_error("invalid grid");
    const int64_t B = C * nby * nbx;
    if (fixed.ndim() != 2 || fixed.shape(0) != B || fixed.shape(1) < 1)
      arg_error("fixed must be [C*nby*nbx, F] with F >= 1");
    if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
    F = fixed.shape(1);
    if (!image_obj.is_none()) {
      image = image_obj.cast<py::array_t<double, py::array::c_style>>();
      if (image.ndim() != 2 || image.shape(0) != B) arg_error("image must be [C*nby*nbx, I]");
      I = image.shape(1);
    }
    if (F + I + 1 > (int64_t{1} << precision)) arg_error("too many models");
    fixed_ptr = fixed.data();
    if (I) image_ptr = image.data();
  }
};

py::tuple selection_tuple(const Selection& sel) {
  return py::make_tuple(py::array_t<int32_t>(sel.choice.size(), sel.choice.data()), sel.data_bits, sel.map_bits);
}

py::dict build_info() {
  py::dict d;
  d["version"] = LDEM_VERSION;
  d["compiler"] = LDEM_CXX_COMPILER;
  d["simd"] = encoder_simd();
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
      .def_static("from_counts",
                  [](const std::vector<py::array_t<uint64_t, py::array::c_style | py::array::forcecast>>& counts,
                     const std::vector<int64_t>& offsets, int precision) {
                    // Quantizes each row of counts (escape weight 0) with quantize_counts.
                    if (counts.size() != offsets.size()) arg_error("offsets must have one entry per model");
                    std::vector<Model> models;
                    for (size_t k = 0; k < counts.size(); ++k) {
                      std::vector<uint64_t> w(counts[k].data(), counts[k].data() + counts[k].size());
                      w.push_back(0);
                      if (offsets[k] < INT32_MIN || offsets[k] > INT32_MAX) arg_error("offsets must fit in int32");
                      models.push_back(make_model(static_cast<int32_t>(offsets[k]), quantize_counts(w, precision),
                                                  precision));
                    }
                    return std::make_shared<Dictionary>(precision, std::move(models));
                  },
                  py::arg("counts"), py::arg("offsets"), py::arg("precision"))
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
        [](py::array symbols, py::array models, py::object dicts, int64_t bh, int64_t bw,
           int threads, bool checksum, int lanes_log2, int segment_shift) {
          const ModelSet dict = model_set(dicts);
          const int32_t* s = int32_data(symbols, "symbols", 3);
          Layout L = make_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
          const int32_t* mm = checked_models(models, L, dict);
          const StreamParams params{lanes_log2, segment_shift};
          check_params(params);
          EncodedStream e;
          {
            // Symbols are read in place: any values are valid (escapes), each is read once.
            py::gil_scoped_release release;
            e = encode_stream(s, mm, L, dict, threads, checksum, params);
          }
          // Written straight into the bytes object (no intermediate copy).
          py::bytes out(nullptr, e.size());
          e.write(reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(out.ptr())));
          return out;
        },
        py::arg("symbols"), py::arg("models"), py::arg("dictionary"), py::arg("bh"), py::arg("bw"),
        py::arg("threads") = 0, py::arg("checksum") = false, py::arg("lanes_log2") = 2,
        py::arg("segment_shift") = 17);

  m.def("decode",
        [](py::buffer data, py::array models, py::object dicts, int64_t C, int64_t H,
           int64_t W, int64_t bh, int64_t bw, int threads) {
          const ModelSet dict = model_set(dicts);
          py::buffer_info info = data.request();
          if (info.ndim != 1 || info.itemsize != 1 || (info.ndim == 1 && info.strides[0] != 1))
            throw py::type_error("data must be a contiguous bytes-like object");
          Layout L = make_layout(C, H, W, bh, bw);
          const int32_t* mm = checked_models(models, L, dict);
          check_stream_fits(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size),
                            L.num_symbols(), dict.precision);  // before allocating the output
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
        [](py::array symbols, py::object dicts, int64_t bh, int64_t bw, int threads) {
          const ModelSet dict = model_set(dicts);
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

  m.def("block_histograms",
        [](py::array symbols, int64_t bh, int64_t bw, int threads) {
          const int32_t* s = int32_data(symbols, "symbols", 3);
          Layout L = make_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
          BlockHistograms h;
          {
            py::gil_scoped_release release;
            h = block_histograms(s, L, threads);
          }
          return py::make_tuple(py::array_t<int64_t>(h.ptr.size(), h.ptr.data()),
                                py::array_t<int32_t>(h.values.size(), h.values.data()),
                                py::array_t<int32_t>(h.counts.size(), h.counts.data()));
        },
        py::arg("symbols"), py::arg("bh"), py::arg("bw"), py::arg("threads") = 0);

  m.def("histogram_costs",
        [](py::array ptr, py::array values, py::array counts, py::object dicts, int threads) {
          const Csr h = checked_csr(ptr, values, counts);
          const ModelSet set = model_set(dicts);
          py::array_t<double> out({h.B, static_cast<int64_t>(set.size())});
          double* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            histogram_costs(h.offsets.data(), h.B, h.values, h.counts, set.models, threads, o);
          }
          return out;
        },
        py::arg("ptr"), py::arg("values"), py::arg("counts"), py::arg("dictionary"),
        py::arg("threads") = 0);

  m.def("assigned_costs",
        [](py::array ptr, py::array values, py::array counts, py::object dicts, py::array assign,
           int threads) {
          const Csr h = checked_csr(ptr, values, counts);
          const ModelSet set = model_set(dicts);
          const std::vector<int32_t> a =
              checked_indices(assign, "assign", h.B, static_cast<int64_t>(set.size()));
          py::array_t<double> out(h.B);
          double* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            assigned_costs(h.offsets.data(), h.B, h.values, h.counts, set.models, a.data(), threads, o);
          }
          return out;
        },
        py::arg("ptr"), py::arg("values"), py::arg("counts"), py::arg("dictionary"),
        py::arg("assign"), py::arg("threads") = 0);

  m.def("accumulate_clusters",
        [](py::array ptr, py::array values, py::array counts, py::array cluster, int64_t K,
           int32_t lo, int64_t V) {
          const Csr h = checked_csr(ptr, values, counts);
          const int32_t* c = int32_data(cluster, "cluster", 1);
          if (cluster.size() != h.B) arg_error("cluster must have one entry per block");
          if (K < 0 || V < 0 || K * V > (int64_t{1} << 31)) arg_error("K * V too large");
          // cluster is read in place: the core checks each entry when it uses it.
          for (int64_t b = 0; b < h.B; ++b)
            if (c[b] >= K) arg_error("cluster index out of range");
          py::array_t<int64_t> out({K, V});
          py::array_t<int64_t> outside(K);
          std::fill(out.mutable_data(), out.mutable_data() + K * V, 0);
          std::fill(outside.mutable_data(), outside.mutable_data() + K, 0);
          {
            py::gil_scoped_release release;
            accumulate_clusters(h.offsets.data(), h.B, h.values, h.counts, c, K, lo, V, out.mutable_data(),
                                outside.mutable_data());
          }
          return py::make_tuple(out, outside);
        },
        py::arg("ptr"), py::arg("values"), py::arg("counts"), py::arg("cluster"), py::arg("K"),
        py::arg("lo"), py::arg("V"));

  m.def("scale_cluster_counts",
        [](py::array_t<int64_t, py::array::c_style> counts, int32_t lo, int table_bits, int precision) {
          if (counts.ndim() != 2) arg_error("counts must be [K, V]");
          if (table_bits < 1 || table_bits > 24) arg_error("table_bits must be in [1, 24]");
          const int64_t K = counts.shape(0), V = counts.shape(1);
          const int64_t* c = counts.data();
          for (int64_t i = 0; i < K * V; ++i)
            if (c[i] < 0) arg_error("counts must be non-negative");
          ScaledTables t = scale_cluster_counts(c, K, V, lo, table_bits);
          // Exact tables at `precision` (escape weight 0, i.e. frequency 1).
          std::vector<Model> models;
          for (size_t j = 0; j + 1 < t.ptr.size(); ++j) {
            std::vector<uint64_t> w(t.q.begin() + t.ptr[j], t.q.begin() + t.ptr[j + 1]);
            w.push_back(0);
            models.push_back(make_model(t.offsets[j], quantize_counts(w, precision), precision));
          }
          auto dict = std::make_shared<Dictionary>(precision, std::move(models));
          const int64_t bits = scaled_tables_bits(t, table_bits);
          return py::make_tuple(dict, py::array_t<int32_t>(t.rows.size(), t.rows.data()),
                                py::array_t<int32_t>(t.offsets.size(), t.offsets.data()),
                                py::array_t<int64_t>(t.ptr.size(), t.ptr.data()),
                                py::array_t<uint64_t>(t.q.size(), t.q.data()), bits);
        },
        py::arg("counts"), py::arg("lo"), py::arg("table_bits"), py::arg("precision"));

  m.def("assign_clusters",
        [](py::array_t<double, py::array::c_style> costs, py::array_t<double, py::array::c_style> fixed_best,
           double penalty) {
          if (costs.ndim() != 2 || costs.shape(1) < 1) arg_error("costs must be [B, K] with K >= 1");
          const int64_t B = costs.shape(0), K = costs.shape(1);
          if (fixed_best.ndim() != 1 || fixed_best.shape(0) != B) arg_error("fixed_best must be [B]");
          py::array_t<int64_t> cluster(B);
          py::array_t<double> best(B);
          assign_clusters(costs.data(), B, K, fixed_best.data(), penalty, cluster.mutable_data(),
                          best.mutable_data());
          return py::make_tuple(cluster, best);
        },
        py::arg("costs"), py::arg("fixed_best"), py::arg("penalty"));

  m.def("pool_costs",
        [](py::array_t<double, py::array::c_style> costs, int64_t C, int64_t nby, int64_t nbx, int64_t fy,
           int64_t fx) {
          if (C < 0 || nby < 0 || nbx < 0 || fy < 1 || fx < 1) arg_error("invalid grid");
          if (costs.ndim() != 2 || costs.shape(0) != C * nby * nbx) arg_error("costs must be [C*nby*nbx, A]");
          const int64_t A = costs.shape(1);
          std::vector<double> out = pool_costs(costs.data(), A, C, nby, nbx, fy, fx);
          const int64_t rows = C * ((nby + fy - 1) / fy) * ((nbx + fx - 1) / fx);
          py::array_t<double> arr({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(A)});
          std::memcpy(arr.mutable_data(), out.data(), out.size() * sizeof(double));
          return arr;
        },
        py::arg("costs"), py::arg("C"), py::arg("nby"), py::arg("nbx"), py::arg("fy"), py::arg("fx"));

  m.def("select_pooled",
        [](py::array_t<double, py::array::c_style> fixed, py::object image, int64_t C, int64_t nby,
           int64_t nbx, int64_t fy, int64_t fx, int precision, int rounds) {
          if (fy < 1 || fx < 1) arg_error("invalid grid");
          const SelectJob job(fixed, image, C, nby, nbx, precision);
          return selection_tuple(select_pooled(job.fixed_ptr, job.F, job.image_ptr, job.I, C, nby, nbx, fy, fx,
                                               precision, rounds));
        },
        py::arg("fixed"), py::arg("image"), py::arg("C"), py::arg("nby"), py::arg("nbx"), py::arg("fy"),
        py::arg("fx"), py::arg("precision"), py::arg("rounds") = 3);

  m.def("select_blocks",
        [](py::list jobs, int precision, int rounds, int threads) {
          // Several block grids at once (already pooled), one per thread.
          std::vector<SelectJob> js;
          for (py::handle h : jobs) {
            py::tuple t = py::reinterpret_borrow<py::object>(h).cast<py::tuple>();
            if (t.size() != 5) arg_error("each job is (fixed, image, C, nby, nbx)");
            js.emplace_back(t[0].cast<py::array_t<double, py::array::c_style>>(), py::reinterpret_borrow<py::object>(t[1]),
                            t[2].cast<int64_t>(), t[3].cast<int64_t>(), t[4].cast<int64_t>(), precision);
          }
          std::vector<Selection> out(js.size());
          {
            py::gil_scoped_release release;
            parallel_for(static_cast<int64_t>(js.size()), threads, [&](int64_t j) {
              const SelectJob& s = js[j];
              out[j] = select_pooled(s.fixed_ptr, s.F, s.image_ptr, s.I, s.C, s.nby, s.nbx, 1, 1, precision, rounds);
            });
          }
          py::list res;
          for (const Selection& sel : out) res.append(selection_tuple(sel));
          return res;
        },
        py::arg("jobs"), py::arg("precision"), py::arg("rounds") = 3, py::arg("threads") = 1);

  m.def("block_self_costs", [](py::array ptr, py::array counts) {
    const Csr h = checked_csr(ptr, counts, counts);
    py::array_t<double> out(h.B);
    block_self_costs(h.offsets.data(), h.B, h.counts, out.mutable_data());
    return out;
  });

  m.def("gamma_pack", [](py::array_t<uint64_t, py::array::c_style | py::array::forcecast> values) {
    const uint64_t* v = values.data();
    for (py::ssize_t i = 0; i < values.size(); ++i)
      if (v[i] == 0) arg_error("gamma codes values >= 1");
    std::vector<uint8_t> b = gamma_pack(v, values.size());
    return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
  });

  m.def("gamma_unpack",
        [](py::bytes data, uint64_t pos, int64_t n, int max_bits) {
          std::string s = data;
          if (max_bits < 1 || max_bits > 63) arg_error("max_bits must be in [1, 63]");
          // Every code takes at least one bit: n is bounded by the data, not trusted.
          if (n < 0 || static_cast<uint64_t>(n) > 8 * s.size()) throw DecodeFailure{"side information truncated"};
          py::array_t<uint64_t> out(n);
          if (!gamma_unpack(reinterpret_cast<const uint8_t*>(s.data()), s.size(), pos, n, max_bits,
                            out.mutable_data()))
            throw DecodeFailure{"side information truncated or invalid"};
          return py::make_tuple(out, pos);
        },
        py::arg("data"), py::arg("pos"), py::arg("n"), py::arg("max_bits") = 40);

  m.def("read_image_tables",
        [](py::bytes side, uint64_t pos, int64_t count, int precision) {
          // Parses `count` image tables from gamma-coded side bits (see ldem/local.py):
          // table_bits, then per table zigzag(offset) + 1, n, and n values q_i + 1.
          std::string s = side;
          const uint8_t* d = reinterpret_cast<const uint8_t*>(s.data());
          if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
          if (count < 0 || static_cast<uint64_t>(count) > 8 * s.size())
            throw DecodeFailure{"side information truncated"};
          auto read = [&](size_t n, uint64_t* out) {
            if (!gamma_unpack(d, s.size(), pos, n, 40, out))
              throw DecodeFailure{"side information truncated or invalid"};
          };
          uint64_t table_bits;
          read(1, &table_bits);
          if (table_bits < 4 || table_bits > 16) throw DecodeFailure{"invalid image table precision"};
          std::vector<Model> models;
          for (int64_t k = 0; k < count; ++k) {
            uint64_t head[2];
            read(2, head);
            const uint64_t zz = head[0] - 1, n = head[1];
            const int64_t offset = zz % 2 == 0 ? static_cast<int64_t>(zz / 2) : -static_cast<int64_t>((zz + 1) / 2);
            if (n == 0 || n > (uint64_t{1} << precision) - 1 || offset < INT32_MIN ||
                offset > static_cast<int64_t>(INT32_MAX) - static_cast<int64_t>(n))
              throw DecodeFailure{"invalid image model support"};
            // Every gamma code takes at least one bit: n is bounded by the bits left
            // before anything is allocated for it.
            if (n > 8 * static_cast<uint64_t>(s.size()) - pos) throw DecodeFailure{"side information truncated"};
            std::vector<uint64_t> q(n + 1);
            read(n, q.data());
            for (uint64_t i = 0; i < n; ++i) {
              if (q[i] - 1 > (uint64_t{1} << table_bits)) throw DecodeFailure{"invalid image model counts"};
              q[i] -= 1;
            }
            q[n] = 0;  // escape weight
            models.push_back(make_model(static_cast<int32_t>(offset), quantize_counts(q, precision), precision));
          }
          return py::make_tuple(std::make_shared<Dictionary>(precision, std::move(models)), pos);
        },
        py::arg("side"), py::arg("pos"), py::arg("count"), py::arg("precision"));

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
  m.def("_set_vector_encoder", &set_vector_encoder, py::arg("enabled"),
        "Enables (default) or disables the AVX-512 encoder; the bytes are the same either way.");
  m.def("_vector_encoder_quads", &vector_encoder_quads,
        "Pairs of quads coded by the AVX-512 encoder so far in this process.");
  register_emulate(m);
#ifdef LDEM_WITH_CUDA
  register_cuda(m);
#endif
}
