// Block costs and model selection on the GPU.
//
// Bit-identical to ldem::block_costs: the CPU adds cnt * cost(v) over the distinct
// values v of a block in increasing order, so the GPU builds the same (value, count)
// runs: one radix sort of keys (block << 32 | v ^ 2^31) over all symbols of the
// batch, a run-length encoding, and then one thread per (block, model) adds the
// runs of its block in order with the same IEEE roundings (no contraction).
#include <cub/device/device_radix_sort.cuh>
#include <cub/device/device_run_length_encode.cuh>

#include <algorithm>
#include <vector>

#include "cuda/ldem_cuda.h"
#include "cuda/warp.h"
#include "ldem/format.h"

namespace ldem::cuda {
namespace {

using detail::Carver;

struct CostDev {
  const int32_t* symbols;
  double* costs;     // user array or scratch
  int32_t* choice;   // may be null
  detail::Geom geom;
  int64_t N;
  uint64_t sym_base;    // first key of the item
  uint64_t block_base;  // first global block of the item
};

__global__ void __launch_bounds__(256)
    keys_kernel(const CostDev* items, int item0, uint64_t* keys) {
  const CostDev& it = items[item0 + blockIdx.y];
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < it.N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const detail::Pos p = detail::pos_of(i, it.geom.plane);
    const uint64_t block = it.block_base + static_cast<uint64_t>(it.geom.block(p.c, p.r));
    keys[it.sym_base + i] = detail::make_key(block, it.symbols[i]);
  }
}

__global__ void __launch_bounds__(256)
    run_begin_kernel(const uint64_t* run_keys, const int* num_runs, uint64_t blocks,
                     uint32_t* run_begin) {
  const int64_t n = *num_runs;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < n;
       r += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t b = run_keys[r] >> 32;
    if (r == 0 || (run_keys[r - 1] >> 32) != b) run_begin[b] = static_cast<uint32_t>(r);
    if (r == 0) run_begin[blocks] = static_cast<uint32_t>(n);
  }
}

__global__ void __launch_bounds__(256)
    costs_kernel(const CostDev* items, const uint64_t* block_prefix, int count, DictView t,
                 const uint64_t* run_keys, const uint32_t* run_counts, const uint32_t* run_begin) {
  const uint64_t K = t.K;
  const uint64_t total = block_prefix[count] * K;
  for (uint64_t q = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < total;
       q += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t b = q / K;
    const uint32_t k = static_cast<uint32_t>(q - b * K);
    const int item = detail::find_item(block_prefix, count, b);
    const CostDev& it = items[item];
    it.costs[(b - it.block_base) * K + k] =
        detail::runs_cost(t, k, run_keys, run_counts, run_begin[b], run_begin[b + 1]);
  }
}

// One warp per block: argmin_k (costs[b, k] + bias[k]), ties to the lower k.
__global__ void __launch_bounds__(256)
    select_kernel(const CostDev* items, const uint64_t* block_prefix, int count, uint32_t K,
                  const double* bias) {
  const uint64_t blocks = block_prefix[count];
  const int lane = threadIdx.x & 31;
  for (uint64_t b = (static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x) >> 5;
       b < blocks; b += (static_cast<uint64_t>(gridDim.x) * blockDim.x) >> 5) {
    const int item = detail::find_item(block_prefix, count, b);
    const CostDev& it = items[item];
    if (!it.choice) continue;  // warp-uniform
    const double* row = it.costs + (b - it.block_base) * K;
    double best = 0;
    uint32_t arg = 0xFFFFFFFFu;
    for (uint32_t k = lane; k < K; k += 32) {
      const double v = bias ? detail::dadd(row[k], bias[k]) : row[k];
      if (arg == 0xFFFFFFFFu || v < best) {
        best = v;
        arg = k;
      }
    }
    for (int d = 16; d > 0; d >>= 1) {
      const double ob = __shfl_down_sync(detail::kFull, best, d);
      const uint32_t oa = __shfl_down_sync(detail::kFull, arg, d);
      if (oa != 0xFFFFFFFFu && (arg == 0xFFFFFFFFu || ob < best || (ob == best && oa < arg))) {
        best = ob;
        arg = oa;
      }
    }
    if (lane == 0) it.choice[b - it.block_base] = static_cast<int32_t>(arg);
  }
}

struct CostPlan {
  std::vector<CostDev> dev;
  std::vector<uint64_t> block_prefix;
  uint64_t symbols = 0, blocks = 0, scratch_costs = 0;
  int end_bit = 32;
};

CostPlan plan_costs(const CostItem* items, int count, uint32_t K) {
  CostPlan p;
  p.dev.resize(count);
  p.block_prefix.assign(count + 1, 0);
  for (int i = 0; i < count; ++i) {
    const CostItem& it = items[i];
    CostDev& d = p.dev[i];
    d.symbols = it.symbols;
    d.costs = it.costs;
    d.choice = it.choice;
    d.geom = detail::Geom(it.layout);
    d.N = it.layout.num_symbols();
    d.sym_base = p.symbols;
    d.block_base = p.blocks;
    p.symbols += d.N;
    p.blocks += it.layout.num_blocks();
    p.block_prefix[i + 1] = p.blocks;
    if (!it.costs) p.scratch_costs += it.layout.num_blocks() * static_cast<uint64_t>(K);
  }
  int bits = 0;
  while (p.blocks > 1 && (uint64_t{1} << bits) < p.blocks) ++bits;
  p.end_bit = 32 + bits;
  return p;
}

struct CostScratch {
  CostDev* dev;
  uint64_t* block_prefix;
  uint64_t* keys_in;
  uint64_t* keys_out;
  uint64_t* run_keys;
  uint32_t* run_counts;
  int* num_runs;
  uint32_t* run_begin;
  double* costs;
  void* temp;
  size_t temp_bytes;
  size_t bytes;
};

size_t cub_temp_bytes(const CostPlan& p) {
  size_t sort = 0, rle = 0;
  const int n = static_cast<int>(p.symbols);
  check_cuda(cub::DeviceRadixSort::SortKeys(nullptr, sort, static_cast<const uint64_t*>(nullptr),
                                            static_cast<uint64_t*>(nullptr), n, 0, p.end_bit),
             "cub::DeviceRadixSort (size query)");
  check_cuda(cub::DeviceRunLengthEncode::Encode(nullptr, rle, static_cast<const uint64_t*>(nullptr),
                                                static_cast<uint64_t*>(nullptr),
                                                static_cast<uint32_t*>(nullptr),
                                                static_cast<int*>(nullptr), n),
             "cub::DeviceRunLengthEncode (size query)");
  return std::max(sort, rle);
}

CostScratch carve_costs(void* base, const CostPlan& p, int count, size_t temp_bytes) {
  Carver c(base);
  CostScratch s;
  s.dev = c.take<CostDev>(count);
  s.block_prefix = c.take<uint64_t>(count + 1);
  s.keys_in = c.take<uint64_t>(p.symbols);
  s.keys_out = c.take<uint64_t>(p.symbols);
  s.run_keys = c.take<uint64_t>(p.symbols);
  s.run_counts = c.take<uint32_t>(p.symbols);
  s.num_runs = c.take<int>(1);
  s.run_begin = c.take<uint32_t>(p.blocks + 1);
  s.costs = c.take<double>(p.scratch_costs);
  s.temp = c.take<uint8_t>(temp_bytes);
  s.temp_bytes = temp_bytes;
  s.bytes = c.used();
  return s;
}

int device_sms() {
  int dev = 0, sms = 1;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev),
             "cudaDeviceGetAttribute");
  return std::max(1, sms);
}

}  // namespace

size_t costs_scratch_bytes(const DeviceDictionary& dict, const CostItem* items, int count) {
  check_cost_items(items, count, dict.num_models());
  const CostPlan p = plan_costs(items, count, dict.num_models());
  return carve_costs(nullptr, p, count, p.symbols ? cub_temp_bytes(p) : 0).bytes;
}

void block_costs_batch(const DeviceDictionary& dict, const CostItem* items, int count,
                       const double* bias, void* scratch, size_t scratch_bytes,
                       cudaStream_t stream) {
  const uint32_t K = dict.num_models();
  check_cost_items(items, count, K);
  int dev = 0;
  check_cuda(cudaGetDevice(&dev), "cudaGetDevice");
  if (dev != dict.device())
    throw ArgumentError{"the dictionary lives on CUDA device " + std::to_string(dict.device()) +
                        ", but device " + std::to_string(dev) + " is current"};
  CostPlan p = plan_costs(items, count, K);
  if (p.symbols == 0) return;
  const size_t temp = cub_temp_bytes(p);
  const CostScratch s = carve_costs(scratch, p, count, temp);
  if (!scratch || (reinterpret_cast<uintptr_t>(scratch) & 255) != 0 || scratch_bytes < s.bytes)
    throw ArgumentError{"scratch must be 256-byte aligned with at least " +
                        std::to_string(s.bytes) + " bytes"};
  uint64_t off = 0;
  for (int i = 0; i < count; ++i)
    if (!p.dev[i].costs) {
      p.dev[i].costs = s.costs + off;
      off += static_cast<uint64_t>(items[i].layout.num_blocks()) * K;
    }
  check_cuda(cudaMemcpyAsync(s.dev, p.dev.data(), sizeof(CostDev) * count, cudaMemcpyHostToDevice,
                             stream),
             "cudaMemcpyAsync");
  check_cuda(cudaMemcpyAsync(s.block_prefix, p.block_prefix.data(), sizeof(uint64_t) * (count + 1),
                             cudaMemcpyHostToDevice, stream),
             "cudaMemcpyAsync");
  const int sms = device_sms();
  int64_t max_n = 0;
  for (const CostDev& d : p.dev) max_n = std::max(max_n, d.N);
  const unsigned gx = static_cast<unsigned>(std::min<int64_t>((max_n + 255) / 256, 1024));
  for (int i0 = 0; i0 < count; i0 += 65535) {
    const unsigned gy = static_cast<unsigned>(std::min(65535, count - i0));
    keys_kernel<<<dim3(gx, gy), 256, 0, stream>>>(s.dev, i0, s.keys_in);
    check_cuda(cudaGetLastError(), "keys_kernel");
  }
  const int n = static_cast<int>(p.symbols);
  size_t tb = s.temp_bytes;
  check_cuda(cub::DeviceRadixSort::SortKeys(s.temp, tb, s.keys_in, s.keys_out, n, 0, p.end_bit,
                                            stream),
             "cub::DeviceRadixSort");
  tb = s.temp_bytes;
  check_cuda(cub::DeviceRunLengthEncode::Encode(s.temp, tb, s.keys_out, s.run_keys, s.run_counts,
                                                s.num_runs, n, stream),
             "cub::DeviceRunLengthEncode");
  const unsigned rb = static_cast<unsigned>(std::min<uint64_t>((p.symbols + 255) / 256, 32ull * sms));
  run_begin_kernel<<<rb, 256, 0, stream>>>(s.run_keys, s.num_runs, p.blocks, s.run_begin);
  check_cuda(cudaGetLastError(), "run_begin_kernel");
  const uint64_t pairs = p.blocks * K;
  const unsigned cb = static_cast<unsigned>(std::min<uint64_t>((pairs + 255) / 256, 64ull * sms));
  costs_kernel<<<cb, 256, 0, stream>>>(s.dev, s.block_prefix, count, dict.view(), s.run_keys,
                                       s.run_counts, s.run_begin);
  check_cuda(cudaGetLastError(), "costs_kernel");
  bool any_choice = false;
  for (int i = 0; i < count; ++i) any_choice = any_choice || items[i].choice;
  if (any_choice) {
    const unsigned sb = static_cast<unsigned>(std::min<uint64_t>((p.blocks + 7) / 8, 64ull * sms));
    select_kernel<<<sb, 256, 0, stream>>>(s.dev, s.block_prefix, count, K, bias);
    check_cuda(cudaGetLastError(), "select_kernel");
  }
}

}  // namespace ldem::cuda
