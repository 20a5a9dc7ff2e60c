// Little-endian loads and stores: every multi-byte value of a stream or a serialised
// dictionary is little endian, whatever the host's byte order. On little-endian hosts
// these are plain (unaligned) memcpy's; on big-endian hosts each word is byte-swapped.
// Header-only, no dependencies; usable from CUDA host code (not device code).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if !defined(__BYTE_ORDER__) || \
    (__BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__ && __BYTE_ORDER__ != __ORDER_BIG_ENDIAN__)
#error "ldem needs a compiler that defines __BYTE_ORDER__ (GCC or Clang)"
#endif

namespace ldem {

constexpr bool kLittleEndianHost = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;

// The u32 at p (any alignment), stored little endian.
// REQUIRES: p has 4 readable bytes.
inline uint32_t load_le32(const void* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return kLittleEndianHost ? v : __builtin_bswap32(v);
}

// Stores v at p (any alignment) little endian.
// REQUIRES: p has 4 writable bytes.
inline void store_le32(void* p, uint32_t v) {
  if (!kLittleEndianHost) v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}

// Writes n words as 4n little-endian bytes at dst (a memcpy on little-endian hosts).
// REQUIRES: dst has 4n writable bytes, src has n words; they do not overlap.
inline void store_le32_words(uint8_t* dst, const uint32_t* src, size_t n) {
  if (kLittleEndianHost) {
    std::memcpy(dst, src, 4 * n);
  } else {
    for (size_t i = 0; i < n; ++i) store_le32(dst + 4 * i, src[i]);
  }
}

// Reads 4n little-endian bytes at src into n words (a memcpy on little-endian hosts).
// REQUIRES: src has 4n readable bytes, dst has n words; they do not overlap.
inline void load_le32_words(uint32_t* dst, const uint8_t* src, size_t n) {
  if (kLittleEndianHost) {
    std::memcpy(dst, src, 4 * n);
  } else {
    for (size_t i = 0; i < n; ++i) dst[i] = load_le32(src + 4 * i);
  }
}

}  // namespace ldem
