// Tests of ldem/histograms.h: block histograms and the costs computed from them.
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <vector>

#include "ldem/coder.h"
#include "ldem/histograms.h"
#include "ldem/tables.h"

#include "check.h"

using namespace ldem;
using namespace ldem::test;


static Model laplace_model(int32_t offset, int n, double scale, int precision) {
  std::vector<double> w(n + 1);
  for (int i = 0; i < n; ++i) w[i] = std::exp(-std::abs(offset + i) / scale);
  w[n] = 1e-3;
  return make_model(offset, quantize_pmf(w, precision), precision);
}

static std::vector<int32_t> random_latent(std::mt19937& rng, const Layout& L) {
  std::vector<int32_t> y(L.num_symbols());
  std::geometric_distribution<int> g(0.4);
  for (auto& v : y) v = (rng() & 1) ? g(rng) : -g(rng);
  if (!y.empty()) {  // wide blocks take the sorting path
    y[rng() % y.size()] = INT32_MAX;
    y[rng() % y.size()] = INT32_MIN;
    y[rng() % y.size()] = 5000;
  }
  return y;
}

// Reference histograms of block b with std::map.
static std::map<int32_t, int32_t> reference_block(const std::vector<int32_t>& y, const Layout& L, int64_t b) {
  const int64_t per = L.nby() * L.nbx(), c = b / per, by = b % per / L.nbx(), bx = b % L.nbx();
  std::map<int32_t, int32_t> m;
  for (int64_t r = by * L.bh; r < std::min(L.H, (by + 1) * L.bh); ++r)
    for (int64_t x = bx * L.bw; x < std::min(L.W, (bx + 1) * L.bw); ++x) ++m[y[(c * L.H + r) * L.W + x]];
  return m;
}

static void test_histograms_match_reference() {
  std::mt19937 rng(1);
  for (const Layout& L : {Layout{3, 17, 23, 8, 8}, Layout{2, 5, 40, 5, 7}, Layout{1, 9, 9, 9, 9},
                          Layout{4, 3, 2, 1, 1}, Layout{2, 0, 5, 4, 4}, Layout{0, 4, 4, 2, 2}}) {
    const std::vector<int32_t> y = random_latent(rng, L);
    for (int threads : {1, 2}) {
      const BlockHistograms h(y.data(), L, threads);
      CHECK(h.num_blocks() == L.C * L.nby() * L.nbx());
      CHECK(h.ptr.front() == 0 && h.ptr.back() == h.num_values());
      CHECK(h.counts.size() == h.values.size());
      CHECK(static_cast<int64_t>(h.channel.size()) == h.num_blocks());
      CHECK(h.num_channels == (h.num_blocks() ? L.C : 0));
      for (int64_t b = 0; b < h.num_blocks(); ++b) {
        const auto ref = reference_block(y, L, b);
        CHECK(h.ptr[b + 1] - h.ptr[b] == static_cast<int64_t>(ref.size()));
        int64_t i = h.ptr[b];
        for (const auto& [v, n] : ref) {
          CHECK(h.values[i] == v && h.counts[i] == n);
          ++i;
        }
        CHECK(h.channel[b] == b / (L.nby() * L.nbx()));
      }
    }
  }
}

static void test_concat_keeps_blocks_and_channels() {
  std::mt19937 rng(2);
  const Layout a{2, 8, 8, 4, 4}, b{3, 4, 12, 4, 4};
  const std::vector<int32_t> ya = random_latent(rng, a), yb = random_latent(rng, b);
  const BlockHistograms ha(ya.data(), a, 1), hb(yb.data(), b, 1), empty;
  const BlockHistograms h = BlockHistograms::concat({&ha, &empty, &hb});
  CHECK(h.num_blocks() == ha.num_blocks() + hb.num_blocks());
  CHECK(h.num_channels == 3);
  for (int64_t k = 0; k < hb.num_blocks(); ++k) {
    const int64_t j = ha.num_blocks() + k;
    CHECK(h.ptr[j + 1] - h.ptr[j] == hb.ptr[k + 1] - hb.ptr[k]);
    CHECK(h.values[h.ptr[j]] == hb.values[hb.ptr[k]]);
    CHECK(h.channel[j] == hb.channel[k]);
  }
  CHECK(BlockHistograms::concat({}).num_blocks() == 0);
}

static void test_costs_are_exact_bits() {
  std::mt19937 rng(3);
  const Layout L{2, 12, 10, 4, 3};
  const std::vector<int32_t> y = random_latent(rng, L);
  const BlockHistograms h(y.data(), L, 2);
  const std::vector<Model> models = {laplace_model(-8, 17, 1.0, 14), laplace_model(-3, 7, 0.5, 14),
                                     laplace_model(0, 1, 1.0, 14)};
  const std::vector<const Model*> ptrs = {&models[0], &models[1], &models[2]};
  const int64_t B = h.num_blocks(), K = 3;
  std::vector<double> costs(B * K), assigned(B), own(B);
  h.costs(ptrs, 2, costs.data());
  std::vector<int32_t> assign(B);
  for (int64_t b = 0; b < B; ++b) assign[b] = static_cast<int32_t>(b % K);
  h.assigned_costs(ptrs, assign.data(), 1, assigned.data());
  h.channel_costs(ptrs, 1, own.data());
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t k = 0; k < K; ++k) {
      double ref = 0;
      for (int64_t i = h.ptr[b]; i < h.ptr[b + 1]; ++i) ref += h.counts[i] * symbol_cost(models[k], h.values[i]);
      CHECK(std::abs(costs[b * K + k] - ref) <= 1e-9 * std::max(1.0, ref));
    }
    CHECK(assigned[b] == costs[b * K + assign[b]]);
    CHECK(own[b] == costs[b * K + h.channel[b]]);
  }
}

static void test_self_costs() {
  const std::vector<int32_t> y = {0, 0, 0, 0, 1, 2, 1, 2};  // two 1x4 blocks
  const Layout L{1, 2, 4, 1, 4};
  const BlockHistograms h(y.data(), L, 1);
  double out[2];
  h.self_costs(out);
  CHECK(out[0] == 0.0);
  CHECK(std::abs(out[1] - 4.0) < 1e-12);  // two values, two each: one bit per symbol
}

static void test_accumulate_clusters_and_window() {
  const std::vector<int32_t> y = {-3, 0, 0, 9,   // block 0
                                  1, 1, 2, 100};  // block 1
  const Layout L{1, 2, 4, 1, 4};
  const BlockHistograms h(y.data(), L, 1);
  const auto [lo, V] = h.window(4);
  CHECK(lo == -3 && V == 7);  // [-3, 3]: 9 and 100 are past half - 1
  CHECK(h.window(2000).first == -3 && h.window(2000).second == 104);
  const int32_t cluster[2] = {1, 0};
  std::vector<int64_t> out(2 * V, 0), outside(2, 0);
  h.accumulate_clusters(cluster, 2, lo, V, out.data(), outside.data());
  CHECK(out[1 * V + 0] == 1 && out[1 * V + 3] == 2 && outside[1] == 1);   // block 0 in cluster 1
  CHECK(out[0 * V + 4] == 2 && out[0 * V + 5] == 1 && outside[0] == 1);   // block 1 in cluster 0
  const int32_t skipped[2] = {-1, 5};  // outside [0, K): skipped
  std::vector<int64_t> none(2 * V, 0), none_out(2, 0);
  h.accumulate_clusters(skipped, 2, lo, V, none.data(), none_out.data());
  for (int64_t v : none) CHECK(v == 0);
  CHECK(BlockHistograms().window(8) == std::make_pair(int32_t{0}, int64_t{1}));
  const std::vector<int32_t> far = {50, 60};
  const BlockHistograms hf(far.data(), Layout{1, 1, 2, 1, 2}, 1);
  CHECK(hf.window(8) == std::make_pair(int32_t{0}, int64_t{1}));  // nothing inside [-8, 8)
}

int main() {
  test_histograms_match_reference();
  test_concat_keeps_blocks_and_channels();
  test_costs_are_exact_bits();
  test_self_costs();
  test_accumulate_clusters_and_window();
  return test::finish("test_histograms");
}
