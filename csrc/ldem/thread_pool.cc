#include "ldem/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include <unistd.h>

namespace ldem {
namespace {

class Pool {
 public:
  explicit Pool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }
  int workers() const { return static_cast<int>(threads_.size()); }

  // Serialises concurrent callers; each job uses `helpers` pool threads plus the caller.
  void run(int64_t n, int helpers, const std::function<void(int64_t)>& fn) {
    std::lock_guard<std::mutex> job_lock(job_mu_);
    std::atomic<int64_t> next{0};
    std::exception_ptr error;
    std::mutex error_mu;
    auto work = [&] {
      for (int64_t i; (i = next.fetch_add(1)) < n;) {
        try {
          fn(i);
        } catch (...) {
          std::lock_guard<std::mutex> lock(error_mu);
          if (!error) error = std::current_exception();
        }
      }
    };
    {
      std::lock_guard<std::mutex> lock(mu_);
      task_ = work;
      slots_ = helpers;
      active_ = helpers;
      ++generation_;
    }
    cv_.notify_all();
    work();
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, [&] { return active_ == 0; });
    task_ = nullptr;
    lock.unlock();
    if (error) std::rethrow_exception(error);
  }

 private:
  void loop() {
    uint64_t seen = 0;
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || (generation_ != seen && slots_ > 0); });
        if (stop_) return;
        seen = generation_;
        --slots_;
        task = task_;
      }
      task();
      std::lock_guard<std::mutex> lock(mu_);
      if (--active_ == 0) done_cv_.notify_all();
    }
  }

  std::vector<std::thread> threads_;
  std::mutex mu_, job_mu_;
  std::condition_variable cv_, done_cv_;
  std::function<void()> task_;
  uint64_t generation_ = 0;
  int slots_ = 0, active_ = 0;
  bool stop_ = false;
};

// Never destroyed: a forked child inherits this object but not its threads, and must
// neither wait for them nor join them at exit.
Pool* pool_or_null() {
  static const pid_t owner = getpid();
  static Pool* p = new Pool(std::max(0, hardware_threads() - 1));
  return getpid() == owner ? p : nullptr;
}

}  // namespace

int hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(std::min(n, 256u));
}

void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
  if (n <= 0) return;
  if (threads <= 0) threads = hardware_threads();
  const int64_t want = std::min<int64_t>(threads, n);
  if (want <= 1) {
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  Pool* p = pool_or_null();
  if (p == nullptr) {  // in a forked child: the calling thread does the work
    for (int64_t i = 0; i < n; ++i) fn(i);
    return;
  }
  p->run(n, static_cast<int>(std::min<int64_t>(want - 1, p->workers())), fn);
}

}  // namespace ldem
