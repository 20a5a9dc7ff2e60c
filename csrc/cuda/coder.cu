// Encode, decode and coded-size kernels of the CUDA engine, and their host entry
// points. The per-warp algorithms are in warp.h (shared with the host emulation).
//
// Encode:  encode_kernel   one warp per segment (persistent grid), words into the arena
//          layout_kernel   one thread per stream: header, segment byte offsets, size
//          copy_kernel     one warp per segment: arena words -> stream bytes
//          crc kernels     (checksum only) per-chunk CRC, then combined per stream
// Decode:  parse_kernel    one thread per stream: header, segment starts; then the
//                          prefix of segment counts over the batch
//          crc kernels     verify the CRC of streams that carry one
//          decode_kernel   one warp per segment (persistent grid)
#include <algorithm>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <vector>

#include "cuda/ldem_cuda.h"
#include "cuda/warp.h"
#include "ldem/format.h"

namespace ldem::cuda {
namespace {

using detail::DeviceWarp;

constexpr int kWarpsPerBlock = 8;
constexpr int kThreads = kWarpsPerBlock * 32;
constexpr uint64_t kCrcChunk = 4096;  // bytes per CRC thread

using detail::Carver;

// ---------------------------------------------------------------------------------
// Device descriptors.
// ---------------------------------------------------------------------------------
struct EncDev {
  const int32_t* symbols;
  const int32_t* models;
  detail::Geom geom;
  int64_t N;
  int64_t S;
  int32_t lanes_log2;
  int32_t shift;
  uint8_t* out;
  uint64_t arena;  // first arena word of the item
};

struct DecDev {
  const uint8_t* data;
  uint64_t size;
  const int32_t* models;
  int32_t* out;
  detail::Geom geom;
  int64_t N;
  uint64_t starts;  // first entry of the item in the starts array
};

// What the CRC of a stream covers: bytes [0, head) (the header before the CRC
// field), then [off, off + len) (the payload). len 0 and head 0: nothing to check.
struct CrcRange {
  uint64_t off;
  uint64_t len;
  uint64_t head;
};

using detail::find_item;

__device__ __forceinline__ void set_status(uint64_t* status, int item, uint32_t code,
                                           uint64_t pos) {
  atomicMin(reinterpret_cast<unsigned long long*>(status + item),
            static_cast<unsigned long long>(detail::make_status(code, pos)));
}

// Copies `bytes` (multiple of 16, 16-aligned both sides) from global to shared.
__device__ __forceinline__ void stage(void* dst, const void* src, uint64_t bytes) {
  const uint4* s = static_cast<const uint4*>(src);
  uint4* d = static_cast<uint4*>(dst);
  for (uint64_t i = threadIdx.x; i < bytes / 16; i += blockDim.x) d[i] = s[i];
}

// ---------------------------------------------------------------------------------
// Encode.
// ---------------------------------------------------------------------------------
__global__ void __launch_bounds__(kThreads)
    encode_kernel(const EncDev* items, const uint64_t* seg_prefix, int count, DictView t,
                  uint64_t stage_bytes, uint32_t* arena, uint32_t* seg_words, uint64_t* status) {
  const uint64_t total = seg_prefix[count];
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kWarpsPerBlock;
  if (first >= total) return;
  extern __shared__ __align__(16) uint8_t smem[];
  if (stage_bytes) {
    // header | [sf .. rcp end)
    const uint64_t hb = static_cast<uint64_t>(t.K) * sizeof(ModelHeader);
    const uint64_t eb = (t.rcp_off + t.total * 8 + 15) / 16 * 16;
    stage(smem, t.header, hb);
    stage(smem + hb, t.sf, eb);
    __syncthreads();
    t.header = reinterpret_cast<const ModelHeader*>(smem);
    t.sf = reinterpret_cast<const uint32_t*>(smem + hb);
    t.rcp = reinterpret_cast<const uint64_t*>(smem + hb + t.rcp_off);
  }
  DeviceWarp w{static_cast<int>(threadIdx.x & 31)};
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * kWarpsPerBlock;
  for (uint64_t g = first + (threadIdx.x >> 5); g < total; g += stride) {
    const int item = find_item(seg_prefix, count, g);
    const EncDev& it = items[item];
    const int64_t s = static_cast<int64_t>(g - seg_prefix[item]);
    const int lanes = 1 << it.lanes_log2;
    const detail::SegmentSlot seg = detail::segment_slot(it.N, it.S, s, lanes);
    detail::EncodeJob job{it.symbols, it.models, it.geom, seg.a, seg.b, lanes,
                          arena + it.arena + seg.offset, seg.capacity};
    uint32_t code = 0;
    uint64_t pos = 0;
    const uint64_t n = detail::encode_segment(w, t, job, &code, &pos);
    if (w.lane == 0) {
      seg_words[g] = static_cast<uint32_t>(n);
      if (code) set_status(status, item, code, pos);
    }
  }
}

__global__ void layout_kernel(const EncDev* items, const uint64_t* seg_prefix, int count,
                              bool checksum, const uint32_t* seg_words, uint64_t* seg_off,
                              uint64_t* sizes, CrcRange* crc) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= count) return;
  const EncDev& it = items[i];
  const uint64_t g0 = seg_prefix[i];
  const uint32_t* words = seg_words + g0;
  const uint64_t hb =
      format::write_header(it.out, words, it.S, StreamParams{it.lanes_log2, it.shift}, checksum);
  uint64_t off = hb;
  for (int64_t s = 0; s < it.S; ++s) {
    seg_off[g0 + s] = off;
    off += 4 * static_cast<uint64_t>(words[s]);
  }
  sizes[i] = off;
  if (crc) crc[i] = CrcRange{hb, off - hb, hb - 4};
}

__global__ void __launch_bounds__(kThreads)
    copy_kernel(const EncDev* items, const uint64_t* seg_prefix, int count, const uint32_t* arena,
                const uint32_t* seg_words, const uint64_t* seg_off) {
  const uint64_t total = seg_prefix[count];
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * kWarpsPerBlock;
  const int lane = threadIdx.x & 31;
  for (uint64_t g = static_cast<uint64_t>(blockIdx.x) * kWarpsPerBlock + (threadIdx.x >> 5);
       g < total; g += stride) {
    const int item = find_item(seg_prefix, count, g);
    const EncDev& it = items[item];
    const int64_t s = static_cast<int64_t>(g - seg_prefix[item]);
    const detail::SegmentSlot seg = detail::segment_slot(it.N, it.S, s, 1 << it.lanes_log2);
    const uint32_t n = seg_words[g];
    const uint32_t* src = arena + it.arena + seg.offset + seg.capacity - n;
    uint8_t* dst = it.out + seg_off[g];
    if ((reinterpret_cast<uintptr_t>(dst) & 3) == 0) {
      uint32_t* d = reinterpret_cast<uint32_t*>(dst);
      for (uint32_t k = lane; k < n; k += 32) d[k] = src[k];
    } else {
      for (uint32_t k = lane; k < n; k += 32) {
        const uint32_t v = src[k];
        dst[4 * k] = static_cast<uint8_t>(v);
        dst[4 * k + 1] = static_cast<uint8_t>(v >> 8);
        dst[4 * k + 2] = static_cast<uint8_t>(v >> 16);
        dst[4 * k + 3] = static_cast<uint8_t>(v >> 24);
      }
    }
  }
}

// ---------------------------------------------------------------------------------
// CRC-32: thread per chunk, then one block per stream combines its chunks.
// ---------------------------------------------------------------------------------
// base(i): the stream bytes of item i (out for encode, data for decode).
struct CrcStreams {
  const EncDev* enc;  // one of the two
  const DecDev* dec;
  __device__ const uint8_t* base(int i) const { return enc ? enc[i].out : dec[i].data; }
};

__global__ void __launch_bounds__(256)
    crc_chunks_kernel(CrcStreams streams, const CrcRange* ranges, const uint64_t* chunk_prefix,
                      int count, uint32_t* chunk_crc) {
  __shared__ uint32_t table[256];
  table[threadIdx.x] = detail::crc_table_entry(threadIdx.x);
  __syncthreads();
  const uint64_t c = static_cast<uint64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= chunk_prefix[count]) return;
  const int i = find_item(chunk_prefix, count, c);
  const CrcRange r = ranges[i];
  const uint64_t at = (c - chunk_prefix[i]) * kCrcChunk;
  uint32_t crc = 0;
  if (at < r.len) {
    const uint64_t n = r.len - at < kCrcChunk ? r.len - at : kCrcChunk;
    crc = detail::crc32_bytes(table, streams.base(i) + r.off + at, n);
  }
  chunk_crc[c] = crc;
}

// verify: compare with expected[i] (decode) and set status; else write the CRC
// in the 4 bytes before the payload (encode).
__global__ void __launch_bounds__(256)
    crc_finish_kernel(CrcStreams streams, const CrcRange* ranges, const uint64_t* chunk_prefix,
                      const uint32_t* chunk_crc, const format::ParsedStream* expected,
                      uint64_t* status) {
  __shared__ uint32_t crc_s[256];
  __shared__ uint64_t len_s[256];
  __shared__ uint32_t table[256];
  const int i = blockIdx.x;
  const CrcRange r = ranges[i];
  if (expected && (!expected[i].checksum || expected[i].S == 0)) return;
  table[threadIdx.x] = detail::crc_table_entry(threadIdx.x);
  const uint64_t nchunks = (r.len + kCrcChunk - 1) / kCrcChunk;
  const uint32_t* cc = chunk_crc + chunk_prefix[i];
  const uint64_t per = (nchunks + blockDim.x - 1) / blockDim.x;
  uint32_t crc = 0;
  uint64_t len = 0;
  for (uint64_t k = threadIdx.x * per; k < nchunks && k < (threadIdx.x + 1) * per; ++k) {
    const uint64_t at = k * kCrcChunk;
    const uint64_t n = r.len - at < kCrcChunk ? r.len - at : kCrcChunk;
    crc = detail::crc_combine(crc, cc[k], n);
    len += n;
  }
  crc_s[threadIdx.x] = crc;
  len_s[threadIdx.x] = len;
  __syncthreads();
  for (unsigned half = 1; half < blockDim.x; half <<= 1) {
    if ((threadIdx.x & (2 * half - 1)) == 0 && threadIdx.x + half < blockDim.x) {
      crc_s[threadIdx.x] =
          detail::crc_combine(crc_s[threadIdx.x], crc_s[threadIdx.x + half], len_s[threadIdx.x + half]);
      len_s[threadIdx.x] += len_s[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x != 0) return;
  const uint32_t head = detail::crc32_bytes(table, streams.base(i), r.head);
  const uint32_t c = detail::crc_combine(head, crc_s[0], len_s[0]);
  if (expected) {
    if (c != expected[i].crc) set_status(status, i, kChecksumMismatch, 0);
  } else {
    uint8_t* p = streams.enc[i].out + r.off - 4;
    for (int b = 0; b < 4; ++b) p[b] = static_cast<uint8_t>(c >> (8 * b));
  }
}

// ---------------------------------------------------------------------------------
// Decode.
// ---------------------------------------------------------------------------------
// One block: a thread per stream parses its header; then thread 0 sums the segment
// counts of the good streams.
__global__ void __launch_bounds__(256)
    parse_kernel(const DecDev* items, int count, int precision, format::ParsedStream* parsed,
                 uint64_t* starts, CrcRange* crc, uint64_t* seg_prefix, uint64_t* status) {
  for (int i = threadIdx.x; i < count; i += blockDim.x) {
    const DecDev& it = items[i];
    format::ParsedStream ps;
    const uint32_t code =
        format::parse_stream(it.data, it.size, it.N, precision, &ps, starts + it.starts);
    if (code) {
      set_status(status, i, code, 0);
      ps.S = 0;
      ps.checksum = 0;
    }
    parsed[i] = ps;
    const bool check = ps.checksum && ps.S;
    crc[i] = CrcRange{ps.payload_off, check ? ps.payload_bytes : 0, check ? ps.payload_off - 4 : 0};
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    uint64_t sum = 0;
    for (int i = 0; i < count; ++i) {
      seg_prefix[i] = sum;
      sum += static_cast<uint64_t>(parsed[i].S);
    }
    seg_prefix[count] = sum;
  }
}

__global__ void __launch_bounds__(kThreads)
    decode_kernel(const DecDev* items, const format::ParsedStream* parsed, const uint64_t* starts,
                  const uint64_t* seg_prefix, int count, DictView t, uint64_t stage_bytes,
                  uint64_t* status) {
  const uint64_t total = seg_prefix[count];
  const uint64_t first = static_cast<uint64_t>(blockIdx.x) * kWarpsPerBlock;
  if (first >= total) return;
  extern __shared__ __align__(16) uint8_t smem[];
  if (stage_bytes) {
    stage(smem, t.header, stage_bytes);
    __syncthreads();
    t.header = reinterpret_cast<const ModelHeader*>(smem);
    t.lut = reinterpret_cast<const uint16_t*>(smem + t.lut_off);
    t.cdf = reinterpret_cast<const uint16_t*>(smem + t.cdf_off);
  }
  DeviceWarp w{static_cast<int>(threadIdx.x & 31)};
  const uint64_t stride = static_cast<uint64_t>(gridDim.x) * kWarpsPerBlock;
  for (uint64_t g = first + (threadIdx.x >> 5); g < total; g += stride) {
    const int item = find_item(seg_prefix, count, g);
    const DecDev& it = items[item];
    const format::ParsedStream& ps = parsed[item];
    const int64_t s = static_cast<int64_t>(g - seg_prefix[item]);
    const uint64_t* st = starts + it.starts;
    const uint8_t* payload = it.data + ps.payload_off;
    const bool aligned = (reinterpret_cast<uintptr_t>(payload) & 3) == 0;
    detail::DecodeJob job{it.models,
                          it.geom,
                          format::segment_begin(it.N, ps.S, s),
                          format::segment_begin(it.N, ps.S, s + 1),
                          1 << ps.lanes_log2,
                          detail::WordReader{payload + 4 * st[s], aligned},
                          st[s + 1] - st[s],
                          it.out};
    uint64_t pos = 0;
    const uint32_t code = detail::decode_segment(w, t, job, &pos);
    if (code && w.lane == 0) set_status(status, item, code, pos);
  }
}

// ---------------------------------------------------------------------------------
// Coded size estimate: one thread per symbol, integer sums (deterministic).
// ---------------------------------------------------------------------------------
__global__ void __launch_bounds__(256)
    estimate_kernel(const EncDev* items, int item0, DictView t, uint64_t* bits, uint64_t* status) {
  const int item = item0 + blockIdx.y;
  const EncDev& it = items[item];
  uint64_t sum = 0;
  bool bad = false;
  uint64_t bad_at = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < it.N;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const detail::Pos p = detail::pos_of(i, it.geom.plane);
    const int32_t m = it.models[it.geom.block(p.c, p.r)];
    if (static_cast<uint32_t>(m) >= t.K) {
      if (!bad) bad_at = static_cast<uint64_t>(i);
      bad = true;
      continue;
    }
    sum += detail::value_cost_fx(t, t.header[m], it.symbols[i]);
  }
  for (int d = 16; d > 0; d >>= 1) sum += __shfl_down_sync(detail::kFull, sum, d);
  if ((threadIdx.x & 31) == 0 && sum)
    atomicAdd(reinterpret_cast<unsigned long long*>(bits + item),
              static_cast<unsigned long long>(sum));
  if (bad) set_status(status, item, kBadModelIndex, bad_at);
}

// ---------------------------------------------------------------------------------
// Launch helpers.
// ---------------------------------------------------------------------------------
int current_device() {
  int d = 0;
  check_cuda(cudaGetDevice(&d), "cudaGetDevice");
  return d;
}

void check_dictionary_device(const DeviceDictionary& dict) {
  if (current_device() != dict.device())
    throw ArgumentError{"the dictionary lives on CUDA device " + std::to_string(dict.device()) +
                        ", but device " + std::to_string(current_device()) + " is current"};
}

// Blocks of a persistent grid for `work_warps` warps: at most what fits at once.
// key: a small id of the kernel (for the one-time shared-memory opt-in).
template <class Kernel>
int persistent_blocks(Kernel kernel, int key, uint64_t smem, uint64_t work_warps) {
  const int dev = current_device();
  static std::mutex mu;
  static std::vector<int> attribute_set;
  {
    std::lock_guard<std::mutex> lock(mu);
    // Opt in to more than 48 KiB of dynamic shared memory, once per device and kernel.
    const int id = dev * 16 + key;
    if (std::find(attribute_set.begin(), attribute_set.end(), id) == attribute_set.end()) {
      check_cuda(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(kStageBytes)),
                 "cudaFuncSetAttribute");
      attribute_set.push_back(id);
    }
  }
  int sms = 1, per_sm = 1;
  check_cuda(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev),
             "cudaDeviceGetAttribute");
  check_cuda(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kThreads,
                                                           static_cast<size_t>(smem)),
             "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
  const uint64_t want = (work_warps + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const uint64_t cap = static_cast<uint64_t>(std::max(1, per_sm)) * std::max(1, sms);
  return static_cast<int>(std::max<uint64_t>(1, std::min(want, cap)));
}

uint64_t encode_stage_bytes(const DictView& t) {
  const uint64_t b = static_cast<uint64_t>(t.K) * sizeof(ModelHeader) +
                     (t.rcp_off + t.total * 8 + 15) / 16 * 16;
  return b <= kStageBytes ? b : 0;
}

uint64_t decode_stage_bytes(const DictView& t) {
  return t.decode_bytes <= kStageBytes ? t.decode_bytes : 0;
}

struct EncodePlan {
  std::vector<EncDev> dev;
  std::vector<uint64_t> seg_prefix;    // count + 1
  std::vector<uint64_t> chunk_prefix;  // count + 1 (checksum)
  uint64_t arena_words = 0;
};

EncodePlan plan_encode(const EncodeItem* items, int count, bool checksum) {
  EncodePlan p;
  p.dev.resize(count);
  p.seg_prefix.assign(count + 1, 0);
  p.chunk_prefix.assign(count + 1, 0);
  for (int i = 0; i < count; ++i) {
    const EncodeItem& it = items[i];
    EncDev& d = p.dev[i];
    d.symbols = it.symbols;
    d.models = it.models;
    d.geom = detail::Geom(it.layout);
    d.N = it.layout.num_symbols();
    d.S = num_segments(d.N, it.params.segment_shift);
    d.lanes_log2 = it.params.lanes_log2;
    d.shift = it.params.segment_shift;
    d.out = it.out;
    d.arena = p.arena_words;
    const uint64_t words = detail::stream_arena_words(d.N, d.S, 1 << d.lanes_log2);
    p.arena_words += words;
    p.seg_prefix[i + 1] = p.seg_prefix[i] + d.S;
    p.chunk_prefix[i + 1] = p.chunk_prefix[i] + (checksum ? (4 * words + kCrcChunk - 1) / kCrcChunk : 0);
  }
  return p;
}

struct EncodeScratch {
  EncDev* dev;
  uint64_t* seg_prefix;
  uint64_t* chunk_prefix;
  uint32_t* arena;
  uint32_t* seg_words;
  uint64_t* seg_off;
  CrcRange* crc;
  uint32_t* chunk_crc;
  size_t bytes;
};

EncodeScratch carve_encode(void* base, const EncodePlan& p, int count, bool checksum) {
  Carver c(base);
  EncodeScratch s;
  const uint64_t S = p.seg_prefix[count];
  s.dev = c.take<EncDev>(count);
  s.seg_prefix = c.take<uint64_t>(count + 1);
  s.chunk_prefix = c.take<uint64_t>(count + 1);
  s.arena = c.take<uint32_t>(p.arena_words);
  s.seg_words = c.take<uint32_t>(S);
  s.seg_off = c.take<uint64_t>(S);
  s.crc = checksum ? c.take<CrcRange>(count) : nullptr;
  s.chunk_crc = checksum ? c.take<uint32_t>(p.chunk_prefix[count]) : nullptr;
  s.bytes = c.used();
  return s;
}

void upload(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes) check_cuda(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream),
                        "cudaMemcpyAsync (descriptors)");
}

void check_scratch(void* scratch, size_t have, size_t need) {
  if (need && !scratch) throw ArgumentError{"scratch is null"};
  if ((reinterpret_cast<uintptr_t>(scratch) & 255) != 0)
    throw ArgumentError{"scratch must be 256-byte aligned"};
  if (have < need)
    throw ArgumentError{"scratch has " + std::to_string(have) + " bytes, needs " +
                        std::to_string(need)};
}

void check_launch(const char* what) { check_cuda(cudaGetLastError(), what); }

}  // namespace

// ---------------------------------------------------------------------------------
// Entry points.
// ---------------------------------------------------------------------------------
size_t encode_scratch_bytes(const EncodeItem* items, int count, bool checksum) {
  check_encode_items(items, count);
  const EncodePlan p = plan_encode(items, count, checksum);
  return carve_encode(nullptr, p, count, checksum).bytes;
}

void encode_batch(const DeviceDictionary& dict, const EncodeItem* items, int count, bool checksum,
                  uint64_t* sizes, uint64_t* status, void* scratch, size_t scratch_bytes,
                  cudaStream_t stream) {
  check_encode_items(items, count);
  if (count == 0) return;
  if (!sizes || !status) throw ArgumentError{"sizes and status must be device arrays"};
  check_dictionary_device(dict);
  const EncodePlan p = plan_encode(items, count, checksum);
  const EncodeScratch s = carve_encode(scratch, p, count, checksum);
  check_scratch(scratch, scratch_bytes, s.bytes);
  upload(s.dev, p.dev.data(), sizeof(EncDev) * count, stream);
  upload(s.seg_prefix, p.seg_prefix.data(), sizeof(uint64_t) * (count + 1), stream);
  upload(s.chunk_prefix, p.chunk_prefix.data(), sizeof(uint64_t) * (count + 1), stream);
  check_cuda(cudaMemsetAsync(status, 0xFF, sizeof(uint64_t) * count, stream), "cudaMemsetAsync");
  const uint64_t segments = p.seg_prefix[count];
  const DictView& t = dict.view();
  if (segments) {
    const uint64_t smem = encode_stage_bytes(t);
    const int blocks = persistent_blocks(encode_kernel, 0, smem, segments);
    encode_kernel<<<blocks, kThreads, smem, stream>>>(s.dev, s.seg_prefix, count, t, smem,
                                                      s.arena, s.seg_words, status);
    check_launch("encode_kernel");
  }
  layout_kernel<<<(count + 127) / 128, 128, 0, stream>>>(s.dev, s.seg_prefix, count, checksum,
                                                          s.seg_words, s.seg_off, sizes, s.crc);
  check_launch("layout_kernel");
  if (segments) {
    const int sms = [] {
      int v = 1;
      cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, current_device());
      return v;
    }();
    const uint64_t want = (segments + kWarpsPerBlock - 1) / kWarpsPerBlock;
    const int blocks = static_cast<int>(std::min<uint64_t>(want, 8ull * sms));
    copy_kernel<<<blocks, kThreads, 0, stream>>>(s.dev, s.seg_prefix, count, s.arena, s.seg_words,
                                                 s.seg_off);
    check_launch("copy_kernel");
  }
  if (checksum) {
    const CrcStreams streams{s.dev, nullptr};
    const uint64_t chunks = p.chunk_prefix[count];
    if (chunks) {
      crc_chunks_kernel<<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, stream>>>(
          streams, s.crc, s.chunk_prefix, count, s.chunk_crc);
      check_launch("crc_chunks_kernel");
    }
    crc_finish_kernel<<<count, 256, 0, stream>>>(streams, s.crc, s.chunk_prefix, s.chunk_crc,
                                                 nullptr, status);
    check_launch("crc_finish_kernel");
  }
}

size_t estimate_scratch_bytes(const EncodeItem* items, int count) {
  (void)items;
  Carver c(nullptr);
  c.take<EncDev>(count);
  return c.used();
}

void estimate_coded_bits(const DeviceDictionary& dict, const EncodeItem* items, int count,
                         uint64_t* bits, uint64_t* status, void* scratch, size_t scratch_bytes,
                         cudaStream_t stream) {
  if (count < 0) throw ArgumentError{"count must be >= 0"};
  for (int i = 0; i < count; ++i) {
    check_gpu_layout(items[i].layout);
    if (items[i].layout.num_symbols() > 0 && (!items[i].symbols || !items[i].models))
      throw ArgumentError{"null symbols or models pointer"};
  }
  if (count == 0) return;
  if (!bits || !status) throw ArgumentError{"bits and status must be device arrays"};
  check_dictionary_device(dict);
  EncodePlan p = plan_encode(items, count, false);
  Carver c(scratch);
  EncDev* dev = c.take<EncDev>(count);
  check_scratch(scratch, scratch_bytes, c.used());
  upload(dev, p.dev.data(), sizeof(EncDev) * count, stream);
  check_cuda(cudaMemsetAsync(status, 0xFF, sizeof(uint64_t) * count, stream), "cudaMemsetAsync");
  check_cuda(cudaMemsetAsync(bits, 0, sizeof(uint64_t) * count, stream), "cudaMemsetAsync");
  int64_t max_n = 0;
  for (const EncDev& d : p.dev) max_n = std::max(max_n, d.N);
  if (max_n == 0) return;
  const unsigned gx = static_cast<unsigned>(std::min<int64_t>((max_n + 255) / 256, 1024));
  for (int i0 = 0; i0 < count; i0 += 65535) {
    const unsigned gy = static_cast<unsigned>(std::min(65535, count - i0));
    estimate_kernel<<<dim3(gx, gy), 256, 0, stream>>>(dev, i0, dict.view(), bits, status);
    check_launch("estimate_kernel");
  }
}

namespace {
struct DecodePlan {
  std::vector<DecDev> dev;
  std::vector<uint64_t> chunk_prefix;
  uint64_t starts = 0;
  uint64_t max_segments = 0;
};

DecodePlan plan_decode(const DecodeItem* items, int count) {
  DecodePlan p;
  p.dev.resize(count);
  p.chunk_prefix.assign(count + 1, 0);
  for (int i = 0; i < count; ++i) {
    const DecodeItem& it = items[i];
    DecDev& d = p.dev[i];
    d.data = it.data;
    d.size = it.size;
    d.models = it.models;
    d.out = it.out;
    d.geom = detail::Geom(it.layout);
    d.N = it.layout.num_symbols();
    d.starts = p.starts;
    const uint64_t smax = d.N > 0 ? std::max<uint64_t>(1, static_cast<uint64_t>(d.N) >> kMinSegmentShift) : 0;
    p.starts += smax + 1;
    p.max_segments += smax;
    p.chunk_prefix[i + 1] = p.chunk_prefix[i] + (it.size + kCrcChunk - 1) / kCrcChunk;
  }
  return p;
}

struct DecodeScratch {
  DecDev* dev;
  uint64_t* chunk_prefix;
  format::ParsedStream* parsed;
  uint64_t* starts;
  CrcRange* crc;
  uint64_t* seg_prefix;
  uint32_t* chunk_crc;
  size_t bytes;
};

DecodeScratch carve_decode(void* base, const DecodePlan& p, int count) {
  Carver c(base);
  DecodeScratch s;
  s.dev = c.take<DecDev>(count);
  s.chunk_prefix = c.take<uint64_t>(count + 1);
  s.parsed = c.take<format::ParsedStream>(count);
  s.starts = c.take<uint64_t>(p.starts);
  s.crc = c.take<CrcRange>(count);
  s.seg_prefix = c.take<uint64_t>(count + 1);
  s.chunk_crc = c.take<uint32_t>(p.chunk_prefix[count]);
  s.bytes = c.used();
  return s;
}
}  // namespace

size_t decode_scratch_bytes(const DecodeItem* items, int count) {
  check_decode_items(items, count);
  return carve_decode(nullptr, plan_decode(items, count), count).bytes;
}

void decode_batch(const DeviceDictionary& dict, const DecodeItem* items, int count,
                  uint64_t* status, void* scratch, size_t scratch_bytes, cudaStream_t stream) {
  check_decode_items(items, count);
  if (count == 0) return;
  if (!status) throw ArgumentError{"status must be a device array"};
  check_dictionary_device(dict);
  const DecodePlan p = plan_decode(items, count);
  const DecodeScratch s = carve_decode(scratch, p, count);
  check_scratch(scratch, scratch_bytes, s.bytes);
  upload(s.dev, p.dev.data(), sizeof(DecDev) * count, stream);
  upload(s.chunk_prefix, p.chunk_prefix.data(), sizeof(uint64_t) * (count + 1), stream);
  check_cuda(cudaMemsetAsync(status, 0xFF, sizeof(uint64_t) * count, stream), "cudaMemsetAsync");
  parse_kernel<<<1, 256, 0, stream>>>(s.dev, count, dict.precision(), s.parsed, s.starts, s.crc,
                                      s.seg_prefix, status);
  check_launch("parse_kernel");
  const uint64_t chunks = p.chunk_prefix[count];
  if (chunks) {
    const CrcStreams streams{nullptr, s.dev};
    crc_chunks_kernel<<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, stream>>>(
        streams, s.crc, s.chunk_prefix, count, s.chunk_crc);
    check_launch("crc_chunks_kernel");
    crc_finish_kernel<<<count, 256, 0, stream>>>(streams, s.crc, s.chunk_prefix, s.chunk_crc,
                                                 s.parsed, status);
    check_launch("crc_finish_kernel");
  }
  if (p.max_segments) {
    const DictView& t = dict.view();
    const uint64_t smem = decode_stage_bytes(t);
    const int blocks = persistent_blocks(decode_kernel, 1, smem, p.max_segments);
    decode_kernel<<<blocks, kThreads, smem, stream>>>(s.dev, s.parsed, s.starts, s.seg_prefix,
                                                      count, t, smem, status);
    check_launch("decode_kernel");
  }
}

}  // namespace ldem::cuda
