// Tests of ldem/simd.h: the level names, the cap, LDEM_SIMD, and the same streams,
// histograms, costs and selections at every level this CPU supports.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ldem/coder.h"
#include "ldem/histograms.h"
#include "ldem/select.h"
#include "ldem/simd.h"
#include "ldem/tables.h"

#include "check.h"

using namespace ldem;
using namespace ldem::test;

static const SimdLevel kLevels[] = {SimdLevel::kScalar, SimdLevel::kSse2, SimdLevel::kAvx2, SimdLevel::kAvx512};

static void test_names() {
  for (SimdLevel l : kLevels) CHECK(parse_simd_level(simd_level_name(l)) == l);
  CHECK(std::strcmp(simd_level_name(SimdLevel::kAvx512), "avx512") == 0);
  CHECK(throws<ArgumentError>([] { parse_simd_level("AVX2"); }));
  CHECK(throws<ArgumentError>([] { parse_simd_level("avx-512"); }));
  try {
    parse_simd_level("neon");
  } catch (const ArgumentError& e) {
    CHECK(e.message.find("'neon'") != std::string::npos);
    CHECK(e.message.find("scalar, sse2, avx2 or avx512") != std::string::npos);
  }
}

static void test_environment() {
  unsetenv("LDEM_SIMD");
  CHECK(simd_cap_from_env() == SimdLevel::kAvx512);
  setenv("LDEM_SIMD", "", 1);
  CHECK(simd_cap_from_env() == SimdLevel::kAvx512);
  setenv("LDEM_SIMD", "sse2", 1);
  CHECK(simd_cap_from_env() == SimdLevel::kSse2);
  setenv("LDEM_SIMD", "fast", 1);
  CHECK(throws<ArgumentError>([] { simd_cap_from_env(); }));
  unsetenv("LDEM_SIMD");
}

static void test_cap() {
  const SimdLevel cpu = cpu_simd_level();
#if defined(__x86_64__)
  CHECK(cpu >= SimdLevel::kSse2);  // SSE2 is part of x86-64
#endif
  for (SimdLevel l : kLevels) {
    set_simd_cap(l);
    CHECK(simd_level() == (l < cpu ? l : cpu));  // never above the CPU
    const bool paired = std::strcmp(encoder_kernel(), "avx512-paired") == 0;
    CHECK(paired == (simd_level() == SimdLevel::kAvx512));
    CHECK(std::strcmp(selection_kernel(), simd_level_name(simd_level())) == 0);  // one build per level
    CHECK((std::strcmp(histogram_counts_kernel(), "avx2") == 0) == (simd_level() >= SimdLevel::kAvx2));
    CHECK((std::strcmp(histogram_costs_kernel(), "avx512") == 0) == (simd_level() == SimdLevel::kAvx512));
    CHECK((std::strcmp(pooling_kernel(), "avx512") == 0) == (simd_level() == SimdLevel::kAvx512));
  }
  set_simd_cap(SimdLevel::kAvx512);
  CHECK(simd_level() == cpu);
}

// Everything the dispatched kernels compute, at the current level.
struct Outputs {
  std::vector<uint8_t> stream;
  BlockHistograms hist;
  std::vector<double> costs, pooled;
  std::vector<int32_t> categories;
  double data_bits = 0, map_bits = 0;
  bool operator==(const Outputs& o) const {
    return stream == o.stream && hist.ptr == o.hist.ptr && hist.values == o.hist.values &&
           hist.counts == o.hist.counts && costs == o.costs && pooled == o.pooled &&
           categories == o.categories && data_bits == o.data_bits && map_bits == o.map_bits;
  }
};

static Outputs compute(uint32_t seed) {
  std::mt19937 rng(seed);
  const int precision = 12 + static_cast<int>(seed % 5);
  const int K = 7;
  const Dictionary dict = random_dictionary(rng, precision, K);
  Layout L;
  L.C = 3, L.H = 37 + seed % 40, L.W = 61 + seed % 50, L.bh = 1 + seed % 9, L.bw = 2 + seed % 11;
  const std::vector<int32_t> sym = random_symbols(rng, L.num_symbols(), 0.01);
  std::vector<int32_t> models(L.num_blocks());
  for (auto& m : models) m = static_cast<int32_t>(rng() % K);
  Outputs o;
  StreamParams params;
  params.segment_shift = 8;  // many segment pairs for the paired encoder
  o.stream = encode(sym.data(), models.data(), L, dict, 2, seed % 2 == 0, params);
  o.hist = block_histograms(sym.data(), L, 2);
  std::vector<const Model*> ptrs;
  for (int k = 0; k < K; ++k) ptrs.push_back(&dict.model(k));
  const int64_t B = o.hist.num_blocks();
  o.costs.resize(static_cast<size_t>(B * K));
  o.hist.costs(ptrs, 2, o.costs.data());
  o.pooled = pool_costs(o.costs.data(), K, L.C, L.nby(), L.nbx(), 2, 3);
  // 4 fixed and 3 image models, pooled 2 x 3: the argmin over finite and tied sums.
  std::vector<double> fixed, image;
  for (int64_t b = 0; b < B; ++b) {
    for (int k = 0; k < 4; ++k) fixed.push_back(o.costs[b * K + k]);
    for (int k = 4; k < K; ++k) image.push_back(b % 5 == 0 ? o.costs[b * K] : o.costs[b * K + k]);
  }
  const Selection sel = select_pooled(fixed.data(), 4, image.data(), 3, L.C, L.nby(), L.nbx(), 2, 3, precision, 3);
  o.categories = sel.categories;
  o.data_bits = sel.data_bits;
  o.map_bits = sel.map_bits;
  return o;
}

static void test_same_results_at_every_level() {
  const SimdLevel cpu = cpu_simd_level();
  for (uint32_t seed = 1; seed <= 6; ++seed) {
    set_simd_cap(cpu);
    const Outputs want = compute(seed);
    CHECK(!want.stream.empty() && !want.categories.empty());
    for (SimdLevel l : kLevels) {
      if (l > cpu) continue;
      set_simd_cap(l);
      CHECK(compute(seed) == want);
    }
  }
  set_simd_cap(SimdLevel::kAvx512);
}

int main() {
  test_names();
  test_environment();
  test_cap();
  test_same_results_at_every_level();
  std::printf("cpu level %s\n", simd_level_name(cpu_simd_level()));
  return finish("test_simd");
}
