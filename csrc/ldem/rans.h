// rANS primitives: 64-bit state, 32-bit words, precision P <= 16.
//
// State x lives in [L, 2^32 L) with L = 2^31, so x < 2^63 always.
// Coding symbol s (start c_s, frequency f_s, M = 2^P):
//   encode  C(s, x) = floor(x / f_s) * M + (x mod f_s) + c_s
//   decode  slot = x mod M, s = the symbol with c_s <= slot < c_s + f_s,
//           x = f_s * floor(x / M) + slot - c_s
// Renormalisation keeps x in range: the encoder emits the low word while
// x >= f_s * 2^(63 - P) (at most once), the decoder reads one word while x < L.
//
// Division by f_s uses an exact reciprocal: with s = ceil(log2 f), r = ceil(2^(63+s) / f)
// and e = r f - 2^(63+s) < f <= 2^s, floor(x r / 2^(63+s)) = floor(x / f) whenever
// x e < 2^(63+s), which holds for all x < 2^63.
//
// Interleaving: symbol j of a segment goes to lane j % lanes. The encoder walks
// the segment backwards and writes words downwards into one buffer; the decoder
// walks forwards and reads upwards, so it replays the encoder's operations in
// exactly reverse order.
#pragma once

#include <cstdint>

#include "ldem/tables.h"

namespace ldem::rans {

constexpr uint64_t kLow = 1ull << 31;
constexpr int kLanes = 4;  // lanes of the CPU fast path

inline uint64_t mulhi64(uint64_t a, uint64_t b) {
  return static_cast<uint64_t>((static_cast<unsigned __int128>(a) * b) >> 64);
}

// Encodes one symbol, writing at most one word below end[pos]. Branchless
// renormalisation: the low word is always stored at end[pos - 1] and pos drops by one
// only when it is emitted (at most once per symbol; a single add-with-carry).
// REQUIRES: kLow <= x < 2^63.
// REQUIRES: end[pos - 1] is writable.
inline void put_at(uint64_t& x, uint32_t* end, int64_t& pos, const EncSymbol& s) {
  const uint64_t hi = x >> 32;
  end[pos - 1] = static_cast<uint32_t>(x);
#if defined(__x86_64__) && defined(__GNUC__)
  // One compare feeds the cmov and the carry (compilers tend to emit an unpredictable
  // branch here).
  __asm__("cmpq %[x_max], %[x]\n\t"  // CF = (x < x_max): no word
          "cmovaeq %[hi], %[x]\n\t"
          "adcq $-1, %[pos]"
          : [x] "+&r"(x), [pos] "+r"(pos)
          : [x_max] "m"(s.x_max), [hi] "r"(hi)
          : "cc");
#else
  const bool emit = x >= s.x_max;
  pos -= emit;
  x = emit ? hi : x;
#endif
  const uint64_t q = mulhi64(x, s.rcp) >> s.shift;
  x = x + s.bias + q * s.cmpl;
}

// put_at() with a moving pointer: the word goes to out[-1] and out drops when it is emitted.
// REQUIRES: kLow <= x < 2^63.
// REQUIRES: out[-1] is writable.
inline void put(uint64_t& x, uint32_t*& out, const EncSymbol& s) {
  int64_t pos = 0;
  put_at(x, out, pos, s);
  out += pos;
}

// Pushes nbits raw bits (a uniform symbol of frequency 1 at scale nbits).
// REQUIRES: 1 <= nbits <= 16.
// REQUIRES: bits < 2^nbits.
// REQUIRES: kLow <= x < 2^63.
inline void put_bits(uint64_t& x, uint32_t*& out, uint32_t bits, int nbits) {
  if (x >= (1ull << (63 - nbits))) {
    *--out = static_cast<uint32_t>(x);
    x >>= 32;
  }
  x = (x << nbits) | bits;
}

// REQUIRES: 1 <= nbits <= 16.
inline uint32_t get_bits(uint64_t& x, int nbits) {
  const uint32_t bits = static_cast<uint32_t>(x) & ((1u << nbits) - 1);
  x >>= nbits;
  return bits;
}

}  // namespace ldem::rans
