// Host side of the CUDA engine that needs the CUDA runtime: errors, the device count
// and the device dictionary. Compiled by the C++ compiler; the kernels are in *.cu,
// the plain host code (plan, statuses, tables, checks) in kernels.cc.
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/ldem_cuda.h"

namespace ldem::cuda {

void check_cuda(cudaError_t err, const char* what) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorName(err) +
                             " (" + cudaGetErrorString(err) + ")");
}

int device_count() {
  int n = 0;
  const cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();  // clear the sticky-free error state
    return 0;
  }
  return n < 0 ? 0 : n;
}

DeviceDictionary::DeviceDictionary(const ModelSet& set, cudaStream_t stream) {
  const std::vector<uint8_t> blob = pack_tables(set, &layout_);
  check_cuda(cudaGetDevice(&device_), "cudaGetDevice");
  check_cuda(cudaMalloc(&blob_, layout_.bytes), "cudaMalloc (dictionary tables)");
  const cudaError_t err = cudaMemcpyAsync(blob_, blob.data(), layout_.bytes,
                                          cudaMemcpyHostToDevice, stream);
  const cudaError_t err2 = err == cudaSuccess ? cudaStreamSynchronize(stream) : err;
  if (err2 != cudaSuccess) {
    cudaFree(blob_);
    blob_ = nullptr;
    check_cuda(err2, "uploading dictionary tables");
  }
  view_ = view_of(static_cast<const uint8_t*>(blob_), layout_);
}

DeviceDictionary::~DeviceDictionary() {
  if (blob_) {
    int current = -1;
    const bool switch_device = cudaGetDevice(&current) == cudaSuccess && current != device_;
    if (switch_device) cudaSetDevice(device_);
    cudaFree(blob_);
    if (switch_device) cudaSetDevice(current);
  }
}

}  // namespace ldem::cuda
