// Tests of the stream rules (ldem/format.h): segments, varints, the header writer and
// the header parse with each of its status codes.
#include <cstdint>
#include <vector>

#include "check.h"
#include "ldem/format.h"

using namespace ldem;
using namespace ldem::format;
using namespace ldem::test;

static void segments() {
  CHECK(num_segments(0, 8) == 0);
  CHECK(num_segments(-5, 8) == 0);
  CHECK(num_segments(1, 8) == 1);
  CHECK(num_segments(511, 8) == 1);
  CHECK(num_segments(512, 8) == 2);
  CHECK(num_segments(int64_t{1} << 40, 31) == 512);
  // The segments tile [0, N) in nearly equal parts.
  for (int64_t N : {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{1000}, int64_t{65537},
                    (int64_t{1} << 40) - 1}) {
    const int64_t S = num_segments(N, 8) > 4096 ? 4096 : num_segments(N, 8);
    CHECK(segment_begin(N, S, 0) == 0);
    CHECK(segment_begin(N, S, S) == N);
    for (int64_t s = 0; s < S; ++s) {
      const int64_t len = segment_begin(N, S, s + 1) - segment_begin(N, S, s);
      CHECK(len == N / S || len == N / S + 1);
    }
  }
  CHECK(segment_capacity_words(0, 1) == 6);
  CHECK(segment_capacity_words(100, 32) == 268);
  // 4 + 10 S + 4 + 4 (2 N + S (2 lanes + 4)).
  CHECK(max_stream_bytes(0, StreamParams{}) == 8);
  CHECK(max_stream_bytes(1000, StreamParams{2, 8}) == 4 + 30 + 4 + 4 * (2000 + 3 * 12));
}

static void varints() {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{127}, uint64_t{128}, uint64_t{300},
                     uint64_t{1} << 35, ~uint64_t{0}}) {
    uint8_t buf[10];
    uint8_t* end = put_varint(buf, v);
    CHECK(end - buf == varint_size(v));
    const uint8_t* p = buf;
    uint64_t back = 1;
    CHECK(get_varint(p, end, back) && back == v && p == end);
    p = buf;  // truncated
    CHECK(!get_varint(p, end - 1, back));
  }
  CHECK(varint_size(127) == 1 && varint_size(128) == 2 && varint_size(~uint64_t{0}) == 10);
  const uint8_t overlong[11] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01};
  const uint8_t* p = overlong;
  uint64_t v = 0;
  CHECK(!get_varint(p, overlong + 11, v));
}

// A stream for N symbols with segment lengths `words` (in words) and zero payload.
static std::vector<uint8_t> stream(const std::vector<uint32_t>& words, StreamParams params,
                                   bool checksum) {
  const int64_t S = static_cast<int64_t>(words.size());
  std::vector<uint8_t> out(header_bytes(words.data(), S, checksum));
  CHECK(write_header(out.data(), words.data(), S, params, checksum) == out.size());
  for (uint32_t w : words) out.resize(out.size() + 4 * w, 0);
  return out;
}

static uint32_t parse(const std::vector<uint8_t>& data, int64_t N, ParsedStream* ps,
                      std::vector<uint64_t>* starts) {
  starts->assign(static_cast<size_t>(N >> kMinSegmentShift) + 2, 0);
  return parse_stream(data.data(), data.size(), N, 16, ps, starts->data());
}

static void header_round_trip() {
  const StreamParams params{3, 8};  // 8 lanes, 256-symbol segments
  const std::vector<uint32_t> words = {20, 40, 200, 18};
  for (bool checksum : {false, true}) {
    std::vector<uint8_t> data = stream(words, params, checksum);
    CHECK(data[0] == 'L' && data[1] == 'D' && data[2] == (kFormatVersion << 4 | checksum));
    CHECK(data[3] == (3 << 5 | 8));
    CHECK(data.size() == 4 + 1 + 2 + 2 + (checksum ? 4 : 0) + 4 * 278);  // varints 80, 160, 800
    if (checksum) data[9] = 0x78, data[10] = 0x56, data[11] = 0x34, data[12] = 0x12;
    ParsedStream ps;
    std::vector<uint64_t> starts;
    CHECK(parse(data, 1024, &ps, &starts) == kParseOk);
    CHECK(ps.S == 4 && ps.lanes_log2 == 3 && ps.checksum == checksum);
    CHECK(ps.payload_off == (checksum ? 13u : 9u) && ps.payload_bytes == 4 * 278);
    CHECK(!checksum || ps.crc == 0x12345678u);
    CHECK(starts[0] == 0 && starts[1] == 20 && starts[2] == 60 && starts[3] == 260 && starts[4] == 278);
    StreamParams p;
    bool c = !checksum;
    CHECK(read_params(data.data(), data.size(), &p, &c) == kParseOk);
    CHECK(p.lanes_log2 == 3 && p.segment_shift == 8 && c == checksum);
  }
}

static void parse_statuses() {
  const StreamParams params{2, 8};
  const std::vector<uint8_t> good = stream({20, 40, 30}, params, false);  // N = 768: 3 segments
  ParsedStream ps;
  std::vector<uint64_t> starts;
  CHECK(parse(good, 768, &ps, &starts) == kParseOk);
  auto with = [&](size_t at, uint8_t byte) {
    std::vector<uint8_t> d = good;
    d[at] = byte;
    return d;
  };
  CHECK(parse(with(0, 'X'), 768, &ps, &starts) == kBadMagic);
  CHECK(parse(std::vector<uint8_t>(good.begin(), good.begin() + 3), 768, &ps, &starts) == kBadMagic);
  CHECK(parse(with(2, 0x20), 768, &ps, &starts) == kBadVersion);
  CHECK(parse(with(2, 0x12), 768, &ps, &starts) == kBadFlags);
  CHECK(parse(with(3, 2 << 5 | 7), 768, &ps, &starts) == kBadParams);
  CHECK(parse(with(3, 6 << 5 | 8), 768, &ps, &starts) == kBadParams);
  // 3 segments of 4 lanes need 96 bytes of states.
  CHECK(parse(std::vector<uint8_t>(good.begin(), good.begin() + 95), 768, &ps, &starts) ==
        kTooShortForShape);
  CHECK(parse(good, int64_t{1} << 20, &ps, &starts) == kTooShortForShape);
  {  // one segment: at most 12 * 2^16 symbols per byte at P = 16
    const std::vector<uint8_t> d = stream({25}, StreamParams{0, 31}, false);
    const int64_t most = 12 * 65536 * static_cast<int64_t>(d.size());
    CHECK(parse(d, most, &ps, &starts) == kParseOk);
    CHECK(parse(d, most + 1, &ps, &starts) == kTooManySymbols);
  }
  std::vector<uint8_t> trunc(good.begin(), good.begin() + 5);
  trunc.resize(200, 0x80);  // the second length never ends
  CHECK(parse(trunc, 768, &ps, &starts) == kTruncatedHeader);
  CHECK(parse(with(4, 81), 768, &ps, &starts) == kBadSegmentLength);   // not whole words
  CHECK(parse(with(4, 0x7C), 768, &ps, &starts) == kParseOk);          // 31 words: still fits
  CHECK(parse(std::vector<uint8_t>(good.begin(), good.end() - 1), 768, &ps, &starts) == kPartialWord);
  {
    std::vector<uint8_t> d = stream({20, 40, 30}, params, false);
    d[5] = 0x7C;  // 2nd segment 124 bytes: the three no longer fit the data
    d[4] = 0x7C;
    d.resize(d.size() - 4 * 30 + 4);
    CHECK(parse(d, 768, &ps, &starts) == kLengthsExceedData);
  }
  {
    std::vector<uint8_t> d = stream({}, params, false);
    CHECK(parse(d, 0, &ps, &starts) == kParseOk && ps.S == 0);
    d.push_back(0);
    CHECK(parse(d, 0, &ps, &starts) == kDataForEmptyShape);
  }
  {  // the CRC field cut short (after a 10-byte varint)
    const std::vector<uint8_t> d = {'L', 'D', 0x11, 0 << 5 | 8, 0x84, 0x80, 0x80, 0x80,
                                    0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0, 0};
    CHECK(parse(d, 512, &ps, &starts) == kTruncatedHeader);
  }
}

static void escape_bits() {
  // Support [-2, 3): d = distance past the edge; 7 head bits + bit_length(d + 1) - 1.
  CHECK(escape_payload_bits(-2, 5, 3) == 7);
  CHECK(escape_payload_bits(-2, 5, -3) == 7);
  CHECK(escape_payload_bits(-2, 5, 4) == 8);
  CHECK(escape_payload_bits(-2, 5, 5) == 8);
  CHECK(escape_payload_bits(-2, 5, 6) == 9);
  CHECK(escape_payload_bits(0, 1, INT32_MAX) == 7 + 30);  // d + 1 = 2^31 - 1
  CHECK(escape_payload_bits(0, 1, INT32_MIN) == 7 + 31);  // d + 1 = 2^31
  CHECK(escape_payload_bits(INT32_MAX, 1, INT32_MIN) == 7 + 31);  // d + 1 = 2^32 - 1
  CHECK(bit_length64(0) == 0 && bit_length64(1) == 1 && bit_length64(~uint64_t{0}) == 64);
}

int main() {
  segments();
  varints();
  header_round_trip();
  parse_statuses();
  escape_bits();
  return finish("test_format");
}
