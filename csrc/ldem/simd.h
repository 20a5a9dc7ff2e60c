// Run-time SIMD dispatch: the instruction-set level that ldem's dispatched kernels may
// use. Every level computes the same bytes and values; the level only changes speed.
//
// Levels, lowest first:
//   scalar  none of ldem's dispatched SIMD kernels: plain C++ loops only. The code is
//           still compiled for the build's baseline (SSE2 on x86-64, which the compiler
//           may use for plain loops, and the SSE2 quad loop of the encoder in encode.cc,
//           which is part of that baseline and not dispatched).
//   sse2    + the SSE2 minimum search of block selection (select.cc).
//   avx2    + the AVX2 argmin of block selection (select.cc) and the AVX2 build of the
//           block histograms (histograms.cc).
//   avx512  + the AVX-512 paired-segment encoder (encode_avx512.cc; F, DQ and VL), the
//           AVX-512 argmin of block selection and the AVX-512 builds of the histogram
//           cost sums and cost pooling.
// The level in use is min(the CPU's level, the cap); the cap is the highest level unless
// set (the Python module sets it from the LDEM_SIMD environment variable at import).
#pragma once

#include <string>

#if defined(__x86_64__) && defined(__GNUC__)
#define LDEM_X86_DISPATCH 1
// Compiles one function for an instruction set beyond the baseline (called only when
// simd_level() allows it).
#define LDEM_TARGET(isa) __attribute__((target(isa)))
#else
#define LDEM_TARGET(isa)
#endif

namespace ldem {

enum class SimdLevel : int { kScalar = 0, kSse2 = 1, kAvx2 = 2, kAvx512 = 3 };

// The highest level this CPU and build support (scalar off x86).
SimdLevel cpu_simd_level();
// The level the dispatched kernels use: min(cpu_simd_level(), the cap).
SimdLevel simd_level();
// Caps the level (the default cap is avx512, i.e. none). Not for use while other
// threads code: set it once before any work, as the Python module does at import.
void set_simd_cap(SimdLevel cap);
// "scalar", "sse2", "avx2" or "avx512".
const char* simd_level_name(SimdLevel level);
// The level named by text; throws ArgumentError naming the accepted values otherwise.
SimdLevel parse_simd_level(const std::string& text);
// The cap named by the environment variable LDEM_SIMD: avx512 (no cap) when it is unset
// or empty. Throws ArgumentError for any other value than a level name.
SimdLevel simd_cap_from_env();

}  // namespace ldem

namespace ldem {

// The build of each dispatched kernel that simd_level() selects now (for build_info);
// each is defined next to its kernel.
const char* encoder_kernel();            // encode_avx512.cc: "avx512-paired", "sse2" or "scalar"
const char* selection_kernel();          // select.cc: "avx512", "avx2", "sse2" or "scalar"
const char* pooling_kernel();            // select.cc: "avx512" or "baseline"
const char* histogram_counts_kernel();   // histograms.cc: "avx2" or "baseline"
const char* histogram_costs_kernel();    // histograms.cc: "avx512" or "baseline"

}  // namespace ldem
