// Tests of the coder (ldem/coder.h): round trips over precisions, shapes, block sizes,
// lane counts and escapes with both encoders, and hostile streams and model maps.
#include <algorithm>
#include <climits>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "check.h"
#include "ldem/coder.h"
#include "ldem/costs.h"
#include "ldem/format.h"

using namespace ldem;
using namespace ldem::test;

static void roundtrip(std::mt19937& rng, int precision, Layout L, int K, double wide,
                      StreamParams params = {}) {
  Dictionary dict = random_dictionary(rng, precision, K);
  const std::vector<int32_t> sym = random_symbols(rng, L.num_symbols(), wide);
  std::vector<int32_t> models(L.num_blocks());
  for (auto& m : models) m = static_cast<int32_t>(rng() % K);
  check_layout(L, models.data(), dict);
  std::vector<uint8_t> a = encode(sym.data(), models.data(), L, dict, 1, false, params);
  std::vector<uint8_t> b = encode(sym.data(), models.data(), L, dict, 4, false, params);
  CHECK(a == b);
  // The scalar encoder (the vector one is off) writes the same bytes.
  set_vector_encoder(false);
  CHECK(encode(sym.data(), models.data(), L, dict, 1, false, params) == a);
  set_vector_encoder(true);
  CHECK(a.size() <= max_compressed_size(L, params));
  CHECK(max_compressed_size(L, params) == format::max_stream_bytes(L.num_symbols(), params));
  // The header is format::write_header of the segment lengths.
  {
    const EncodedStream e = encode_stream(sym.data(), models.data(), L, ModelSet(dict), 1, false, params);
    std::vector<uint8_t> h(format::header_bytes(e.words.data(), static_cast<int64_t>(e.words.size()), false));
    format::write_header(h.data(), e.words.data(), static_cast<int64_t>(e.words.size()), params, false);
    CHECK(h == e.header);
    CHECK(std::equal(h.begin(), h.end(), a.begin()));
  }
  std::vector<int32_t> back(sym.size(), 12345);
  decode(a.data(), a.size(), models.data(), L, dict, 3, back.data());
  CHECK(back == sym);

  // Exact costs bound the coded size.
  std::vector<double> costs(L.num_blocks() * dict.size());
  block_costs(sym.data(), L, dict, 2, costs.data());
  double bits = 0;
  for (int64_t i = 0; i < L.num_blocks(); ++i) bits += costs[i * dict.size() + models[i]];
  const int64_t S = num_segments(L.num_symbols(), params.segment_shift);
  const double bound = bits / 8 * 1.0005 + 4 + S * (4.0 + 10.0 * (1 << params.lanes_log2));
  CHECK(a.size() <= bound);

  // Every truncation and a sweep of bit flips raise DecodeFailure and nothing else.
  for (size_t cut = 0; cut < a.size(); cut += 1 + a.size() / 50) {
    CHECK(throws<DecodeFailure>([&] { decode(a.data(), cut, models.data(), L, dict, 1, back.data()); }) ||
          L.num_symbols() == 0);
  }
  for (int t = 0; t < 50 && !a.empty(); ++t) {
    std::vector<uint8_t> bad = a;
    bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 << (rng() % 8));
    try {
      decode(bad.data(), bad.size(), models.data(), L, dict, 1, back.data());
    } catch (const DecodeFailure&) {
    }
  }
}

// A stream for `N` symbols in 1 x 2 blocks whose two models alternate (runs of 2
// symbols): the header, four valid lane states, then `zeros` zero bytes. Decoding it
// must stop at the end of the data (a run shorter than 4 symbols once skipped the
// decoder's bound check and read on past the buffer).
static void bounded_decoder_stops_at_the_end() {
  std::vector<Model> models;
  for (int k = 0; k < 2; ++k) models.push_back(make_model(0, std::vector<uint32_t>(4096, 1), 12));
  const Dictionary dict(12, std::move(models));
  const int64_t N = int64_t{1} << 22;
  const Layout L{1, 1, N, 1, 2};
  std::vector<int32_t> map(L.num_blocks());
  for (size_t i = 0; i < map.size(); ++i) map[i] = static_cast<int32_t>(i & 1);
  std::vector<uint8_t> data = {'L', 'D', 0x10, 2 << 5 | 31};
  for (int lane = 0; lane < 4; ++lane)
    for (int b = 0; b < 8; ++b) data.push_back(b == 3 ? 0x80 : 0);  // state 2^31
  data.resize(data.size() + 4096, 0);
  std::vector<int32_t> out(N);
  CHECK(throws<DecodeFailure>([&] { decode(data.data(), data.size(), map.data(), L, dict, 1, out.data()); }));
}

// Every truncation of a valid stream in narrow blocks with alternating models (runs of
// 1-3 symbols, every decoder path) raises DecodeFailure; the stream is copied to a
// buffer of exactly its size first, so a sanitizer build sees any read past it.
static void truncated_narrow_blocks() {
  std::mt19937 rng(99);
  const Dictionary dict = random_dictionary(rng, 12, 3);
  const int64_t blocks[][2] = {{1, 1}, {1, 2}, {1, 3}, {2, 1}, {2, 3}};
  for (const auto& b : blocks)
    for (int lanes_log2 : {2, 0, 3}) {
      const Layout L{2, 5, 37, b[0], b[1]};
      std::vector<int32_t> sym(L.num_symbols());
      for (auto& v : sym) v = static_cast<int32_t>(rng() % 9) - 4 + (rng() % 50 == 0 ? 100000 : 0);
      std::vector<int32_t> map(L.num_blocks());
      for (size_t i = 0; i < map.size(); ++i) map[i] = static_cast<int32_t>((i + rng() % 2) % 3);
      const std::vector<uint8_t> a = encode(sym.data(), map.data(), L, dict, 1, false, StreamParams{lanes_log2, 8});
      std::vector<int32_t> back(sym.size());
      decode(a.data(), a.size(), map.data(), L, dict, 1, back.data());
      CHECK(back == sym);
      for (size_t cut = 0; cut < a.size(); ++cut) {
        const std::unique_ptr<uint8_t[]> part(new uint8_t[cut + 1]);
        std::memcpy(part.get(), a.data(), cut);
        CHECK(throws<DecodeFailure>([&] { decode(part.get(), cut, map.data(), L, dict, 1, back.data()); }));
      }
    }
}

// Segment lengths that add up past the data (or would wrap a 64-bit sum) are refused.
static void segment_lengths_bounded() {
  std::vector<Model> models;
  models.push_back(make_model(0, std::vector<uint32_t>(4096, 1), 12));
  const Dictionary dict(12, std::move(models));
  const Layout L{1, 1, 1024, 1, 1};  // 4 segments of 256 symbols
  const int32_t map[1024] = {};
  std::vector<uint8_t> data = {'L', 'D', 0x10, 2 << 5 | 8};
  for (int s = 0; s < 3; ++s) {  // 3 lengths of 2^62
    for (int k = 0; k < 8; ++k) data.push_back(0x80);
    data.push_back(0x40);
  }
  data.resize(data.size() + 256, 0);
  std::vector<int32_t> out(1024);
  CHECK(throws<DecodeFailure>([&] { decode(data.data(), data.size(), map, L, dict, 1, out.data()); }));
}

// A model index outside [0, K) reaching the coder (a map changed after check_layout)
// raises ArgumentError in every path instead of reading outside the tables.
static void model_index_checked_at_use() {
  std::mt19937 rng(5);
  const Dictionary dict = random_dictionary(rng, 14, 2);
  for (int64_t bw : {1, 4})
    for (int lanes_log2 : {2, 0}) {
      const Layout L{1, 4, 64, 1, bw};
      std::vector<int32_t> sym(L.num_symbols(), 0), map(L.num_blocks(), 0);
      const std::vector<uint8_t> a = encode(sym.data(), map.data(), L, dict, 1, false, StreamParams{lanes_log2, 8});
      map[map.size() / 2] = 1000;
      std::vector<int32_t> back(sym.size());
      CHECK(throws<ArgumentError>(
          [&] { encode(sym.data(), map.data(), L, dict, 1, false, StreamParams{lanes_log2, 8}); }));
      CHECK(throws<ArgumentError>([&] { decode(a.data(), a.size(), map.data(), L, dict, 1, back.data()); }));
    }
}

int main() {
  std::mt19937 rng(1234);
  bounded_decoder_stops_at_the_end();
  truncated_narrow_blocks();
  segment_lengths_bounded();
  model_index_checked_at_use();
  // Round trips across precisions, shapes and block sizes (block edges included).
  const int64_t shapes[][5] = {{0, 0, 0, 1, 1},   {1, 1, 1, 1, 1},    {3, 7, 5, 2, 3},
                               {2, 16, 16, 16, 16}, {4, 33, 31, 8, 4},  {1, 64, 64, 64, 64},
                               {2, 9, 300, 1, 1},  {192, 32, 48, 4, 4}, {3, 5, 4097, 5, 4096}};
  for (int P = kMinPrecision; P <= kMaxPrecision; P += 2)
    for (const auto& s : shapes)
      for (double wide : {0.0, 0.02})
        roundtrip(rng, P, Layout{s[0], s[1], s[2], s[3], s[4]}, 1 + static_cast<int>(rng() % 6), wide);
  // Many 256-symbol segments: pairs of them take the vector encoder where the CPU has it.
  for (int P : {12, 13, 16})
    for (const auto& s : shapes)
      roundtrip(rng, P, Layout{s[0], s[1], s[2], s[3], s[4]}, 3, 0.005, StreamParams{2, 8});
  // Wide-lane, short-segment streams (the layout for parallel hardware) take the generic path.
  for (int lanes_log2 : {0, 1, 3, 5})
    for (const auto& s : shapes)
      roundtrip(rng, 16, Layout{s[0], s[1], s[2], s[3], s[4]}, 3, 0.01, StreamParams{lanes_log2, 8});
  return finish("test_coder");
}
