// Host emulation of the CUDA kernels: the per-warp algorithms of warp.h run
// with HostWarp (32 simulated lanes), plus the same header, CRC and cost steps the
// kernels run, so the CPU can check the GPU's logic against the CPU coder.
#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "cuda/emulate.h"
#include "cuda/warp.h"
#include "ldem/endian.h"
#include "ldem/format.h"

namespace ldem::cuda::emulate {
namespace {

using detail::HostWarp;

struct Tables {
  std::vector<uint8_t> blob;
  TableLayout layout;
  DictView view;
  explicit Tables(const ModelSet& set) {
    blob = pack_tables(set, &layout);
    view = view_of(blob.data(), layout);
  }
};

GpuLayout gpu_layout(const Layout& L) { return GpuLayout{L.C, L.H, L.W, L.bh, L.bw}; }

std::vector<uint32_t> crc_table() {
  std::vector<uint32_t> t(256);
  for (uint32_t i = 0; i < 256; ++i) t[i] = detail::crc_table_entry(i);
  return t;
}

}  // namespace

uint32_t chunked_crc32(const uint8_t* data, size_t size, size_t chunk) {
  if (chunk == 0) throw ArgumentError{"chunk must be >= 1"};
  const std::vector<uint32_t> table = crc_table();
  uint32_t crc = 0;
  for (size_t at = 0; at < size; at += chunk) {
    const size_t n = std::min(chunk, size - at);
    crc = detail::crc_combine(crc, detail::crc32_bytes(table.data(), data + at, n), n);
  }
  return crc;
}

std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& L,
                            const ModelSet& dict, const StreamParams& params, bool checksum) {
  check_params(params);
  const GpuLayout g = gpu_layout(L);
  check_gpu_layout(g);
  Tables t(dict);
  const int lanes = 1 << params.lanes_log2;
  const int64_t N = L.num_symbols(), S = num_segments(N, params.segment_shift);
  // One arena tiled by the segments exactly as on the device.
  std::vector<uint32_t> arena(detail::stream_arena_words(N, S, lanes), 0xDEADBEEFu);
  std::vector<uint32_t> words(S);
  HostWarp w;
  for (int64_t s = 0; s < S; ++s) {
    const detail::SegmentSlot seg = detail::segment_slot(N, S, s, lanes);
    if (seg.offset + seg.capacity > arena.size()) throw std::logic_error("segment arena out of range");
    detail::EncodeJob job{symbols, models, detail::Geom(g), seg.a, seg.b, lanes,
                          arena.data() + seg.offset, seg.capacity};
    uint32_t code = 0;
    uint64_t pos = 0;
    const uint64_t n = detail::encode_segment(w, t.view, job, &code, &pos);
    if (code) throw_status(detail::make_status(code, pos));
    words[s] = static_cast<uint32_t>(n);
  }
  // Segments are copied only after all are encoded, so overlapping regions would show.
  const uint64_t hb = format::header_bytes(words.data(), S, checksum);
  uint64_t total = 0;
  for (int64_t s = 0; s < S; ++s) total += 4 * uint64_t{words[s]};
  std::vector<uint8_t> out(hb + total);
  format::write_header(out.data(), words.data(), S, params, checksum);
  uint8_t* p = out.data() + hb;
  for (int64_t s = 0; s < S; ++s) {
    const detail::SegmentSlot seg = detail::segment_slot(N, S, s, lanes);
    const uint32_t* src = arena.data() + seg.offset + seg.capacity - words[s];
    for (uint32_t k = 0; k < words[s]; ++k)
      for (int byte = 0; byte < 4; ++byte) *p++ = static_cast<uint8_t>(src[k] >> (8 * byte));
  }
  if (checksum) {
    const std::vector<uint32_t> table = crc_table();
    const uint32_t head = detail::crc32_bytes(table.data(), out.data(), hb - 4);
    const uint32_t c = detail::crc_combine(head, chunked_crc32(out.data() + hb, total, 1024), total);
    for (int i = 0; i < 4; ++i) out[hb - 4 + i] = static_cast<uint8_t>(c >> (8 * i));
  }
  return out;
}

void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& L,
            const ModelSet& dict, int32_t* out) {
  const GpuLayout g = gpu_layout(L);
  check_gpu_layout(g);
  Tables t(dict);
  const int64_t N = L.num_symbols();
  std::vector<uint64_t> starts(static_cast<size_t>(std::max<int64_t>(1, N >> 8)) + 1);
  format::ParsedStream ps;
  const uint32_t code = format::parse_stream(data, size, N, t.view.precision, &ps, starts.data());
  if (code) throw_status(detail::make_status(code, 0));
  if (ps.S == 0) return;
  const uint8_t* payload = data + ps.payload_off;
  if (ps.checksum) {
    const std::vector<uint32_t> table = crc_table();
    const uint32_t head = detail::crc32_bytes(table.data(), data, ps.payload_off - 4);
    if (detail::crc_combine(head, chunked_crc32(payload, ps.payload_bytes, 1024),
                            ps.payload_bytes) != ps.crc)
      throw_status(detail::make_status(kChecksumMismatch, 0));
  }
  // Copy the payload to a buffer of the same alignment as the device sees it:
  // aligned when (data + payload_off) is; here emulate both by the offset's parity.
  const bool aligned = (ps.payload_off & 3) == 0;
  std::vector<uint32_t> words((ps.payload_bytes + 3) / 4 + 1);
  load_le32_words(words.data(), payload, ps.payload_bytes / 4);  // whole words (parse_stream checked)
  const uint8_t* base = aligned ? reinterpret_cast<const uint8_t*>(words.data()) : payload;
  HostWarp w;
  uint64_t status = kStatusOk;
  for (int64_t s = 0; s < ps.S; ++s) {
    const int64_t a = format::segment_begin(N, ps.S, s), b = format::segment_begin(N, ps.S, s + 1);
    detail::DecodeJob job{models, detail::Geom(g), a, b, 1 << ps.lanes_log2,
                          detail::WordReader{base + 4 * starts[s], aligned},
                          starts[s + 1] - starts[s], out};
    uint64_t pos = 0;
    const uint32_t c = detail::decode_segment(w, t.view, job, &pos);
    if (c) status = std::min(status, detail::make_status(c, pos));
  }
  throw_status(status);
}

void block_costs(const int32_t* symbols, const Layout& L, const ModelSet& dict,
                 const double* bias, double* costs, int32_t* choice) {
  const GpuLayout g = gpu_layout(L);
  check_gpu_layout(g);
  Tables t(dict);
  const int64_t N = L.num_symbols(), B = L.num_blocks();
  const uint32_t K = t.view.K;
  // Keys (block, value), sorted; runs with counts (the GPU: radix sort + run-length).
  std::vector<uint64_t> keys(static_cast<size_t>(N));
  const detail::Geom geom(g);
  for (int64_t i = 0; i < N; ++i) {
    const detail::Pos p = detail::pos_of(i, geom.plane);
    keys[i] = detail::make_key(static_cast<uint64_t>(geom.block(p.c, p.r)), symbols[i]);
  }
  std::sort(keys.begin(), keys.end());
  std::vector<uint64_t> run_keys;
  std::vector<uint32_t> run_counts;
  for (size_t i = 0; i < keys.size();) {
    size_t j = i;
    while (j < keys.size() && keys[j] == keys[i]) ++j;
    run_keys.push_back(keys[i]);
    run_counts.push_back(static_cast<uint32_t>(j - i));
    i = j;
  }
  std::vector<uint64_t> begin(static_cast<size_t>(B) + 1, 0);
  for (size_t r = 0; r < run_keys.size(); ++r)
    if (r == 0 || (run_keys[r] >> 32) != (run_keys[r - 1] >> 32)) begin[run_keys[r] >> 32] = r;
  begin[B] = run_keys.size();
  for (int64_t b = 0; b < B; ++b) {
    double best = 0;
    int32_t arg = 0;
    for (uint32_t k = 0; k < K; ++k) {
      const double c = detail::runs_cost(t.view, k, run_keys.data(), run_counts.data(), begin[b],
                                         begin[b + 1]);
      if (costs) costs[b * K + k] = c;
      const double v = bias ? detail::dadd(c, bias[k]) : c;
      if (k == 0 || v < best) {
        best = v;
        arg = static_cast<int32_t>(k);
      }
    }
    if (choice) choice[b] = arg;
  }
}

uint64_t coded_bits(const int32_t* symbols, const int32_t* models, const Layout& L,
                    const ModelSet& dict) {
  const GpuLayout g = gpu_layout(L);
  check_gpu_layout(g);
  Tables t(dict);
  const detail::Geom geom(g);
  uint64_t bits = 0;
  for (int64_t i = 0; i < L.num_symbols(); ++i) {
    const detail::Pos p = detail::pos_of(i, geom.plane);
    const int32_t m = models[geom.block(p.c, p.r)];
    if (static_cast<uint32_t>(m) >= t.view.K) throw_status(detail::make_status(kBadModelIndex, i));
    bits += detail::value_cost_fx(t.view, t.view.header[m], symbols[i]);
  }
  return bits;
}

}  // namespace ldem::cuda::emulate
