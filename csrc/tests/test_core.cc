// Tests of the pure C++ core, without the Python binding. Run through ctest.
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ldem/coder.h"
#include "ldem/costs.h"
#include "ldem/tables.h"

using namespace ldem;

static int failures = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                      \
    }                                                                  \
  } while (0)

// Whether f() throws E (any other exception fails the run).
template <class E, class F>
static bool throws(F&& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  }
  return false;
}

static Dictionary random_dictionary(std::mt19937& rng, int precision, int K) {
  std::vector<Model> models;
  for (int k = 0; k < K; ++k) {
    const int n = 1 + static_cast<int>(rng() % 80);
    const int32_t offset = static_cast<int32_t>(rng() % 81) - 40;
    const double scale = 0.05 + (rng() % 1000) / 100.0;
    std::vector<double> pmf(n + 1);
    for (int i = 0; i < n; ++i) pmf[i] = std::exp(-std::abs(offset + i) / scale);
    pmf[n] = 1e-4;
    models.push_back(make_model(offset, quantize_pmf(pmf, precision), precision));
  }
  return Dictionary(precision, std::move(models));
}

static void roundtrip(std::mt19937& rng, int precision, Layout L, int K, double wide,
                      StreamParams params = {}) {
  Dictionary dict = random_dictionary(rng, precision, K);
  std::vector<int32_t> sym(L.num_symbols());
  std::geometric_distribution<int> geo(0.3);
  for (auto& v : sym) {
    v = (rng() & 1 ? 1 : -1) * geo(rng);
    if ((rng() % 1000) < wide * 1000) v = static_cast<int32_t>(rng());
    if (rng() % 5000 == 0) v = (rng() & 1) ? INT32_MIN : INT32_MAX;
  }
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
  // Table construction invariants.
  for (int P = kMinPrecision; P <= kMaxPrecision; ++P) {
    for (int t = 0; t < 20; ++t) {
      const int n = 1 + static_cast<int>(rng() % 300);
      std::vector<uint64_t> counts(n + 1);
      for (auto& c : counts) c = rng() % 3 == 0 ? 0 : rng() % 100000;
      std::vector<uint32_t> f = quantize_counts(counts, P);
      uint64_t sum = 0;
      for (uint32_t v : f) {
        CHECK(v >= 1);
        sum += v;
      }
      CHECK(sum == (1ull << P));
      CHECK(quantize_counts(std::vector<uint64_t>(f.begin(), f.end()), P) == f);
    }
  }
  // A peaked model: mode takes nearly all of 2^P.
  {
    std::vector<uint32_t> f = quantize_pmf({1e-12, 1.0, 1e-12, 0.0}, 16);
    CHECK(f[1] == 65533 && f[0] == 1 && f[2] == 1 && f[3] == 1);
  }
  // Serialisation round trip and rejection of damage.
  {
    Dictionary d = random_dictionary(rng, 14, 5);
    std::vector<uint8_t> bytes = d.serialize();
    Dictionary e = Dictionary::deserialize(bytes.data(), bytes.size());
    CHECK(e.serialize() == bytes);
    bytes[bytes.size() / 2] ^= 1;
    CHECK(throws<ArgumentError>([&] { Dictionary::deserialize(bytes.data(), bytes.size()); }));
  }
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
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("test_core: all checks passed\n");
  return 0;
}
