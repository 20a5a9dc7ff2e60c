#include "ldem/simd.h"

#include <atomic>
#include <cstdlib>

#include "ldem/tables.h"

namespace ldem {
namespace {

std::atomic<int> g_cap{static_cast<int>(SimdLevel::kAvx512)};

SimdLevel detect() {
#ifdef LDEM_X86_DISPATCH
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl"))
    return SimdLevel::kAvx512;
  if (__builtin_cpu_supports("avx2")) return SimdLevel::kAvx2;
  if (__builtin_cpu_supports("sse2")) return SimdLevel::kSse2;
#endif
  return SimdLevel::kScalar;
}

}  // namespace

SimdLevel cpu_simd_level() {
  static const SimdLevel level = detect();
  return level;
}

SimdLevel simd_level() {
  const int cap = g_cap.load(std::memory_order_relaxed);
  const int cpu = static_cast<int>(cpu_simd_level());
  return static_cast<SimdLevel>(cap < cpu ? cap : cpu);
}

void set_simd_cap(SimdLevel cap) { g_cap.store(static_cast<int>(cap)); }

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kScalar: return "scalar";
    case SimdLevel::kSse2: return "sse2";
    case SimdLevel::kAvx2: return "avx2";
    case SimdLevel::kAvx512: return "avx512";
  }
  return "scalar";
}

SimdLevel parse_simd_level(const std::string& text) {
  for (SimdLevel l : {SimdLevel::kScalar, SimdLevel::kSse2, SimdLevel::kAvx2, SimdLevel::kAvx512})
    if (text == simd_level_name(l)) return l;
  throw ArgumentError{"LDEM_SIMD='" + text + "' is not a SIMD level: use scalar, sse2, avx2 or avx512"};
}

SimdLevel simd_cap_from_env() {
  const char* v = std::getenv("LDEM_SIMD");
  if (v == nullptr || *v == '\0') return SimdLevel::kAvx512;
  return parse_simd_level(v);
}

}  // namespace ldem
