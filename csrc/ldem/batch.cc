#include "ldem/batch.h"

#include <string>

#include "ldem/thread_pool.h"

namespace ldem {
namespace {

// Runs item(i, inner_threads) for i in [0, n): an item per thread when there are at
// least as many items as threads, else the items in turn over all threads. Failures
// are kept per item and the lowest-numbered one is rethrown as a BatchFailure.
template <class Item>
void run_items(int64_t n, int threads, const Item& item) {
  const int T = threads <= 0 ? hardware_threads() : threads;
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
  if (n >= T) {
    parallel_for(n, T, [&](int64_t i) { one(i, 1); });
  } else {
    for (int64_t i = 0; i < n; ++i) one(i, T);
  }
  for (int64_t i = 0; i < n; ++i)
    if (failed[i]) throw failures[i];
}

}  // namespace

std::vector<std::vector<uint8_t>> encode_batch(const std::vector<BatchItem>& items, const ModelSet& dict,
                                               int threads, bool checksum, const StreamParams& params) {
  check_params(params);
  std::vector<std::vector<uint8_t>> out(items.size());
  run_items(static_cast<int64_t>(items.size()), threads, [&](int64_t i, int inner) {
    const BatchItem& it = items[i];
    out[i] = encode(it.symbols, it.models, it.layout, dict, inner, checksum, params);
  });
  return out;
}

void decode_batch(const std::vector<BatchStream>& streams, const ModelSet& dict, int threads) {
  run_items(static_cast<int64_t>(streams.size()), threads, [&](int64_t i, int inner) {
    const BatchStream& s = streams[i];
    decode(s.data, s.size, s.models, s.layout, dict, inner, s.out);
  });
}

}  // namespace ldem
