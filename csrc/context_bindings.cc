// pybind11 binding of context-coded streams (csrc/ldem/context.h).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <vector>

#include "ldem/context.h"
#include "py_args.h"

namespace py = pybind11;
using namespace ldem;

namespace {

// The coder's model list from dictionaries: a dictionary flagged contextual holds
// families (kNumContexts models each) as they are; any other is context-free: each of
// its models becomes a family of that model repeated.
ModelSet context_tables(const py::sequence& dicts, const std::vector<bool>& contextual) {
  if (static_cast<size_t>(py::len(dicts)) != contextual.size())
    arg_error("contextual must have one flag per dictionary");
  std::vector<const Model*> models;
  int precision = -1;
  for (size_t d = 0; d < contextual.size(); ++d) {
    const py::handle h = dicts[d];
    if (!py::isinstance<Dictionary>(h)) throw py::type_error("dictionaries must be Dictionary objects");
    const Dictionary& dict = h.cast<const Dictionary&>();
    if (precision >= 0 && dict.precision() != precision) arg_error("dictionaries must share one precision");
    precision = dict.precision();
    if (contextual[d] && dict.size() % kNumContexts)
      arg_error("a contextual dictionary must hold " + std::to_string(kNumContexts) + " models per family");
    for (const Model& m : dict.models())
      for (int k = 0; k < (contextual[d] ? 1 : kNumContexts); ++k) models.push_back(&m);
  }
  return ModelSet(precision < 0 ? 16 : precision, std::move(models));
}

Layout shape_layout(int64_t C, int64_t H, int64_t W, int64_t bh, int64_t bw) {
  const Layout L = make_layout(C, H, W, bh, bw);
  check_shape(L);  // the context coder's calls below take the layout as checked
  return L;
}

const int32_t* checked_families(const py::array& families, const Layout& L, const ModelSet& tables) {
  const int32_t* f = int32_data(families, "families", 3);
  if (families.shape(0) != L.C || families.shape(1) != L.nby() || families.shape(2) != L.nbx())
    arg_error("families must have shape [C, ceil(H/bh), ceil(W/bw)]");
  check_context_layout(L, f, tables);
  return f;
}

}  // namespace

// Adds the context-coding functions to the module (called from bindings.cc).
void register_context(py::module_& m) {
  m.attr("NUM_CONTEXTS") = kNumContexts;

  m.def("context_map",
        [](py::array symbols, int threads, int segment_shift) {
          const int32_t* y = int32_data(symbols, "symbols", 3);
          const Layout L = shape_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), 1, 1);
          const StreamParams params{2, segment_shift};
          check_params(params);
          py::array_t<uint8_t> out({L.C, L.H, L.W});
          uint8_t* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            context_map(y, L, params, threads, o);
          }
          return out;
        },
        py::arg("symbols"), py::arg("threads") = 1, py::arg("segment_shift") = 17,
        "The context (0..NUM_CONTEXTS-1) of every symbol, as a stream with 2^segment_shift-symbol segments codes it.");

  m.def("encode_context",
        [](py::array symbols, py::array families, py::sequence dicts, const std::vector<bool>& contextual,
           int64_t bh, int64_t bw, int threads, bool checksum, int lanes_log2, int segment_shift,
           std::optional<py::array_t<uint8_t, py::array::c_style>> contexts) {
          const ModelSet tables = context_tables(dicts, contextual);
          const int32_t* y = int32_data(symbols, "symbols", 3);
          const Layout L = shape_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
          const int32_t* f = checked_families(families, L, tables);
          const StreamParams params{lanes_log2, segment_shift};
          check_params(params);
          const uint8_t* known = nullptr;
          if (contexts) {
            if (contexts->ndim() != 3 || contexts->shape(0) != L.C || contexts->shape(1) != L.H ||
                contexts->shape(2) != L.W)
              arg_error("contexts must have the shape of symbols");
            known = contexts->data();  // each read is checked against NUM_CONTEXTS by the coder
          }
          EncodedStream e;
          {
            py::gil_scoped_release release;
            e = encode_context_stream(y, f, L, tables, threads, checksum, params, known);
          }
          py::bytes out(nullptr, e.size());
          e.write(reinterpret_cast<uint8_t*>(PyBytes_AS_STRING(out.ptr())));
          return out;
        },
        py::arg("symbols"), py::arg("families"), py::arg("dictionaries"), py::arg("contextual"),
        py::arg("bh"), py::arg("bw"), py::arg("threads") = 1, py::arg("checksum") = false,
        py::arg("lanes_log2") = 2, py::arg("segment_shift") = 17, py::arg("contexts") = py::none(),
        "contexts: context_map(symbols, segment_shift=segment_shift), if already computed (not checked: "
        "other contexts give a stream that decodes to other values).");

  m.def("decode_context",
        [](py::buffer data, py::array families, py::sequence dicts, const std::vector<bool>& contextual,
           int64_t C, int64_t H, int64_t W, int64_t bh, int64_t bw, int threads) {
          const ModelSet tables = context_tables(dicts, contextual);
          py::buffer_info info = data.request();
          if (info.ndim != 1 || info.itemsize != 1 || info.strides[0] != 1)
            throw py::type_error("data must be a contiguous bytes-like object");
          const Layout L = shape_layout(C, H, W, bh, bw);
          const int32_t* f = checked_families(families, L, tables);
          const auto* p = static_cast<const uint8_t*>(info.ptr);
          check_stream_fits(p, static_cast<size_t>(info.size), L.num_symbols(), tables.precision);
          py::array_t<int32_t> out({C, H, W});
          int32_t* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            decode_context(p, static_cast<size_t>(info.size), f, L, tables, threads, o);
          }
          return out;
        },
        py::arg("data"), py::arg("families"), py::arg("dictionaries"), py::arg("contextual"), py::arg("C"),
        py::arg("H"), py::arg("W"), py::arg("bh"), py::arg("bw"), py::arg("threads") = 1);

  m.def("context_block_costs",
        [](py::array symbols, py::array_t<uint8_t, py::array::c_style> ctx, py::sequence dicts,
           const std::vector<bool>& contextual, int64_t bh, int64_t bw, bool own_channel, int64_t first,
           int64_t count, int threads) {
          const ModelSet tables = context_tables(dicts, contextual);
          const int32_t* y = int32_data(symbols, "symbols", 3);
          const Layout L = shape_layout(symbols.shape(0), symbols.shape(1), symbols.shape(2), bh, bw);
          if (ctx.ndim() != 3 || ctx.shape(0) != L.C || ctx.shape(1) != L.H || ctx.shape(2) != L.W)
            arg_error("ctx must have the shape of symbols");
          const uint8_t* c = ctx.data();
          for (int64_t i = 0; i < L.num_symbols(); ++i)
            if (c[i] >= kNumContexts) arg_error("ctx: a context is out of range");
          const int64_t B = L.num_blocks();
          py::array_t<double> out = own_channel ? py::array_t<double>(B) : py::array_t<double>({B, count});
          double* o = out.mutable_data();
          {
            py::gil_scoped_release release;
            context_block_costs(y, c, L, tables, own_channel, first, count, threads, o);
          }
          return out;
        },
        py::arg("symbols"), py::arg("ctx"), py::arg("dictionaries"), py::arg("contextual"), py::arg("bh"),
        py::arg("bw"), py::arg("own_channel"), py::arg("first") = 0, py::arg("count") = 0, py::arg("threads") = 1);
}
