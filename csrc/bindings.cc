// pybind11 binding of the C++ core. Every argument is checked here before it
// reaches the core: shapes, dtypes (exact, no silent casts), index ranges and
// buffer sizes. Long calls release the GIL, and another thread may then write to the
// caller's arrays: an array whose checked contents the core relies on (assignments,
// clusters, counts) is copied and the copy is checked and used; model maps are checked
// again by the coder as it reads them (a copy would cost 8 % at 1x1 blocks). Block
// histograms (BlockHistograms) are built and kept in C++ and never cross as arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "py_args.h"
#include "ldem/batch.h"
#include "ldem/coder.h"
#include "ldem/costs.h"
#include "ldem/histograms.h"
#include "ldem/select.h"
#include "ldem/side_info.h"
#include "ldem/simd.h"
#include "ldem/tables.h"
#include "ldem/thread_pool.h"

namespace py = pybind11;
using namespace ldem;

// Defined in csrc/emulate_bindings.cc: adds the host emulation of the GPU kernels.
void register_emulate(py::module_& m);
// Defined in csrc/context_bindings.cc: context-coded streams.
void register_context(py::module_& m);
// Defined in csrc/quadtree_bindings.cc: the quadtree partition search.
void register_quadtree(py::module_& m);
#ifdef LDEM_WITH_CUDA
// Defined in csrc/cuda_bindings.cc: adds the GPU entry points to the module.
void register_cuda(py::module_& m);
#endif

namespace {

using I32 = py::array_t<int32_t, py::array::c_style>;



// A checked private copy of a 1-D int32 index array with n entries in [0, K).
std::vector<int32_t> checked_indices(const py::array& a, const char* name, int64_t n, int64_t K) {
  const int32_t* src = int32_data(a, name, 1);
  if (a.size() != n) arg_error(std::string(name) + " must have one entry per block");
  std::vector<int32_t> v(src, src + n);
  for (int64_t b = 0; b < n; ++b)
    if (v[b] < 0 || v[b] >= K) arg_error(std::string(name) + ": model index out of range");
  return v;
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

// One block grid's selection inputs, checked: fixed [C*nby*nbx, F >= 1] costs, optional
// image costs [C*nby*nbx, I], pooled over (fy, fx) groups of blocks.
struct SelectJob {
  py::array_t<double, py::array::c_style> fixed, image;  // keep the buffers alive
  SelectionInput in;
  SelectJob(py::array_t<double, py::array::c_style> f, py::object image_obj, int64_t C, int64_t nby,
            int64_t nbx, int64_t fy, int64_t fx, int precision)
      : fixed(std::move(f)) {
    if (C < 0 || nby < 0 || nbx < 0 || fy < 1 || fx < 1) arg_error("invalid grid");
    const int64_t B = C * nby * nbx;
    if (fixed.ndim() != 2 || fixed.shape(0) != B || fixed.shape(1) < 1)
      arg_error("fixed must be [C*nby*nbx, F] with F >= 1");
    if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
    in = SelectionInput{fixed.data(), fixed.shape(1), nullptr, 0, C, nby, nbx, fy, fx};
    if (!image_obj.is_none()) {
      image = image_obj.cast<py::array_t<double, py::array::c_style>>();
      if (image.ndim() != 2 || image.shape(0) != B) arg_error("image must be [C*nby*nbx, I]");
      in.I = image.shape(1);
      if (in.I) in.image = image.data();
    }
    if (in.F + in.I + 1 > (int64_t{1} << precision)) arg_error("too many models");
  }
};

py::tuple selection_tuple(const Selection& sel) {
  return py::make_tuple(py::array_t<int32_t>(sel.categories.size(), sel.categories.data()), sel.data_bits,
                        sel.map_bits);
}

// A 1-D contiguous bytes-like object's buffer, held by the caller while it reads the bytes
// (a held buffer keeps a bytearray from being resized while the GIL is released).
py::buffer_info byte_span(const py::buffer& data, const char* name) {
  py::buffer_info info = data.request();
  if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
    throw py::type_error(std::string(name) + " must be a contiguous bytes-like object");
  return info;
}

// A checked private copy of a 1-D array of non-negative integers (any integer dtype).
std::vector<uint64_t> checked_counts(const py::array& a, const char* name) {
  if (a.ndim() != 1 || !(a.dtype().kind() == 'i' || a.dtype().kind() == 'u'))
    throw py::type_error(std::string(name) + " must be a 1-D integer array");
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> v(a);
  std::vector<uint64_t> out(v.size());
  for (py::ssize_t i = 0; i < v.size(); ++i) {
    if (v.data()[i] < 0) arg_error(std::string(name) + " must be non-negative");
    out[i] = static_cast<uint64_t>(v.data()[i]);
  }
  return out;
}

// Image tables with their models at the stream's precision (ldem._core.ImageTables).
struct ImageTablesObject {
  ImageTables tables;
  std::shared_ptr<Dictionary> dictionary;
};

std::shared_ptr<ImageTablesObject> image_tables_object(ImageTables t, std::vector<Model> models, int precision) {
  auto d = std::make_shared<Dictionary>(precision, std::move(models));
  return std::make_shared<ImageTablesObject>(ImageTablesObject{std::move(t), std::move(d)});
}

// A checked private copy of a 1-D cluster array (int32 or int64) with one entry per
// block, each < K (negative entries: no cluster).
std::vector<int64_t> checked_clusters(const py::array& a, int64_t B, int64_t K) {
  if (a.ndim() != 1 || !(py::isinstance<py::array_t<int64_t>>(a) || py::isinstance<py::array_t<int32_t>>(a)))
    throw py::type_error("cluster must be a 1-D int32 or int64 array");
  if (a.size() != B) arg_error("cluster must have one entry per block");
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> v(a);
  std::vector<int64_t> out(v.data(), v.data() + B);
  for (int64_t k : out)
    if (k >= K) arg_error("cluster index out of range");
  return out;
}

// checked_models() of item i of a batch: an index out of range names the item.
const int32_t* batch_models(const py::array& models, const Layout& L, const ModelSet& dict, size_t i) {
  try {
    return checked_models(models, L, dict);
  } catch (const ArgumentError& e) {
    throw BatchFailure{static_cast<int64_t>(i), false, e.message};
  }
}

py::dict build_info() {
  py::dict d;
  d["version"] = LDEM_VERSION;
  d["compiler"] = LDEM_CXX_COMPILER;
  d["simd"] = simd_level_name(simd_level());
  d["cpu_simd"] = simd_level_name(cpu_simd_level());
  py::dict kernels;
  kernels["encoder"] = encoder_kernel();
  kernels["selection"] = selection_kernel();
  kernels["pooling"] = pooling_kernel();
  kernels["histogram_counts"] = histogram_counts_kernel();
  kernels["histogram_costs"] = histogram_costs_kernel();
  d["kernels"] = kernels;
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
  try {
    set_simd_cap(simd_cap_from_env());  // read once, before any work
  } catch (const ArgumentError& e) {
    throw py::value_error(e.message);
  }

  static py::exception<DecodeFailure> decode_error(m, "DecodeError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const DecodeFailure& e) {
      py::set_error(decode_error, e.message.c_str());
    } catch (const ArgumentError& e) {
      py::set_error(PyExc_ValueError, e.message.c_str());
    } catch (const BatchFailure& e) {
      const std::string msg = "item " + std::to_string(e.index) + ": " + e.message;
      py::set_error(e.decode ? decode_error.ptr() : PyExc_ValueError, msg.c_str());
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
                  [](py::bytes b, bool lookups) {
                    std::string s = b;
                    return std::make_shared<Dictionary>(Dictionary::deserialize(
                        reinterpret_cast<const uint8_t*>(s.data()), s.size(), lookups));
                  },
                  py::arg("data"), py::arg("lookups") = true)
      .def("serialize",
           [](const Dictionary& d) {
             std::vector<uint8_t> v = d.serialize();
             return py::bytes(reinterpret_cast<const char*>(v.data()), v.size());
           })
      .def("drop_lookups", &Dictionary::drop_lookups,
           "Frees the decoder lookup tables: the dictionary then codes context streams only.")
      .def_property_readonly("has_lookups",
                             [](const Dictionary& d) { return d.size() == 0 || !d.model(0).lut.empty(); })
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

  m.def("encode_batch",
        [](const std::vector<py::array>& symbols, const std::vector<py::array>& models, py::object dicts,
           int64_t bh, int64_t bw, int threads, bool checksum, int lanes_log2, int segment_shift) {
          const ModelSet dict = model_set(dicts);
          if (models.size() != symbols.size()) arg_error("models must have one map per item");
          const StreamParams params{lanes_log2, segment_shift};
          check_params(params);
          std::vector<BatchItem> items;
          for (size_t i = 0; i < symbols.size(); ++i) {
            const py::array& y = symbols[i];
            const int32_t* s = int32_data(y, "symbols", 3);
            const Layout L = make_layout(y.shape(0), y.shape(1), y.shape(2), bh, bw);
            items.push_back(BatchItem{s, batch_models(models[i], L, dict, i), L});
          }
          std::vector<std::vector<uint8_t>> out;
          {
            // As encode: symbols are read in place, model indices are checked as read.
            py::gil_scoped_release release;
            out = encode_batch(items, dict, threads, checksum, params);
          }
          py::list streams;
          for (const auto& b : out) streams.append(py::bytes(reinterpret_cast<const char*>(b.data()), b.size()));
          return streams;
        },
        py::arg("symbols"), py::arg("models"), py::arg("dictionary"), py::arg("bh"), py::arg("bw"),
        py::arg("threads") = 0, py::arg("checksum") = false, py::arg("lanes_log2") = 2,
        py::arg("segment_shift") = 17,
        "encode() of each [C, H, W] array with its model map, the items over the threads: a list of bytes.");

  m.def("decode_batch",
        [](const std::vector<py::buffer>& data, const std::vector<py::array>& models, py::object dicts,
           const std::vector<std::array<int64_t, 3>>& shapes, int64_t bh, int64_t bw, int threads) {
          const ModelSet dict = model_set(dicts);
          const size_t n = data.size();
          if (models.size() != n || shapes.size() != n) arg_error("models and shapes must have one entry per stream");
          std::vector<py::buffer_info> infos;  // held: a bytearray cannot be resized while coding
          std::vector<BatchStream> streams;
          py::list outs;
          for (size_t i = 0; i < n; ++i) {
            infos.push_back(data[i].request());
            const py::buffer_info& info = infos.back();
            if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
              throw py::type_error("data must be contiguous bytes-like objects");
            const auto [C, H, W] = shapes[i];
            const Layout L = make_layout(C, H, W, bh, bw);
            const int32_t* mm = batch_models(models[i], L, dict, i);
            const auto* p = static_cast<const uint8_t*>(info.ptr);
            try {
              check_stream_fits(p, static_cast<size_t>(info.size), L.num_symbols(), dict.precision);
            } catch (const DecodeFailure& e) {  // before allocating any output
              throw BatchFailure{static_cast<int64_t>(i), true, e.message};
            }
            streams.push_back(BatchStream{p, static_cast<size_t>(info.size), mm, L, nullptr});
          }
          for (size_t i = 0; i < n; ++i) {
            py::array_t<int32_t> out({streams[i].layout.C, streams[i].layout.H, streams[i].layout.W});
            streams[i].out = out.mutable_data();
            outs.append(out);
          }
          {
            py::gil_scoped_release release;
            decode_batch(streams, dict, threads);
          }
          return outs;
        },
        py::arg("data"), py::arg("models"), py::arg("dictionary"), py::arg("shapes"), py::arg("bh"),
        py::arg("bw"), py::arg("threads") = 0,
        "decode() of each stream with its model map and shape, the streams over the threads: a list of arrays.");

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

  py::class_<BlockHistograms, std::shared_ptr<BlockHistograms>>(
      m, "BlockHistograms",
      "The histograms of every block of int32 symbols [C, H, W] in (bh, bw) blocks, kept in C++.")
      .def(py::init([](py::array symbols, int64_t bh, int64_t bw, int threads) {
             const int32_t* s = int32_data(symbols, "symbols", 3);
             Layout L = make_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
             // Symbols are read in place: any values are valid (the counters are masked).
             py::gil_scoped_release release;
             return std::make_shared<BlockHistograms>(s, L, threads);
           }),
           py::arg("symbols"), py::arg("bh"), py::arg("bw"), py::arg("threads") = 0)
      .def_static("concat",
                  [](const std::vector<std::shared_ptr<BlockHistograms>>& parts) {
                    std::vector<const BlockHistograms*> ps;
                    for (const auto& p : parts) {
                      if (!p) throw py::type_error("parts must be BlockHistograms");
                      ps.push_back(p.get());
                    }
                    return std::make_shared<BlockHistograms>(BlockHistograms::concat(ps));
                  },
                  py::arg("parts"))
      .def_property_readonly("num_blocks", &BlockHistograms::num_blocks)
      .def_property_readonly("num_channels", [](const BlockHistograms& h) { return h.num_channels; })
      .def("arrays",
           [](const BlockHistograms& h) {
             return py::make_tuple(py::array_t<int64_t>(h.ptr.size(), h.ptr.data()),
                                   py::array_t<int32_t>(h.values.size(), h.values.data()),
                                   py::array_t<int32_t>(h.counts.size(), h.counts.data()),
                                   py::array_t<int32_t>(h.channel.size(), h.channel.data()));
           },
           "Copies of (ptr, values, counts, channel).")
      .def("costs",
           [](const BlockHistograms& h, py::object dicts, int threads) {
             const ModelSet set = model_set(dicts);
             py::array_t<double> out({h.num_blocks(), static_cast<int64_t>(set.size())});
             double* o = out.mutable_data();
             py::gil_scoped_release release;
             h.costs(set.models, threads, o);
             return out;
           },
           py::arg("dictionary"), py::arg("threads") = 0)
      .def("assigned_costs",
           [](const BlockHistograms& h, py::object dicts, py::array assign, int threads) {
             const ModelSet set = model_set(dicts);
             const std::vector<int32_t> a =
                 checked_indices(assign, "assign", h.num_blocks(), static_cast<int64_t>(set.size()));
             py::array_t<double> out(h.num_blocks());
             double* o = out.mutable_data();
             py::gil_scoped_release release;
             h.assigned_costs(set.models, a.data(), threads, o);
             return out;
           },
           py::arg("dictionary"), py::arg("assign"), py::arg("threads") = 0)
      .def("channel_costs",
           [](const BlockHistograms& h, py::object dicts, int threads) {
             const ModelSet set = model_set(dicts);
             if (static_cast<size_t>(h.num_channels) > set.size())
               arg_error("the dictionary has " + std::to_string(set.size()) + " models for " +
                         std::to_string(h.num_channels) + " channels");
             py::array_t<double> out(h.num_blocks());
             double* o = out.mutable_data();
             py::gil_scoped_release release;
             h.channel_costs(set.models, threads, o);
             return out;
           },
           py::arg("dictionary"), py::arg("threads") = 0)
      .def("self_costs",
           [](const BlockHistograms& h) {
             py::array_t<double> out(h.num_blocks());
             h.self_costs(out.mutable_data());
             return out;
           })
      .def("window", &BlockHistograms::window, py::arg("half"))
      .def("cluster_counts",
           [](const BlockHistograms& h, py::array cluster, int64_t K, int32_t lo, int64_t V) {
             if (K < 0 || V < 0 || (V > 0 && K > (int64_t{1} << 31) / V)) arg_error("K * V too large");
             const std::vector<int64_t> c = checked_clusters(cluster, h.num_blocks(), K);
             std::vector<int32_t> c32(c.size());
             for (size_t b = 0; b < c.size(); ++b) c32[b] = static_cast<int32_t>(std::max<int64_t>(c[b], -1));
             py::array_t<int64_t> out({K, V});
             std::vector<int64_t> outside(K, 0);
             std::fill(out.mutable_data(), out.mutable_data() + K * V, 0);
             h.accumulate_clusters(c32.data(), K, lo, V, out.mutable_data(), outside.data());
             return out;
           },
           py::arg("cluster"), py::arg("K"), py::arg("lo"), py::arg("V"))
      .def("fit_image_models",
           [](const BlockHistograms& h, py::array cluster, int64_t K, int32_t lo, int64_t V, int table_bits,
              int precision, py::array_t<double, py::array::c_style | py::array::forcecast> fixed_best,
              double penalty, int iterations, int threads) -> py::object {
             if (K < 0 || V < 1 || K > (int64_t{1} << 31) / V) arg_error("K * V too large");
             if (static_cast<int64_t>(lo) + V - 1 > INT32_MAX) arg_error("lo + V must fit in int32");
             if (table_bits < kMinTableBits || table_bits > kMaxTableBits) arg_error("table_bits must be in [4, 16]");
             if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
             if (fixed_best.ndim() != 1 || fixed_best.shape(0) != h.num_blocks())
               arg_error("fixed_best must have one entry per block");
             std::vector<int64_t> c = checked_clusters(cluster, h.num_blocks(), K);
             std::vector<double> fb(fixed_best.data(), fixed_best.data() + h.num_blocks());
             ImageModelFit fit;
             {
               py::gil_scoped_release release;
               fit = fit_image_models(h, std::move(c), K, lo, V, table_bits, precision, fb.data(), penalty,
                                      iterations, threads);
             }
             if (fit.tables.size() == 0) return py::none();
             const int64_t I = static_cast<int64_t>(fit.tables.size());
             py::array_t<double> costs({h.num_blocks(), I});
             std::copy(fit.costs.begin(), fit.costs.end(), costs.mutable_data());
             return py::make_tuple(image_tables_object(std::move(fit.tables), std::move(fit.models), precision),
                                   costs, py::array_t<int64_t>(fit.cluster.size(), fit.cluster.data()),
                                   py::array_t<double>(fit.best.size(), fit.best.data()));
           },
           py::arg("cluster"), py::arg("K"), py::arg("lo"), py::arg("V"), py::arg("table_bits"),
           py::arg("precision"), py::arg("fixed_best"), py::arg("penalty"), py::arg("iterations"),
           py::arg("threads") = 0,
           "Lloyd iterations of image models (select.h fit_image_models): None if no cluster has a "
           "block, else (ImageTables, costs [B, I], cluster, best).");

  py::class_<ImageTablesObject, std::shared_ptr<ImageTablesObject>>(
      m, "ImageTables", "Image-dependent tables as they are sent, with their models.")
      .def_property_readonly("dictionary", [](const ImageTablesObject& t) { return t.dictionary; })
      .def_property_readonly("bits", [](const ImageTablesObject& t) { return image_tables_bits(t.tables); },
                             "Exact side bits that describe the tables.")
      .def_property_readonly("table_bits", [](const ImageTablesObject& t) { return t.tables.table_bits; })
      .def_property_readonly("offsets",
                             [](const ImageTablesObject& t) {
                               return py::array_t<int32_t>(t.tables.offsets.size(), t.tables.offsets.data());
                             })
      .def("scaled_counts",
           [](const ImageTablesObject& t, size_t j) {
             if (j >= t.tables.size()) throw py::index_error("table index out of range");
             return py::array_t<uint64_t>(t.tables.ptr[j + 1] - t.tables.ptr[j], t.tables.q.data() + t.tables.ptr[j]);
           })
      .def("__len__", [](const ImageTablesObject& t) { return t.tables.size(); });

  m.def("write_side_info",
        [](py::object tables, py::object map_counts) {
          ImageTables none;
          const ImageTables* t = &none;
          if (!tables.is_none()) {
            if (!py::isinstance<ImageTablesObject>(tables)) throw py::type_error("tables must be ImageTables or None");
            t = &tables.cast<const ImageTablesObject&>().tables;
          }
          std::vector<uint64_t> counts;
          if (!map_counts.is_none()) {
            counts = checked_counts(map_counts.cast<py::array>(), "map_counts");
            for (uint64_t c : counts)
              if (c >= (uint64_t{1} << kMaxGammaBits) - 1) arg_error("map_counts too large");
          }
          std::vector<uint8_t> b = write_side_info(*t, counts);
          return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
        },
        py::kw_only(), py::arg("tables"), py::arg("map_counts"),
        "The side bits of a local stream (side_info.h): the image tables (or None), then the "
        "block-map counts (or None).");

  m.def("read_side_info",
        [](py::buffer side, int64_t num_tables, int64_t num_map_counts, int precision) {
          const py::buffer_info info = byte_span(side, "side");
          if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
          SideInfo s = read_side_info(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size),
                                      num_tables, num_map_counts, precision);
          py::object tables = py::none();
          if (s.tables.size()) tables = py::cast(image_tables_object(std::move(s.tables), std::move(s.models), precision));
          return py::make_tuple(tables, py::array_t<uint64_t>(s.map_counts.size(), s.map_counts.data()));
        },
        py::arg("side"), py::kw_only(), py::arg("num_tables"), py::arg("num_map_counts"), py::arg("precision"),
        "Reads the side bits: (ImageTables or None, block-map counts); DecodeError if invalid.");

  m.def("encode_block_map",
        [](py::array categories, int64_t num_categories, int precision) {
          const int64_t B = categories.size();
          if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
          if (num_categories < 1 || num_categories + 1 > (int64_t{1} << precision))
            arg_error("num_categories must be in [1, 2^precision - 1]");
          const std::vector<int32_t> copy = checked_indices(categories, "categories", B, num_categories);
          if (B < 1) arg_error("categories must not be empty");
          CodedBlockMap coded = encode_block_map(copy.data(), B, num_categories, precision);
          return py::make_tuple(py::array_t<uint64_t>(coded.counts.size(), coded.counts.data()),
                                py::bytes(reinterpret_cast<const char*>(coded.data.data()), coded.data.size()));
        },
        py::arg("categories"), py::kw_only(), py::arg("num_categories"), py::arg("precision"),
        "rANS-codes a block map: (counts per category, stream bytes).");

  m.def("decode_block_map",
        [](py::buffer data, py::array counts, int64_t num_blocks, int precision) {
          const py::buffer_info info = byte_span(data, "data");
          const std::vector<uint64_t> c = checked_counts(counts, "counts");
          if (precision < kMinPrecision || precision > kMaxPrecision) arg_error("invalid precision");
          if (num_blocks < 0) arg_error("num_blocks must be non-negative");
          py::array_t<int32_t> out(num_blocks);
          int32_t* o = out.mutable_data();
          py::gil_scoped_release release;
          decode_block_map(static_cast<const uint8_t*>(info.ptr), static_cast<size_t>(info.size), c, num_blocks,
                           precision, o);
          return out;
        },
        py::arg("data"), py::kw_only(), py::arg("counts"), py::arg("num_blocks"), py::arg("precision"),
        "Decodes a rANS block map of num_blocks categories; DecodeError if invalid.");

  m.def("pool_costs",
        [](py::array_t<double, py::array::c_style> costs, int64_t C, int64_t nby, int64_t nbx, int64_t fy,
           int64_t fx) {
          if (C < 0 || nby < 0 || nbx < 0 || fy < 1 || fx < 1) arg_error("invalid grid");
          if (costs.ndim() != 2 || costs.shape(0) != C * nby * nbx) arg_error("costs must be [C*nby*nbx, A]");
          const int64_t A = costs.shape(1);
          std::vector<double> out = pool_costs(costs.data(), A, C, nby, nbx, fy, fx);
          const int64_t rows = C * ((nby + fy - 1) / fy) * ((nbx + fx - 1) / fx);
          py::array_t<double> arr({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(A)});
          std::copy(out.begin(), out.end(), arr.mutable_data());  // out may be empty
          return arr;
        },
        py::arg("costs"), py::arg("C"), py::arg("nby"), py::arg("nbx"), py::arg("fy"), py::arg("fx"));

  m.def("select_pooled",
        [](py::array_t<double, py::array::c_style> fixed, py::object image, int64_t C, int64_t nby,
           int64_t nbx, int64_t fy, int64_t fx, int precision, int rounds) {
          const SelectJob job(fixed, image, C, nby, nbx, fy, fx, precision);
          const SelectionInput& s = job.in;
          return selection_tuple(select_pooled(s.fixed, s.F, s.image, s.I, C, nby, nbx, fy, fx, precision, rounds));
        },
        py::arg("fixed"), py::arg("image"), py::arg("C"), py::arg("nby"), py::arg("nbx"), py::arg("fy"),
        py::arg("fx"), py::arg("precision"), py::arg("rounds") = 3);

  m.def("select_blocks",
        [](py::list jobs, int precision, int rounds, int threads) {
          // Several block grids at once, one per thread.
          std::vector<SelectJob> js;
          for (py::handle h : jobs) {
            py::tuple t = py::reinterpret_borrow<py::object>(h).cast<py::tuple>();
            if (t.size() != 7) arg_error("each job is (fixed, image, C, nby, nbx, fy, fx)");
            js.emplace_back(t[0].cast<py::array_t<double, py::array::c_style>>(),
                            py::reinterpret_borrow<py::object>(t[1]), t[2].cast<int64_t>(), t[3].cast<int64_t>(),
                            t[4].cast<int64_t>(), t[5].cast<int64_t>(), t[6].cast<int64_t>(), precision);
          }
          std::vector<SelectionInput> in;
          for (const SelectJob& j : js) in.push_back(j.in);
          std::vector<Selection> out;
          {
            py::gil_scoped_release release;
            out = select_each(in, precision, rounds, threads);
          }
          py::list res;
          for (const Selection& sel : out) res.append(selection_tuple(sel));
          return res;
        },
        py::arg("jobs"), py::arg("precision"), py::arg("rounds") = 3, py::arg("threads") = 1);

  m.def("gamma_pack", [](py::array_t<uint64_t, py::array::c_style | py::array::forcecast> values) {
    const uint64_t* v = values.data();
    for (py::ssize_t i = 0; i < values.size(); ++i)
      if (v[i] == 0) arg_error("gamma codes values >= 1");
    std::vector<uint8_t> b = gamma_pack(v, values.size());
    return py::bytes(reinterpret_cast<const char*>(b.data()), b.size());
  });

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
  register_context(m);
  register_quadtree(m);
#ifdef LDEM_WITH_CUDA
  register_cuda(m);
#endif
}
