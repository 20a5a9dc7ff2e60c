// Tests of the CPU emulation of the CUDA kernels (csrc/cuda/emulate.h, the per-warp
// algorithms of warp.h with 32 simulated lanes): the emulated encoder writes the CPU's
// bytes, the emulated decoder reads them back and refuses what the CPU refuses, and the
// emulated block costs and CRC equal the CPU's. Built in every build, nvcc or not.
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "check.h"
#include "cuda/emulate.h"
#include "ldem/coder.h"
#include "ldem/costs.h"

using namespace ldem;
using namespace ldem::test;

static void matches_the_cpu(std::mt19937& rng, int precision, Layout L, StreamParams params,
                            double wide) {
  const Dictionary dict = random_dictionary(rng, precision, 3);
  const ModelSet set(dict);
  const std::vector<int32_t> sym = random_symbols(rng, L.num_symbols(), wide);
  std::vector<int32_t> models(L.num_blocks());
  for (auto& m : models) m = static_cast<int32_t>(rng() % 3);
  for (bool checksum : {false, true}) {
    const std::vector<uint8_t> cpu = encode(sym.data(), models.data(), L, set, 1, checksum, params);
    const std::vector<uint8_t> gpu = cuda::emulate::encode(sym.data(), models.data(), L, set, params, checksum);
    CHECK(gpu == cpu);
    std::vector<int32_t> back(sym.size(), 7);
    cuda::emulate::decode(cpu.data(), cpu.size(), models.data(), L, set, back.data());
    CHECK(back == sym);
    // Damaged copies: the emulated decoder refuses exactly what the CPU decoder refuses,
    // with the same kind of error, and reads nothing outside the stream.
    for (int t = 0; t < 20 && !cpu.empty(); ++t) {
      std::vector<uint8_t> bad = cpu;
      if (t % 2) {
        bad[rng() % bad.size()] ^= static_cast<uint8_t>(1 << (rng() % 8));
      } else {
        bad.resize(rng() % bad.size());
      }
      const std::unique_ptr<uint8_t[]> exact(new uint8_t[bad.size() + 1]);
      std::memcpy(exact.get(), bad.data(), bad.size());
      std::vector<int32_t> a(sym.size()), b(sym.size());
      const bool cpu_bad = throws<DecodeFailure>(
          [&] { decode(exact.get(), bad.size(), models.data(), L, set, 1, a.data()); });
      const bool gpu_bad = throws<DecodeFailure>(
          [&] { cuda::emulate::decode(exact.get(), bad.size(), models.data(), L, set, b.data()); });
      CHECK(cpu_bad == gpu_bad);
      if (!cpu_bad && !gpu_bad) CHECK(a == b);
    }
  }
  // Block costs: bit-identical to the CPU's; the choice is the argmin, ties to the lower k.
  std::vector<double> cpu_costs(L.num_blocks() * set.size()), gpu_costs(cpu_costs.size());
  std::vector<int32_t> choice(L.num_blocks());
  block_costs(sym.data(), L, set, 1, cpu_costs.data());
  cuda::emulate::block_costs(sym.data(), L, set, nullptr, gpu_costs.data(), choice.data());
  CHECK(cpu_costs.empty() ||
        std::memcmp(cpu_costs.data(), gpu_costs.data(), 8 * cpu_costs.size()) == 0);
  for (int64_t b = 0; b < L.num_blocks(); ++b) {
    const double* row = cpu_costs.data() + b * set.size();
    int32_t best = 0;
    for (int32_t k = 1; k < static_cast<int32_t>(set.size()); ++k)
      if (row[k] < row[best]) best = k;
    CHECK(choice[b] == best);
  }
  // Coded bits in 1/256 bit: at least the exact cost of the chosen models.
  double bits = 0;
  for (int64_t b = 0; b < L.num_blocks(); ++b) bits += cpu_costs[b * set.size() + models[b]];
  const uint64_t fx = cuda::emulate::coded_bits(sym.data(), models.data(), L, set);
  CHECK(static_cast<double>(fx) >= bits * 256 * (1 - 1e-12));
  CHECK(static_cast<double>(fx) <= bits * 256 + static_cast<double>(L.num_symbols()) + 1);
}

static void crc_by_chunks() {
  std::vector<uint8_t> data(5000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
  for (size_t chunk : {size_t{1}, size_t{3}, size_t{64}, size_t{1024}, size_t{9999}})
    CHECK(cuda::emulate::chunked_crc32(data.data(), data.size(), chunk) == crc32(data.data(), data.size()));
  CHECK(throws<ArgumentError>([&] { cuda::emulate::chunked_crc32(data.data(), data.size(), 0); }));
}

static void bad_model_index() {
  std::mt19937 rng(3);
  const Dictionary dict = random_dictionary(rng, 14, 2);
  const Layout L{1, 8, 40, 2, 4};
  std::vector<int32_t> sym(L.num_symbols(), 0), models(L.num_blocks(), 1);
  const std::vector<uint8_t> data = encode(sym.data(), models.data(), L, dict, 1, false, StreamParams{5, 8});
  models[3] = 2;
  std::vector<int32_t> out(sym.size());
  const ModelSet set(dict);
  CHECK(throws<ArgumentError>([&] { cuda::emulate::encode(sym.data(), models.data(), L, set, StreamParams{5, 8}, false); }));
  CHECK(throws<ArgumentError>([&] { cuda::emulate::decode(data.data(), data.size(), models.data(), L, set, out.data()); }));
}

int main() {
  std::mt19937 rng(77);
  const int64_t shapes[][5] = {{0, 0, 0, 1, 1}, {1, 1, 1, 1, 1},   {3, 7, 5, 2, 3},
                               {2, 16, 16, 16, 16}, {4, 33, 31, 8, 4}, {2, 9, 300, 1, 1}};
  const StreamParams params[] = {{2, 17}, {5, 8}, {0, 8}, {3, 9}};
  for (int P : {12, 16})
    for (const auto& s : shapes)
      for (const StreamParams& p : params)
        matches_the_cpu(rng, P, Layout{s[0], s[1], s[2], s[3], s[4]}, p, 0.02);
  crc_by_chunks();
  bad_model_index();
  return finish("test_emulate");
}
