// A small persistent thread pool for data-parallel loops.
#pragma once

#include <cstdint>
#include <functional>

namespace ldem {

int hardware_threads();

// Runs fn(i) for i in [0, n) on up to `threads` threads (the caller included).
// threads <= 0 means hardware_threads(). Returns after every call finished.
// The first exception thrown by fn is rethrown in the caller. Concurrent callers
// take turns; in a child created by fork() the caller runs every fn(i) itself.
// REQUIRES: fn does not call parallel_for (jobs do not nest).
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& fn);

}  // namespace ldem
