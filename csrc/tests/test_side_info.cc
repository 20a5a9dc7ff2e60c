// Tests of ldem/side_info.h: gamma codes, the image-table writer and reader, and the
// rANS block map, on valid and hostile input.
#include <cstdio>
#include <random>
#include <vector>

#include "ldem/coder.h"
#include "ldem/side_info.h"
#include "ldem/tables.h"

#include "check.h"

using namespace ldem;
using namespace ldem::test;


static void test_gamma_round_trip() {
  std::mt19937_64 rng(1);
  std::vector<uint64_t> v = {1, 2, 3, 4, 255, 256, (uint64_t{1} << 32) - 1, uint64_t{1} << 32,
                             (uint64_t{1} << 40) + 12345};
  for (int i = 0; i < 200; ++i) v.push_back(1 + (rng() >> (rng() % 64)));
  int64_t bits = 0;
  for (uint64_t x : v) bits += gamma_bits(x);
  const std::vector<uint8_t> packed = gamma_pack(v.data(), v.size());
  CHECK(static_cast<int64_t>(packed.size()) == (bits + 7) / 8);
  std::vector<uint64_t> out(v.size());
  uint64_t pos = 0;
  CHECK(gamma_unpack(packed.data(), packed.size(), pos, v.size(), 63, out.data()));
  CHECK(out == v && static_cast<int64_t>(pos) == bits);
  CHECK(gamma_bits(1) == 1 && gamma_bits(2) == 3 && gamma_bits(4) == 5);
  // Truncated data and codes longer than max_bits are refused.
  pos = 0;
  CHECK(!gamma_unpack(packed.data(), packed.size() - 1, pos, v.size(), 63, out.data()));
  const uint64_t big = uint64_t{1} << 41;
  const std::vector<uint8_t> b = gamma_pack(&big, 1);
  pos = 0;
  CHECK(!gamma_unpack(b.data(), b.size(), pos, 1, kMaxGammaBits, out.data()));
  const uint8_t zeros[16] = {};
  pos = 0;
  CHECK(!gamma_unpack(zeros, sizeof zeros, pos, 1, 63, out.data()));
}

static ImageTables example_tables() {
  const int64_t K = 3, V = 6;
  const int64_t counts[K * V] = {0, 5, 0, 1, 0, 0,    // kept: [1, 3]
                                 0, 0, 0, 0, 0, 0,    // empty: dropped
                                 9, 0, 0, 0, 0, 3};   // kept: [0, 5]
  return scale_cluster_counts(counts, K, V, -2, 8);
}

static void test_scale_cluster_counts() {
  const ImageTables t = example_tables();
  CHECK(t.size() == 2 && t.table_bits == 8);
  CHECK(t.offsets[0] == -1 && t.offsets[1] == -2);
  CHECK(t.ptr == (std::vector<int64_t>{0, 3, 9}));
  // q_i = round(c_i * 256 / C), halves up: 5/6 -> 213, 1/6 -> 43; 9/12 -> 192, 3/12 -> 64.
  CHECK(t.q == (std::vector<uint64_t>{213, 0, 43, 192, 0, 0, 0, 0, 64}));
}

static void test_side_info_round_trip() {
  const ImageTables t = example_tables();
  const std::vector<uint64_t> map_counts = {7, 0, 1, 300};
  const std::vector<uint8_t> side = write_side_info(t, map_counts);
  CHECK(static_cast<int64_t>(write_side_info(t, {}).size()) == (image_tables_bits(t) + 7) / 8);
  const SideInfo s = read_side_info(side.data(), side.size(), 2, 4, 14);
  CHECK(s.tables.table_bits == 8 && s.tables.offsets == t.offsets && s.tables.ptr == t.ptr && s.tables.q == t.q);
  CHECK(s.map_counts == map_counts);
  const std::vector<Model> models = image_models(t, 14);
  CHECK(s.models.size() == 2);
  for (size_t j = 0; j < models.size(); ++j)
    CHECK(s.models[j].offset == models[j].offset && s.models[j].freq == models[j].freq);
  // Without tables only the counts are written, and nothing at all without both.
  CHECK(image_tables_bits(ImageTables{}) == 0);
  CHECK(write_side_info(ImageTables{}, {}).empty());
  const std::vector<uint8_t> counts_only = write_side_info(ImageTables{}, map_counts);
  CHECK(read_side_info(counts_only.data(), counts_only.size(), 0, 4, 12).map_counts == map_counts);
}

static void test_hostile_side_info() {
  const ImageTables t = example_tables();
  const std::vector<uint8_t> side = write_side_info(t, {3, 4});
  // Every truncation is refused (the last byte holds padding only when the bits end early).
  for (size_t n = 0; n + 1 < side.size(); ++n)
    CHECK(throws<DecodeFailure>([&] { read_side_info(side.data(), n, 2, 2, 14); }));
  // Oversized counts of tables or map counts: refused before allocating.
  CHECK(throws<DecodeFailure>([&] { read_side_info(side.data(), side.size(), int64_t{1} << 40, 0, 14); }));
  CHECK(throws<DecodeFailure>([&] { read_side_info(side.data(), side.size(), 2, int64_t{1} << 40, 14); }));
  CHECK(throws<DecodeFailure>([&] { read_side_info(side.data(), side.size(), -1, 0, 14); }));
  auto forged = [](std::vector<uint64_t> codes) { return gamma_pack(codes.data(), codes.size()); };
  // Bad table precision.
  for (uint64_t bits : {uint64_t{3}, uint64_t{17}}) {
    const std::vector<uint8_t> s = forged({bits, 1, 1, 5});
    CHECK(throws<DecodeFailure>([&] { read_side_info(s.data(), s.size(), 1, 0, 14); }));
  }
  // A table of 65535 entries with no data, one larger than the precision holds, and a
  // support past INT32_MAX.
  const std::vector<uint8_t> long_table = forged({8, 1, 65535});
  CHECK(throws<DecodeFailure>([&] { read_side_info(long_table.data(), long_table.size(), 1, 0, 16); }));
  const std::vector<uint8_t> too_wide = forged({8, 1, 1 << 14, 1});
  CHECK(throws<DecodeFailure>([&] { read_side_info(too_wide.data(), too_wide.size(), 1, 0, 14); }));
  const std::vector<uint8_t> past_max = forged({8, 2 * uint64_t{INT32_MAX} + 1, 2, 1, 1});
  CHECK(throws<DecodeFailure>([&] { read_side_info(past_max.data(), past_max.size(), 1, 0, 14); }));
  // A scaled count above 2^table_bits.
  const std::vector<uint8_t> big_q = forged({8, 1, 1, 258});
  CHECK(throws<DecodeFailure>([&] { read_side_info(big_q.data(), big_q.size(), 1, 0, 14); }));
  const std::vector<uint8_t> max_q = forged({8, 1, 1, 257});
  CHECK(read_side_info(max_q.data(), max_q.size(), 1, 0, 14).tables.q == std::vector<uint64_t>{256});
}

static void test_block_map_round_trip_and_damage() {
  std::mt19937 rng(4);
  const int64_t B = 5000, A = 7;
  std::vector<int32_t> cats(B);
  for (auto& c : cats) c = static_cast<int32_t>(rng() % 3 ? 0 : rng() % A);
  const CodedBlockMap coded = encode_block_map(cats.data(), B, A, 12);
  CHECK(static_cast<int64_t>(coded.counts.size()) == A);
  std::vector<int32_t> out(B);
  decode_block_map(coded.data.data(), coded.data.size(), coded.counts, B, 12, out.data());
  CHECK(out == cats);
  // Counts that do not sum to the grid, more categories than the precision holds,
  // truncated streams and categories past A are refused.
  std::vector<uint64_t> wrong = coded.counts;
  wrong[0] += 1;
  CHECK(throws<DecodeFailure>([&] { decode_block_map(coded.data.data(), coded.data.size(), wrong, B, 12, out.data()); }));
  std::vector<uint64_t> many(4096, 0);
  many[0] = B;
  CHECK(throws<DecodeFailure>([&] { decode_block_map(coded.data.data(), coded.data.size(), many, B, 12, out.data()); }));
  for (size_t n : {size_t{0}, size_t{5}, coded.data.size() / 2, coded.data.size() - 1})
    CHECK(throws<DecodeFailure>([&] { decode_block_map(coded.data.data(), n, coded.counts, B, 12, out.data()); }));
  // A map coded over 7 categories, read as if there were 3: an index out of range.
  std::vector<int32_t> high(B, 6);
  const CodedBlockMap h = encode_block_map(high.data(), B, A, 12);
  const std::vector<uint64_t> three = {0, 0, static_cast<uint64_t>(B)};
  CHECK(throws<DecodeFailure>([&] { decode_block_map(h.data.data(), h.data.size(), three, B, 12, out.data()); }));
}

int main() {
  test_gamma_round_trip();
  test_scale_cluster_counts();
  test_side_info_round_trip();
  test_hostile_side_info();
  test_block_map_round_trip_and_damage();
  return test::finish("test_side_info");
}
