// Tests of the integer tables (ldem/tables.h): quantisation invariants, peaked models,
// serialisation and its rejection of damage, model validation and symbol costs.
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "check.h"
#include "ldem/format.h"
#include "ldem/tables.h"

using namespace ldem;
using namespace ldem::test;

// symbol_cost: the table's cost inside the support, the escape's cost plus its payload
// bits outside it.
static void symbol_costs() {
  const Model m = make_model(-2, {400, 800, 1600, 800, 400, 96}, 12);
  CHECK(m.n == 5 && m.offset == -2);
  for (int32_t v = -2; v < 3; ++v) CHECK(symbol_cost(m, v) == m.cost[v + 2]);
  CHECK(std::abs(symbol_cost(m, 0) - (12 - std::log2(1600.0))) < 1e-12);
  CHECK(symbol_cost(m, 3) == m.cost[5] + 7);       // d = 0: the 7-bit head only
  CHECK(symbol_cost(m, -3) == m.cost[5] + 7);
  CHECK(symbol_cost(m, 4) == m.cost[5] + 7 + 1);   // d = 1: one payload bit
  CHECK(symbol_cost(m, INT32_MAX) == m.cost[5] + escape_payload_bits(-2, 5, INT32_MAX));
  CHECK(symbol_cost(m, INT32_MIN) == m.cost[5] + 7 + 30);  // d + 1 = 2^31 - 2
}

// make_model refuses invalid tables with ArgumentError.
static void invalid_models_rejected() {
  CHECK(throws<ArgumentError>([] { make_model(0, {4096}, 12); }));              // no escape
  CHECK(throws<ArgumentError>([] { make_model(0, {4095, 0, 1}, 12); }));        // zero frequency
  CHECK(throws<ArgumentError>([] { make_model(0, {4000, 95}, 12); }));          // sum != 2^P
  CHECK(throws<ArgumentError>([] { make_model(0, {2048, 2048}, 11); }));        // precision
  CHECK(throws<ArgumentError>([] { make_model(INT32_MAX, {2048, 1024, 1024}, 12); }));  // int32
  CHECK(!throws<ArgumentError>([] { make_model(INT32_MAX, {2048, 2048}, 12); }));
}

int main() {
  std::mt19937 rng(1234);
  symbol_costs();
  invalid_models_rejected();
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
  return finish("test_tables");
}
