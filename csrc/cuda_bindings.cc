// pybind11 binding of the CUDA engine (csrc/cuda/ldem_cuda.h). Device buffers come
// in as integers (torch's tensor.data_ptr()) with a CUDA stream handle; ldem/cuda.py
// owns the tensors and checks their dtype, device and shape before calling here.
// Every argument is checked again in C++: shapes and parameters (ArgumentError ->
// ValueError), and, unless the caller opts out, that each pointer is device memory
// of the given device. Errors found on the device come back through status arrays:
// cuda_finish() synchronises and raises ldem.DecodeError / ValueError from them.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "cuda/ldem_cuda.h"
#include "py_args.h"

namespace py = pybind11;
using namespace ldem;

namespace {

// Makes `device` current for the scope (and restores the previous one).
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    const int n = cuda::device_count();
    if (device < 0 || device >= n)
      arg_error("CUDA device " + std::to_string(device) + " does not exist (" + std::to_string(n) +
                " devices)");
    cuda::check_cuda(cudaGetDevice(&previous_), "cudaGetDevice");
    if (previous_ != device) cuda::check_cuda(cudaSetDevice(device), "cudaSetDevice");
  }
  ~DeviceGuard() {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) cudaSetDevice(previous_);
  }

 private:
  int previous_ = 0;
};

cudaStream_t as_stream(uintptr_t handle) { return reinterpret_cast<cudaStream_t>(handle); }

template <class T = void>
T* as_ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

void check_pointer(uintptr_t p, const char* name, int device, bool allow_null = false) {
  if (p == 0) {
    if (allow_null) return;
    arg_error(std::string(name) + " is a null pointer");
  }
  cudaPointerAttributes attr{};
  const cudaError_t err = cudaPointerGetAttributes(&attr, as_ptr(p));
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    arg_error(std::string(name) + " is not a CUDA pointer");
  }
  if (attr.type != cudaMemoryTypeDevice && attr.type != cudaMemoryTypeManaged)
    arg_error(std::string(name) + " is not CUDA device memory");
  if (attr.device != device)
    arg_error(std::string(name) + " lives on CUDA device " + std::to_string(attr.device) +
              ", not " + std::to_string(device));
}

// The device tables of one dictionary (or an ordered list of them).
struct PyCudaDictionary {
  std::shared_ptr<cuda::DeviceDictionary> impl;
  int device;
};

cuda::GpuLayout layout_of(int64_t C, int64_t H, int64_t W, int64_t bh, int64_t bw) {
  cuda::GpuLayout L{C, H, W, bh, bw};
  cuda::check_gpu_layout(L);
  return L;
}

template <class T>
T item_field(const py::tuple& t, size_t i) {
  return t[i].cast<T>();
}

// with_out = false: items of estimate_coded_bits (the output fields are ignored).
std::vector<cuda::EncodeItem> encode_items(const py::list& items, int device, bool check,
                                           bool with_out = true) {
  std::vector<cuda::EncodeItem> out;
  for (const py::handle& h : items) {
    const py::tuple t = h.cast<py::tuple>();
    if (t.size() != 11)
      arg_error("an encode item is (symbols, models, C, H, W, bh, bw, lanes_log2, "
                "segment_shift, out, out_capacity)");
    cuda::EncodeItem it;
    it.layout = layout_of(item_field<int64_t>(t, 2), item_field<int64_t>(t, 3),
                          item_field<int64_t>(t, 4), item_field<int64_t>(t, 5),
                          item_field<int64_t>(t, 6));
    it.params = StreamParams{item_field<int>(t, 7), item_field<int>(t, 8)};
    check_params(it.params);
    const bool empty = it.layout.num_symbols() == 0;
    if (check) {
      check_pointer(item_field<uintptr_t>(t, 0), "symbols", device, empty);
      check_pointer(item_field<uintptr_t>(t, 1), "models", device, empty);
      if (with_out) check_pointer(item_field<uintptr_t>(t, 9), "out", device);
    }
    it.symbols = as_ptr<const int32_t>(item_field<uintptr_t>(t, 0));
    it.models = as_ptr<const int32_t>(item_field<uintptr_t>(t, 1));
    it.out = as_ptr<uint8_t>(item_field<uintptr_t>(t, 9));
    it.out_capacity = item_field<uint64_t>(t, 10);
    if (!with_out) {
      if (!empty && (!it.symbols || !it.models)) arg_error("null symbols or models pointer");
      it.out = nullptr;
      it.out_capacity = 0;
    }
    out.push_back(it);
  }
  if (with_out) cuda::check_encode_items(out.data(), static_cast<int>(out.size()));
  return out;
}

std::vector<cuda::DecodeItem> decode_items(const py::list& items, int device, bool check) {
  std::vector<cuda::DecodeItem> out;
  for (const py::handle& h : items) {
    const py::tuple t = h.cast<py::tuple>();
    if (t.size() != 9) arg_error("a decode item is (data, size, models, C, H, W, bh, bw, out)");
    cuda::DecodeItem it;
    it.layout = layout_of(item_field<int64_t>(t, 3), item_field<int64_t>(t, 4),
                          item_field<int64_t>(t, 5), item_field<int64_t>(t, 6),
                          item_field<int64_t>(t, 7));
    it.size = item_field<uint64_t>(t, 1);
    const bool empty = it.layout.num_symbols() == 0;
    if (check) {
      check_pointer(item_field<uintptr_t>(t, 0), "data", device, it.size == 0);
      check_pointer(item_field<uintptr_t>(t, 2), "models", device, empty);
      check_pointer(item_field<uintptr_t>(t, 8), "out", device, empty);
    }
    it.data = as_ptr<const uint8_t>(item_field<uintptr_t>(t, 0));
    it.models = as_ptr<const int32_t>(item_field<uintptr_t>(t, 2));
    it.out = as_ptr<int32_t>(item_field<uintptr_t>(t, 8));
    out.push_back(it);
  }
  cuda::check_decode_items(out.data(), static_cast<int>(out.size()));
  return out;
}

std::vector<cuda::CostItem> cost_items(const py::list& items, int device, bool check, uint32_t K) {
  std::vector<cuda::CostItem> out;
  for (const py::handle& h : items) {
    const py::tuple t = h.cast<py::tuple>();
    if (t.size() != 8) arg_error("a cost item is (symbols, C, H, W, bh, bw, costs, choice)");
    cuda::CostItem it;
    it.layout = layout_of(item_field<int64_t>(t, 1), item_field<int64_t>(t, 2),
                          item_field<int64_t>(t, 3), item_field<int64_t>(t, 4),
                          item_field<int64_t>(t, 5));
    const bool empty = it.layout.num_symbols() == 0;
    if (check) {
      check_pointer(item_field<uintptr_t>(t, 0), "symbols", device, empty);
      check_pointer(item_field<uintptr_t>(t, 6), "costs", device, true);
      check_pointer(item_field<uintptr_t>(t, 7), "choice", device, true);
    }
    it.symbols = as_ptr<const int32_t>(item_field<uintptr_t>(t, 0));
    it.costs = as_ptr<double>(item_field<uintptr_t>(t, 6));
    it.choice = as_ptr<int32_t>(item_field<uintptr_t>(t, 7));
    out.push_back(it);
  }
  cuda::check_cost_items(out.data(), static_cast<int>(out.size()), K);
  return out;
}

void check_scratch_arg(uintptr_t scratch, size_t bytes, size_t need, int device, bool check) {
  if (bytes < need)
    arg_error("scratch has " + std::to_string(bytes) + " bytes, needs " + std::to_string(need));
  if (check && need) check_pointer(scratch, "scratch", device);
}

}  // namespace

void register_cuda(py::module_& m) {
  m.def("cuda_device_count", &cuda::device_count,
        "Number of CUDA devices; 0 without a driver or GPU (never raises).");

  py::class_<PyCudaDictionary>(m, "CudaDictionary")
      .def(py::init([](py::object dicts, int device, uintptr_t stream) {
             const ModelSet set = model_set(dicts);
             DeviceGuard guard(device);
             std::shared_ptr<cuda::DeviceDictionary> impl;
             {
               py::gil_scoped_release release;
               impl = std::make_shared<cuda::DeviceDictionary>(set, as_stream(stream));
             }
             return PyCudaDictionary{impl, device};
           }),
           py::arg("dictionary"), py::arg("device"), py::arg("stream") = 0)
      .def_property_readonly("device", [](const PyCudaDictionary& d) { return d.device; })
      .def_property_readonly("num_models",
                             [](const PyCudaDictionary& d) { return d.impl->num_models(); })
      .def_property_readonly("precision",
                             [](const PyCudaDictionary& d) { return d.impl->precision(); })
      .def_property_readonly("nbytes", [](const PyCudaDictionary& d) { return d.impl->bytes(); })
      .def_property_readonly("decode_tables_staged", [](const PyCudaDictionary& d) {
        return d.impl->decode_tables_staged();
      });

  m.def("cuda_plan_stream",
        [](int64_t N, uint64_t coded_bits_fx, int max_lanes_log2, uint32_t ppm) {
          const StreamParams p = cuda::plan_stream(N, coded_bits_fx, max_lanes_log2, ppm);
          return py::make_tuple(p.lanes_log2, p.segment_shift);
        },
        py::arg("num_symbols"), py::arg("coded_bits_fx"), py::arg("max_lanes_log2") = 5,
        py::arg("overhead_ppm") = cuda::kDefaultOverheadPpm);
  m.def("cuda_planned_overhead_bits", [](int64_t S, int lanes) {
    return cuda::planned_overhead_bits(S, lanes);
  });

  // --- encode ---
  m.def("cuda_encode_scratch_bytes",
        [](const py::list& items, bool checksum) {
          const auto v = encode_items(items, 0, false);
          return cuda::encode_scratch_bytes(v.data(), static_cast<int>(v.size()), checksum);
        },
        py::arg("items"), py::arg("checksum"));
  m.def("cuda_encode",
        [](const PyCudaDictionary& dict, const py::list& items, bool checksum, uintptr_t sizes,
           uintptr_t status, uintptr_t scratch, size_t scratch_bytes, uintptr_t stream,
           bool check_pointers) {
          DeviceGuard guard(dict.device);
          const auto v = encode_items(items, dict.device, check_pointers);
          const int n = static_cast<int>(v.size());
          if (n == 0) return;
          if (check_pointers) {
            check_pointer(sizes, "sizes", dict.device);
            check_pointer(status, "status", dict.device);
          }
          const size_t need = cuda::encode_scratch_bytes(v.data(), n, checksum);
          check_scratch_arg(scratch, scratch_bytes, need, dict.device, check_pointers);
          py::gil_scoped_release release;
          cuda::encode_batch(*dict.impl, v.data(), n, checksum, as_ptr<uint64_t>(sizes),
                             as_ptr<uint64_t>(status), as_ptr(scratch), scratch_bytes,
                             as_stream(stream));
        },
        py::arg("dictionary"), py::arg("items"), py::arg("checksum"), py::arg("sizes"),
        py::arg("status"), py::arg("scratch"), py::arg("scratch_bytes"), py::arg("stream"),
        py::arg("check_pointers") = true);

  m.def("cuda_estimate_scratch_bytes", [](const py::list& items) {
    const auto v = encode_items(items, 0, false, false);
    return cuda::estimate_scratch_bytes(v.data(), static_cast<int>(v.size()));
  });
  m.def("cuda_estimate_coded_bits",
        [](const PyCudaDictionary& dict, const py::list& items, uintptr_t bits, uintptr_t status,
           uintptr_t scratch, size_t scratch_bytes, uintptr_t stream, bool check_pointers) {
          DeviceGuard guard(dict.device);
          const auto v = encode_items(items, dict.device, check_pointers, false);
          const int n = static_cast<int>(v.size());
          if (n == 0) return;
          if (check_pointers) {
            check_pointer(bits, "bits", dict.device);
            check_pointer(status, "status", dict.device);
          }
          check_scratch_arg(scratch, scratch_bytes, cuda::estimate_scratch_bytes(v.data(), n),
                            dict.device, check_pointers);
          py::gil_scoped_release release;
          cuda::estimate_coded_bits(*dict.impl, v.data(), n, as_ptr<uint64_t>(bits),
                                    as_ptr<uint64_t>(status), as_ptr(scratch), scratch_bytes,
                                    as_stream(stream));
        },
        py::arg("dictionary"), py::arg("items"), py::arg("bits"), py::arg("status"),
        py::arg("scratch"), py::arg("scratch_bytes"), py::arg("stream"),
        py::arg("check_pointers") = true);

  // --- decode ---
  m.def("cuda_decode_scratch_bytes", [](const py::list& items) {
    const auto v = decode_items(items, 0, false);
    return cuda::decode_scratch_bytes(v.data(), static_cast<int>(v.size()));
  });
  m.def("cuda_decode",
        [](const PyCudaDictionary& dict, const py::list& items, uintptr_t status,
           uintptr_t scratch, size_t scratch_bytes, uintptr_t stream, bool check_pointers) {
          DeviceGuard guard(dict.device);
          const auto v = decode_items(items, dict.device, check_pointers);
          const int n = static_cast<int>(v.size());
          if (n == 0) return;
          if (check_pointers) check_pointer(status, "status", dict.device);
          check_scratch_arg(scratch, scratch_bytes, cuda::decode_scratch_bytes(v.data(), n),
                            dict.device, check_pointers);
          py::gil_scoped_release release;
          cuda::decode_batch(*dict.impl, v.data(), n, as_ptr<uint64_t>(status), as_ptr(scratch),
                             scratch_bytes, as_stream(stream));
        },
        py::arg("dictionary"), py::arg("items"), py::arg("status"), py::arg("scratch"),
        py::arg("scratch_bytes"), py::arg("stream"), py::arg("check_pointers") = true);

  // --- costs and selection ---
  m.def("cuda_costs_scratch_bytes", [](const PyCudaDictionary& dict, const py::list& items) {
    DeviceGuard guard(dict.device);
    const auto v = cost_items(items, dict.device, false, dict.impl->num_models());
    return cuda::costs_scratch_bytes(*dict.impl, v.data(), static_cast<int>(v.size()));
  });
  m.def("cuda_block_costs",
        [](const PyCudaDictionary& dict, const py::list& items, uintptr_t bias, uintptr_t scratch,
           size_t scratch_bytes, uintptr_t stream, bool check_pointers) {
          DeviceGuard guard(dict.device);
          const auto v = cost_items(items, dict.device, check_pointers, dict.impl->num_models());
          const int n = static_cast<int>(v.size());
          if (n == 0) return;
          if (check_pointers) check_pointer(bias, "bias", dict.device, true);
          check_scratch_arg(scratch, scratch_bytes,
                            cuda::costs_scratch_bytes(*dict.impl, v.data(), n), dict.device,
                            check_pointers);
          py::gil_scoped_release release;
          cuda::block_costs_batch(*dict.impl, v.data(), n, as_ptr<const double>(bias),
                                  as_ptr(scratch), scratch_bytes, as_stream(stream));
        },
        py::arg("dictionary"), py::arg("items"), py::arg("bias"), py::arg("scratch"),
        py::arg("scratch_bytes"), py::arg("stream"), py::arg("check_pointers") = true);

  // Waits for `stream`, reads `count` statuses (and sizes, if given) and raises the
  // first error (DecodeError / ValueError); returns the sizes.
  m.def("cuda_finish",
        [](int device, uintptr_t status, uintptr_t sizes, int count, uintptr_t stream) {
          if (count < 0) arg_error("count must be >= 0");
          DeviceGuard guard(device);
          std::vector<uint64_t> st(count), sz(sizes ? count : 0);
          {
            py::gil_scoped_release release;
            if (count) {
              cuda::check_cuda(cudaMemcpyAsync(st.data(), as_ptr(status), 8 * count,
                                               cudaMemcpyDeviceToHost, as_stream(stream)),
                               "cudaMemcpyAsync (status)");
              if (sizes)
                cuda::check_cuda(cudaMemcpyAsync(sz.data(), as_ptr(sizes), 8 * count,
                                                 cudaMemcpyDeviceToHost, as_stream(stream)),
                                 "cudaMemcpyAsync (sizes)");
            }
            cuda::check_cuda(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize");
          }
          for (int i = 0; i < count; ++i) {
            if (st[i] == cuda::kStatusOk) continue;
            try {
              cuda::throw_status(st[i]);
            } catch (DecodeFailure& e) {
              if (count > 1) e.message += " (item " + std::to_string(i) + ")";
              throw;
            } catch (ArgumentError& e) {
              if (count > 1) e.message += " (item " + std::to_string(i) + ")";
              throw;
            }
          }
          return sz;
        },
        py::arg("device"), py::arg("status"), py::arg("sizes"), py::arg("count"),
        py::arg("stream"));

  m.def("cuda_status_message", &cuda::status_message);
}
