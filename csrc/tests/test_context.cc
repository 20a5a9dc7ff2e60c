// Tests of ldem/context.h: the context rule against a direct reference, round trips at
// every lane count, segment size and thread count (with int32 extremes), costs that
// match the coded size, and damaged streams.
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "ldem/coder.h"
#include "ldem/context.h"
#include "ldem/tables.h"

#include "check.h"

using namespace ldem;
using namespace ldem::test;

namespace {

// The rule of context.h written directly from its definition (O(C) per symbol).
int reference_context(const std::vector<int32_t>& y, const Layout& L, int64_t a, int64_t i) {
  const int64_t HW = L.H * L.W, c = i / HW, p = i % HW, r = p / L.W, x = p % L.W;
  auto m = [&](int64_t rr, int64_t xx) -> int64_t {
    if (rr < 0 || xx < 0 || xx >= L.W) return 0;
    const int64_t j = c * HW + rr * L.W + xx;
    if (j < a) return 0;
    return std::min<int64_t>(std::llabs(static_cast<long long>(y[j])), 64);
  };
  const int64_t s = 2 * m(r, x - 1) + 2 * m(r - 1, x) + m(r - 1, x - 1) + m(r - 1, x + 1) + m(r, x - 2) + m(r - 2, x);
  int k = 0;
  for (int64_t t : {1, 2, 3, 4, 6, 9, 14, 22, 32, 48}) k += s >= t;
  int64_t n = 0, z = 0;
  for (int64_t cc = 0; cc < c; ++cc) {
    const int64_t j = cc * HW + p;
    if (j >= a) ++n, z += y[j] != 0;
  }
  int q = 0;
  if (n > 0)
    for (int64_t t : {1, 3, 6, 10, 16, 24, 36}) q += 64 * z >= t * n;
  return k * 8 + q;
}

std::vector<int32_t> random_latent(std::mt19937& rng, int64_t n, bool extremes) {
  std::vector<int32_t> y(n);
  std::geometric_distribution<int> g(0.6);
  for (auto& v : y) v = (rng() % 3 == 0) ? (rng() % 2 ? g(rng) : -g(rng)) : 0;
  if (extremes && n >= 4) {
    y[0] = INT32_MIN;
    y[n - 1] = INT32_MAX;
    y[n / 2] = 1 << 30;
    y[n / 3] = -(1 << 29);
  }
  return y;
}

void test_contexts_match_reference() {
  std::mt19937 rng(3);
  for (const Layout L : {Layout{5, 7, 9, 1, 1}, Layout{3, 1, 300, 1, 1}, Layout{40, 3, 4, 1, 1}, Layout{2, 20, 1, 1, 1}}) {
    const std::vector<int32_t> y = random_latent(rng, L.num_symbols(), true);
    for (int shift : {8, 17}) {
      std::vector<uint8_t> ctx(y.size());
      context_map(y.data(), L, StreamParams{2, shift}, 2, ctx.data());
      const int64_t N = L.num_symbols(), S = num_segments(N, shift);
      for (int64_t s = 0; s < S; ++s) {
        const int64_t a = format::segment_begin(N, S, s), b = format::segment_begin(N, S, s + 1);
        for (int64_t i = a; i < b; ++i) CHECK(ctx[i] == reference_context(y, L, a, i));
      }
    }
  }
}

// Families: family f's model k is a Laplace-like table whose scale grows with k and f.
Dictionary family_dictionary(int F, int precision) {
  std::vector<Model> models;
  for (int f = 0; f < F; ++f)
    for (int k = 0; k < kNumContexts; ++k) {
      const int n = 3 + (k % 7) * 2;
      std::vector<double> pmf(n + 1);
      const double scale = 0.2 + 0.1 * (k / 8) + 0.3 * f;
      for (int i = 0; i < n; ++i) pmf[i] = std::exp(-std::abs(i - n / 2) / scale);
      pmf[n] = 1e-3;
      models.push_back(make_model(-(n / 2), quantize_pmf(pmf, precision), precision));
    }
  return Dictionary(precision, std::move(models));
}

void test_round_trips() {
  std::mt19937 rng(5);
  for (int precision : {12, 16}) {
    Dictionary d = family_dictionary(3, precision);
    d.drop_lookups();  // the context coder does not need them
    const ModelSet tables(d);
    for (const Layout L : {Layout{4, 9, 13, 4, 4}, Layout{2, 30, 40, 8, 16}, Layout{1, 1, 1, 1, 1}, Layout{3, 0, 5, 2, 2}}) {
      const std::vector<int32_t> y = random_latent(rng, L.num_symbols(), L.num_symbols() >= 4);
      std::vector<int32_t> fam(L.num_blocks());
      for (auto& f : fam) f = static_cast<int32_t>(rng() % 3);
      check_context_layout(L, fam.data(), tables);
      for (int lanes_log2 : {0, 2, 5})
        for (int shift : {8, 17}) {
          const StreamParams params{lanes_log2, shift};
          const std::vector<uint8_t> one = encode_context(y.data(), fam.data(), L, tables, 1, true, params);
          const std::vector<uint8_t> two = encode_context(y.data(), fam.data(), L, tables, 2, true, params);
          CHECK(one == two);
          for (int threads : {1, 3}) {
            std::vector<int32_t> out(y.size(), 7);
            decode_context(one.data(), one.size(), fam.data(), L, tables, threads, out.data());
            CHECK(out == y);
          }
        }
    }
  }
}

// Families, a layout and a latent with int32 extremes (the set-up of the tests below).
struct Case {
  Dictionary d;
  ModelSet tables;
  Layout L;
  std::vector<int32_t> y;
  Case(uint32_t seed, int F, int precision, Layout layout)
      : d(family_dictionary(F, precision)), tables(d), L(layout) {
    std::mt19937 rng(seed);
    y = random_latent(rng, L.num_symbols(), true);
  }
};

void test_costs_match_coded_size() {
  Case t(9, 4, 16, Layout{4, 24, 24, 8, 8});
  const ModelSet& tables = t.tables;
  const Layout& L = t.L;
  const std::vector<int32_t>& y = t.y;
  std::vector<uint8_t> ctx(y.size());
  context_map(y.data(), L, StreamParams{}, 1, ctx.data());
  std::vector<double> own(L.num_blocks()), all(L.num_blocks() * 4);
  context_block_costs(y.data(), ctx.data(), L, tables, true, 0, 0, 2, own.data());
  context_block_costs(y.data(), ctx.data(), L, tables, false, 0, 4, 2, all.data());
  double bits = 0;
  std::vector<int32_t> fam(L.num_blocks());
  for (int64_t b = 0; b < L.num_blocks(); ++b) {
    const int64_t c = b / (L.nby() * L.nbx());
    CHECK(std::abs(own[b] - all[b * 4 + c]) < 1e-9);
    fam[b] = static_cast<int32_t>(c);
    bits += own[b];
  }
  const std::vector<uint8_t> s = encode_context(y.data(), fam.data(), L, tables, 1, false, StreamParams{});
  // The payload holds the information plus 8 bytes of final state per lane, minus rounding.
  const double payload_bits = 8.0 * (s.size() - 4);
  CHECK(payload_bits > bits && payload_bits < bits + 4 * 64 + 64);
  CHECK(throws<ArgumentError>([&] {
    context_block_costs(y.data(), ctx.data(), L, tables, false, 2, 3, 1, all.data());
  }));
}

void test_damage_and_bad_arguments() {
  Case t(11, 2, 14, Layout{3, 16, 16, 8, 8});
  std::mt19937 rng(11);
  const ModelSet& tables = t.tables;
  const Layout& L = t.L;
  const std::vector<int32_t>& y = t.y;
  std::vector<int32_t> fam(L.num_blocks(), 1);
  const std::vector<uint8_t> s = encode_context(y.data(), fam.data(), L, tables, 1, false, StreamParams{2, 8});
  std::vector<int32_t> out(y.size());
  int caught = 0, trials = 0;
  for (int t = 0; t < 3000; ++t) {
    std::vector<uint8_t> bad = s;
    if (t % 3 == 0) bad.resize(rng() % bad.size());
    else bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 + rng() % 255);
    ++trials;
    try {
      decode_context(bad.data(), bad.size(), fam.data(), L, tables, 2, out.data());
    } catch (const DecodeFailure&) {
      ++caught;
    }
  }
  CHECK(caught > trials / 2);  // no other exception, no crash; most damage is caught
  std::vector<int32_t> bad_fam(L.num_blocks(), 2);
  CHECK(throws<ArgumentError>([&] { check_context_layout(L, bad_fam.data(), tables); }));
  const Dictionary odd = family_dictionary(1, 14);
  std::vector<const Model*> short_list = {&odd.model(0)};
  CHECK(throws<ArgumentError>([&] { check_context_layout(L, fam.data(), ModelSet(14, short_list)); }));
  // A dictionary without lookups is refused by the block coder.
  Dictionary no_lut = family_dictionary(1, 14);
  no_lut.drop_lookups();
  std::vector<int32_t> models(L.num_blocks(), 0);
  CHECK(throws<ArgumentError>([&] { encode(y.data(), models.data(), L, no_lut, 1, false); }));
}

}  // namespace

int main() {
  test_contexts_match_reference();
  test_round_trips();
  test_costs_match_coded_size();
  test_damage_and_bad_arguments();
  return finish("test_context");
}
