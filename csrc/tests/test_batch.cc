// Tests of batch coding (ldem/batch.h): each item's bytes are encode()'s for any thread
// count and item count, streams decode back, and a bad item is reported by its index.
#include <random>
#include <vector>

#include "check.h"
#include "ldem/batch.h"

using namespace ldem;
using namespace ldem::test;

struct Tensor {
  Layout layout;
  std::vector<int32_t> symbols, models;
};

static std::vector<Tensor> random_batch(std::mt19937& rng, int n, int K) {
  std::vector<Tensor> items;
  for (int i = 0; i < n; ++i) {
    Tensor t;
    t.layout = Layout{1 + static_cast<int64_t>(rng() % 8), static_cast<int64_t>(rng() % 40),
                      1 + static_cast<int64_t>(rng() % 70), 1 + static_cast<int64_t>(rng() % 5),
                      1 + static_cast<int64_t>(rng() % 9)};
    t.symbols = random_symbols(rng, t.layout.num_symbols(), 0.01);
    t.models.resize(t.layout.num_blocks());
    for (auto& m : t.models) m = static_cast<int32_t>(rng() % K);
    items.push_back(std::move(t));
  }
  return items;
}

static std::vector<BatchItem> batch_items(const std::vector<Tensor>& ts) {
  std::vector<BatchItem> items;
  for (const Tensor& t : ts) items.push_back(BatchItem{t.symbols.data(), t.models.data(), t.layout});
  return items;
}

static void same_bytes_as_encode(std::mt19937& rng) {
  const Dictionary dict = random_dictionary(rng, 14, 5);
  const ModelSet set(dict);
  for (int n : {0, 1, 3, 9})
    for (const StreamParams params : {StreamParams{}, StreamParams{2, 8}, StreamParams{3, 9}}) {
      const std::vector<Tensor> ts = random_batch(rng, n, 5);
      for (bool checksum : {false, true})
        for (int threads : {0, 1, 2, 5, 16}) {
          const auto out = encode_batch(batch_items(ts), set, threads, checksum, params);
          CHECK(out.size() == ts.size());
          for (size_t i = 0; i < ts.size() && i < out.size(); ++i)
            CHECK(out[i] == encode(ts[i].symbols.data(), ts[i].models.data(), ts[i].layout, dict, 1, checksum,
                                   params));
        }
      // Back through decode_batch.
      const auto out = encode_batch(batch_items(ts), set, 0, false, params);
      std::vector<std::vector<int32_t>> back(ts.size());
      std::vector<BatchStream> streams;
      for (size_t i = 0; i < ts.size(); ++i) {
        back[i].assign(ts[i].symbols.size(), 7);
        streams.push_back(BatchStream{out[i].data(), out[i].size(), ts[i].models.data(), ts[i].layout,
                                      back[i].data()});
      }
      for (int threads : {0, 1, 3}) {
        decode_batch(streams, set, threads);
        for (size_t i = 0; i < ts.size(); ++i) CHECK(back[i] == ts[i].symbols);
      }
    }
}

static void failures_name_the_lowest_index(std::mt19937& rng) {
  const Dictionary dict = random_dictionary(rng, 16, 3);
  const ModelSet set(dict);
  std::vector<Tensor> ts = random_batch(rng, 6, 3);
  for (Tensor& t : ts) {  // no empty items: every stream here has a payload to damage
    if (t.layout.num_symbols() > 0) continue;
    t.layout.H = 5;
    t.symbols = random_symbols(rng, t.layout.num_symbols(), 0);
    t.models.assign(t.layout.num_blocks(), 0);
  }
  // Default segments (an item per thread), then short ones: with 16 threads each item
  // has more segments than there are items, and the items run in turn over all threads.
  for (const StreamParams params : {StreamParams{}, StreamParams{2, 8}}) {
    for (int threads : {1, 2, 4, 16}) {
      std::vector<std::vector<uint8_t>> data = encode_batch(batch_items(ts), set, 2, true, params);
      data[4][data[4].size() / 2] ^= 0x10;  // the checksum catches it
      if (params.segment_shift == 8)
        data[2][data[2].size() / 2] ^= 0x01;
      else
        data[2].resize(3);  // truncated
      std::vector<std::vector<int32_t>> back(ts.size());
      std::vector<BatchStream> streams;
      for (size_t i = 0; i < ts.size(); ++i) {
        back[i].resize(ts[i].symbols.size());
        streams.push_back(BatchStream{data[i].data(), data[i].size(), ts[i].models.data(), ts[i].layout,
                                      back[i].data()});
      }
      int64_t index = -1;
      bool is_decode = false;
      try {
        decode_batch(streams, set, threads);
      } catch (const BatchFailure& f) {
        index = f.index;
        is_decode = f.decode && !f.message.empty();
      }
      CHECK(index == 2);
      CHECK(is_decode);
      // The undamaged streams decoded all the same.
      CHECK(back[0] == ts[0].symbols && back[5] == ts[5].symbols);
    }
  }
  // A model index that is out of range when the encoder reads it (the caller skipped
  // check_layout, as a map written by another thread would): an argument failure.
  ts[3].models[0] = 99;
  int64_t index = -1;
  bool is_decode = true;
  try {
    encode_batch(batch_items(ts), set, 3, false, {});
  } catch (const BatchFailure& f) {
    index = f.index;
    is_decode = f.decode;
  }
  CHECK(index == 3 && !is_decode);
  CHECK(throws<ArgumentError>([&] { encode_batch(batch_items(ts), set, 1, false, StreamParams{9, 17}); }));
}

int main() {
  std::mt19937 rng(99);
  same_bytes_as_encode(rng);
  failures_name_the_lowest_index(rng);
  return finish("test_batch");
}
