// Tests of the thread pool (ldem/thread_pool.h): every index runs exactly once for
// any thread count, exceptions reach the caller, concurrent callers take turns.
#include <atomic>
#include <stdexcept>
#include <thread>
#include <vector>

#include "check.h"
#include "ldem/thread_pool.h"

using namespace ldem;
using namespace ldem::test;

static void every_index_once() {
  for (int threads : {-1, 0, 1, 2, 3, 64})
    for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{2}, int64_t{7}, int64_t{1000}}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      for (auto& h : hits) h = 0;
      parallel_for(n, threads, [&](int64_t i) { hits[static_cast<size_t>(i)]++; });
      bool once = true;
      for (auto& h : hits) once = once && h.load() == 1;
      CHECK(once);
    }
}

static void exceptions_reach_the_caller() {
  for (int threads : {1, 2, 4}) {
    std::atomic<int> ran{0};
    CHECK(throws<std::runtime_error>([&] {
      parallel_for(100, threads, [&](int64_t i) {
        ++ran;
        if (i == 37) throw std::runtime_error("job 37");
      });
    }));
    CHECK(ran.load() >= 1);
    // The pool still works after a failed job.
    std::atomic<int64_t> sum{0};
    parallel_for(100, threads, [&](int64_t i) { sum += i; });
    CHECK(sum.load() == 4950);
  }
}

static void concurrent_callers() {
  std::atomic<int64_t> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int r = 0; r < 50; ++r) parallel_for(64, 0, [&](int64_t i) { total += i; });
    });
  for (auto& t : callers) t.join();
  CHECK(total.load() == 4 * 50 * (63 * 64 / 2));
}

int main() {
  CHECK(hardware_threads() >= 1 && hardware_threads() <= 256);
  every_index_once();
  exceptions_reach_the_caller();
  concurrent_callers();
  return finish("test_thread_pool");
}
