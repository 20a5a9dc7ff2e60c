// The small test harness of the C++ unit tests (one executable per unit, run by ctest).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <utility>
#include <vector>

#include "ldem/tables.h"

namespace ldem::test {

inline int failures = 0;

// Returns the process exit status: 0 if every CHECK held.
inline int finish(const char* name) {
  if (failures) {
    std::fprintf(stderr, "%s: %d check(s) failed\n", name, failures);
    return 1;
  }
  std::printf("%s: all checks passed\n", name);
  return 0;
}

// Whether f() throws E (any other exception fails the run).
template <class E, class F>
bool throws(F&& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  }
  return false;
}

// K random Laplace-like models of supports up to 80 symbols near zero, with escapes.
inline Dictionary random_dictionary(std::mt19937& rng, int precision, int K) {
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

// Symbols: small two-sided geometric values, a fraction `wide` of random int32 values
// (escapes) and now and then INT32_MIN / INT32_MAX.
inline std::vector<int32_t> random_symbols(std::mt19937& rng, int64_t n, double wide) {
  std::vector<int32_t> sym(static_cast<size_t>(n));
  std::geometric_distribution<int> geo(0.3);
  for (auto& v : sym) {
    v = (rng() & 1 ? 1 : -1) * geo(rng);
    if ((rng() % 1000) < wide * 1000) v = static_cast<int32_t>(rng());
    if (rng() % 5000 == 0) v = (rng() & 1) ? INT32_MIN : INT32_MAX;
  }
  return sym;
}

}  // namespace ldem::test

#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);    \
      ++::ldem::test::failures;                                                         \
    }                                                                                   \
  } while (0)
