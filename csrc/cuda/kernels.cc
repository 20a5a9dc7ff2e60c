// The host side of kernels.h: the stream plan, status texts, table packing and the
// argument checks of batch items. No CUDA headers (built in every build, with the
// emulation); the device side is host.cc and the *.cu kernels.
#include "cuda/kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

namespace ldem::cuda {
namespace {

[[noreturn]] void arg_error(const std::string& msg) { throw ArgumentError{msg}; }

bool fits(int64_t S, int lanes, uint64_t coded_bits_fx, uint32_t ppm) {
  // overhead * 256 * 1e6 <= ppm * coded_bits_fx, in 128-bit integers.
  const unsigned __int128 lhs = static_cast<unsigned __int128>(planned_overhead_bits(S, lanes))
                                << kCostFixedBits;
  return lhs * 1000000u <= static_cast<unsigned __int128>(ppm) * coded_bits_fx;
}

bool aligned4(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 3) == 0; }

}  // namespace

StreamParams plan_stream(int64_t N, uint64_t coded_bits_fx, int max_lanes_log2,
                         uint32_t overhead_ppm) {
  if (N < 0) arg_error("num_symbols must be >= 0");
  if (max_lanes_log2 < 0 || max_lanes_log2 > kMaxLanesLog2)
    arg_error("max lanes must be a power of two in [1, 32]");
  const int max_lanes = 1 << max_lanes_log2;
  // The smallest shift >= kMinPlanShift that gives one segment.
  int one = kMinPlanShift;
  while (one < kMaxSegmentShift && num_segments(N, one) > 1) ++one;
  for (int k = kMinPlanShift; k <= one; ++k)
    if (fits(num_segments(N, k), max_lanes, coded_bits_fx, overhead_ppm))
      return StreamParams{max_lanes_log2, k};
  for (int ll = max_lanes_log2 - 1; ll >= 0; --ll)
    if (fits(1, 1 << ll, coded_bits_fx, overhead_ppm)) return StreamParams{ll, one};
  return StreamParams{0, one};
}

std::string status_message(uint64_t status) {
  if (status == kStatusOk) return "ok";
  switch (static_cast<uint32_t>(status & 0xFF)) {
    case kBadMagic: return "not an ldem stream (bad magic)";
    case kBadVersion: return "unsupported stream format version";
    case kBadFlags: return "unknown stream flags";
    case kBadParams: return "invalid stream parameters";
    case kTooShortForShape: return "stream too short for its shape";
    case kTruncatedHeader: return "truncated stream header";
    case kBadSegmentLength: return "invalid segment length";
    case kDataForEmptyShape: return "stream has data but the shape is empty";
    case kLengthsExceedData: return "stream truncated (segment lengths exceed the data)";
    case kPartialWord: return "stream truncated (payload not a whole number of words)";
    case kChecksumMismatch: return "checksum mismatch";
    case kShortSegment: return "segment shorter than its initial states";
    case kBadInitialState: return "invalid initial coder state";
    case kTruncated: return "stream truncated";
    case kBadEscapeLength: return "invalid escape length";
    case kEscapeOutOfRange: return "escaped value outside int32";
    case kFinalState: return "stream does not match the shape, models or dictionary (final state)";
    case kUnreadData: return "stream has unread data (wrong shape or trailing bytes)";
    case kTooManySymbols: return "stream too short to hold that many symbols";
    case kBadModelIndex: return "models: an index is outside [0, number of models)";
    case kInternalError: return "internal error in the CUDA coder (arena bound)";
    default: return "unknown CUDA coder status " + std::to_string(status & 0xFF);
  }
}

void throw_status(uint64_t status) {
  if (status == kStatusOk) return;
  const uint32_t code = static_cast<uint32_t>(status & 0xFF);
  if (code >= kInternalError) throw std::runtime_error(status_message(status));
  if (code >= kFirstArgumentError) throw ArgumentError{status_message(status)};
  throw DecodeFailure{status_message(status)};
}

// ---------------------------------------------------------------------------------
// Tables.
// ---------------------------------------------------------------------------------
std::vector<uint8_t> pack_tables(const ModelSet& set, TableLayout* out_layout) {
  const size_t K = set.size();
  if (K == 0) arg_error("the dictionary has no models");
  if (K > (size_t{1} << 24)) arg_error("too many models for the CUDA engine (max 2^24)");
  const int P = set.precision;
  if (P < kMinPrecision || P > kMaxPrecision) arg_error("invalid precision");
  TableLayout L;
  L.K = static_cast<uint32_t>(K);
  L.precision = P;
  for (size_t k = 0; k < K; ++k) L.total += set.model(k).n + 1;
  if (L.total >= (uint64_t{1} << 32)) arg_error("dictionary tables too large for the CUDA engine");
  auto align = [](uint64_t v, uint64_t a) { return (v + a - 1) / a * a; };
  L.header = 0;
  L.lut = L.header + K * sizeof(ModelHeader);
  L.cdf = L.lut + K * (uint64_t{1} << kLutBits) * 2;
  L.decode_bytes = align(L.cdf + L.total * 2, 16);
  L.sf = L.decode_bytes;
  L.rcp = align(L.sf + L.total * 4, 16);
  L.cost = L.rcp + L.total * 8;
  L.cost_fx = L.cost + L.total * 8;
  L.bytes = align(L.cost_fx + L.total * 4, 256);
  std::vector<uint8_t> blob(L.bytes, 0);
  auto* header = reinterpret_cast<ModelHeader*>(blob.data() + L.header);
  auto* lut = reinterpret_cast<uint16_t*>(blob.data() + L.lut);
  auto* cdf = reinterpret_cast<uint16_t*>(blob.data() + L.cdf);
  auto* sf = reinterpret_cast<uint32_t*>(blob.data() + L.sf);
  auto* rcp = reinterpret_cast<uint64_t*>(blob.data() + L.rcp);
  auto* cost = reinterpret_cast<double*>(blob.data() + L.cost);
  auto* cost_fx = reinterpret_cast<uint32_t*>(blob.data() + L.cost_fx);
  uint64_t base = 0;
  const uint32_t M = 1u << P;
  for (size_t k = 0; k < K; ++k) {
    const Model& m = set.model(k);
    header[k] = ModelHeader{m.offset, m.n, static_cast<uint32_t>(base), 0};
    for (uint32_t s = 0; s <= m.n; ++s) {
      const uint32_t start = m.cdf[s], freq = m.freq[s];
      if (freq < 1 || freq >= M || start >= M) arg_error("invalid model table");
      cdf[base + s] = static_cast<uint16_t>(start);
      sf[base + s] = start | freq << 16;
      rcp[base + s] = m.enc[s].rcp;
      cost[base + s] = m.cost[s];
      cost_fx[base + s] = static_cast<uint32_t>(std::ceil(m.cost[s] * (1 << kCostFixedBits)));
    }
    const int shift = P - kLutBits;
    uint32_t s = 0;
    for (uint32_t b = 0; b < (1u << kLutBits); ++b) {
      const uint32_t slot = b << shift;
      while (m.cdf[s + 1] <= slot) ++s;
      lut[k * (1u << kLutBits) + b] = static_cast<uint16_t>(s);
    }
    base += m.n + 1;
  }
  *out_layout = L;
  return blob;
}

DictView view_of(const uint8_t* blob, const TableLayout& L) {
  DictView v;
  v.header = reinterpret_cast<const ModelHeader*>(blob + L.header);
  v.lut = reinterpret_cast<const uint16_t*>(blob + L.lut);
  v.cdf = reinterpret_cast<const uint16_t*>(blob + L.cdf);
  v.sf = reinterpret_cast<const uint32_t*>(blob + L.sf);
  v.rcp = reinterpret_cast<const uint64_t*>(blob + L.rcp);
  v.cost = reinterpret_cast<const double*>(blob + L.cost);
  v.cost_fx = reinterpret_cast<const uint32_t*>(blob + L.cost_fx);
  v.K = L.K;
  v.precision = L.precision;
  v.total = L.total;
  v.rcp_off = L.rcp - L.sf;
  v.lut_off = L.lut - L.header;
  v.cdf_off = L.cdf - L.header;
  v.decode_bytes = L.decode_bytes;
  return v;
}

// ---------------------------------------------------------------------------------
// Argument checks.
// ---------------------------------------------------------------------------------
void check_gpu_layout(const GpuLayout& g) {
  const Layout L = g.cpu();
  check_shape(L);
  if (L.H * L.W >= (int64_t{1} << 31))
    arg_error("the CUDA engine needs H * W < 2^31 symbols per channel");
  if (L.num_blocks() >= (int64_t{1} << 31))
    arg_error("the CUDA engine needs fewer than 2^31 blocks");
}

void check_encode_items(const EncodeItem* items, int count) {
  if (count < 0) arg_error("count must be >= 0");
  if (count > 0 && !items) arg_error("items is null");
  for (int i = 0; i < count; ++i) {
    const EncodeItem& it = items[i];
    const std::string at = count > 1 ? " (item " + std::to_string(i) + ")" : "";
    check_gpu_layout(it.layout);
    check_params(it.params);
    const int64_t N = it.layout.num_symbols();
    if (N > 0 && (!it.symbols || !it.models)) arg_error("null symbols or models pointer" + at);
    if (!aligned4(it.symbols) || !aligned4(it.models))
      arg_error("symbols and models must be 4-byte aligned" + at);
    if (!it.out) arg_error("null output pointer" + at);
    const size_t need = max_compressed_size(it.layout.cpu(), it.params);
    if (it.out_capacity < need)
      arg_error("output capacity " + std::to_string(it.out_capacity) + " below " +
                std::to_string(need) + " bytes" + at);
  }
}

void check_decode_items(const DecodeItem* items, int count) {
  if (count < 0) arg_error("count must be >= 0");
  if (count > 0 && !items) arg_error("items is null");
  for (int i = 0; i < count; ++i) {
    const DecodeItem& it = items[i];
    const std::string at = count > 1 ? " (item " + std::to_string(i) + ")" : "";
    check_gpu_layout(it.layout);
    if (it.size > 0 && !it.data) arg_error("null stream pointer" + at);
    const int64_t N = it.layout.num_symbols();
    if (N > 0 && (!it.models || !it.out)) arg_error("null models or output pointer" + at);
    if (!aligned4(it.models) || !aligned4(it.out))
      arg_error("models and output must be 4-byte aligned" + at);
  }
}

void check_cost_items(const CostItem* items, int count, uint32_t K) {
  if (count < 0) arg_error("count must be >= 0");
  if (count > 0 && !items) arg_error("items is null");
  int64_t total = 0;
  for (int i = 0; i < count; ++i) {
    const CostItem& it = items[i];
    const std::string at = count > 1 ? " (item " + std::to_string(i) + ")" : "";
    check_gpu_layout(it.layout);
    const int64_t N = it.layout.num_symbols();
    total += N;
    if (N > 0 && !it.symbols) arg_error("null symbols pointer" + at);
    if (!aligned4(it.symbols)) arg_error("symbols must be 4-byte aligned" + at);
    if ((reinterpret_cast<uintptr_t>(it.costs) & 7) != 0) arg_error("costs must be 8-byte aligned" + at);
    if (!aligned4(it.choice)) arg_error("choice must be 4-byte aligned" + at);
    if (N > 0 && !it.costs && !it.choice) arg_error("neither costs nor choice requested" + at);
    if (it.layout.num_blocks() * static_cast<int64_t>(K) >= (int64_t{1} << 40))
      arg_error("cost matrix too large" + at);
  }
  if (total >= (int64_t{1} << 31) - 1)
    arg_error("block costs on the GPU take fewer than 2^31 symbols per call");
}

}  // namespace ldem::cuda
