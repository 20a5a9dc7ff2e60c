// Tests of the little-endian loads and stores (ldem/endian.h): fixed byte patterns at
// every alignment, whatever the host's byte order, and word arrays both ways.
#include <cstdint>
#include <vector>

#include "check.h"
#include "ldem/endian.h"

using namespace ldem;
using namespace ldem::test;

static void single_words() {
  const uint8_t bytes[8] = {0x01, 0x02, 0x03, 0x04, 0xF5, 0xF6, 0xF7, 0xF8};
  CHECK(load_le32(bytes) == 0x04030201u);
  CHECK(load_le32(bytes + 1) == 0xF5040302u);  // unaligned
  CHECK(load_le32(bytes + 4) == 0xF8F7F6F5u);
  for (int at = 0; at < 4; ++at) {
    uint8_t out[8] = {0};
    store_le32(out + at, 0xA1B2C3D4u);
    CHECK(out[at] == 0xD4 && out[at + 1] == 0xC3 && out[at + 2] == 0xB2 && out[at + 3] == 0xA1);
    CHECK(load_le32(out + at) == 0xA1B2C3D4u);
    CHECK((at == 0 || out[at - 1] == 0) && out[at + 4] == 0);  // nothing else written
  }
}

static void word_arrays() {
  const std::vector<uint32_t> words = {0x00000000u, 0x00000001u, 0x80000000u, 0x12345678u, 0xFFFFFFFFu};
  const uint8_t expected[20] = {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x80,
                                0x78, 0x56, 0x34, 0x12, 0xFF, 0xFF, 0xFF, 0xFF};
  for (int at = 0; at < 4; ++at) {  // every alignment of the byte buffer
    std::vector<uint8_t> buf(24 + at, 0xEE);
    store_le32_words(buf.data() + at, words.data(), words.size());
    bool same = true;
    for (int i = 0; i < 20; ++i) same = same && buf[at + i] == expected[i];
    CHECK(same);
    CHECK(buf[at + 20] == 0xEE);
    std::vector<uint32_t> back(words.size());
    load_le32_words(back.data(), buf.data() + at, back.size());
    CHECK(back == words);
  }
}

int main() {
  CHECK(kLittleEndianHost == (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__));
  single_words();
  word_arrays();
  return finish("test_endian");
}
