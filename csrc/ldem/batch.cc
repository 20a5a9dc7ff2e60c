#include "ldem/batch.h"

#include <string>

#include "ldem/format.h"
#include "ldem/thread_pool.h"

namespace ldem {
namespace {

// Runs item(i, inner_threads) for i in [0, n), where item i has segments[i] segments:
// the items in turn over all threads when each item alone has more segments than there
// are items (few large tensors), else an item per thread (items do not nest pool jobs).
// Failures are kept per item and the lowest-numbered one is rethrown as a BatchFailure.
template <class Item>
void run_items(const std::vector<int64_t>& segments, int threads, const Item& item) {
  const int64_t n = static_cast<int64_t>(segments.size());
  const int T = threads <= 0 ? hardware_threads() : threads;
  bool in_turn = n < T;
  for (int64_t s : segments) in_turn = in_turn && s > n;
  std::vector<BatchFailure> failures(static_cast<size_t>(n));
  std::vector<char> failed(static_cast<size_t>(n), 0);
  auto one = [&](int64_t i, int inner) {
    try {
      item(i, inner);
    } catch (const DecodeFailure& e) {
      failures[i] = BatchFailure{i, true, e.message};
      failed[i] = 1;
    } catch (const ArgumentError& e) {
      failures[i] = BatchFailure{i, false, e.message};
      failed[i] = 1;
    }
  };
  if (in_turn) {
    for (int64_t i = 0; i < n; ++i) one(i, T);
  } else {
    parallel_for(n, T, [&](int64_t i) { one(i, 1); });
  }
  for (int64_t i = 0; i < n; ++i)
    if (failed[i]) throw failures[i];
}

}  // namespace

std::vector<std::vector<uint8_t>> encode_batch(const std::vector<BatchItem>& items, const ModelSet& dict,
                                               int threads, bool checksum, const StreamParams& params) {
  check_params(params);
  std::vector<std::vector<uint8_t>> out(items.size());
  std::vector<int64_t> segments;
  for (const BatchItem& it : items) segments.push_back(num_segments(it.layout.num_symbols(), params.segment_shift));
  run_items(segments, threads, [&](int64_t i, int inner) {
    const BatchItem& it = items[i];
    out[i] = encode(it.symbols, it.models, it.layout, dict, inner, checksum, params);
  });
  return out;
}

void decode_batch(const std::vector<BatchStream>& streams, const ModelSet& dict, int threads) {
  std::vector<int64_t> segments;
  for (const BatchStream& s : streams) {
    int64_t S = 1;  // a stream whose header fails is reported by its decode
    try {
      S = num_segments(s.layout.num_symbols(), read_params(s.data, s.size).segment_shift);
    } catch (const DecodeFailure&) {
    }
    segments.push_back(S);
  }
  run_items(segments, threads, [&](int64_t i, int inner) {
    const BatchStream& s = streams[i];
    decode(s.data, s.size, s.models, s.layout, dict, inner, s.out);
  });
}

}  // namespace ldem
