// ldem_stream_tool: core streams as files, so that streams written on one architecture
// can be decoded and re-encoded on another (.ci/cross.sh compares x86-64, aarch64 and
// big-endian s390x). Every file is little endian, whatever the host:
//   dictionary  Dictionary::serialize() bytes (ldem.Dictionary.to_bytes())
//   symbols     raw int32, C * H * W values in C order
//   models      raw int32, C * ceil(H / bh) * ceil(W / bw) model indices
//   stream      an ldem stream (ldem/format.h)
//
// Usage: ldem_stream_tool [--threads T] COMMAND ARGS...   (T defaults to 2)
//   encode DICT C H W BH BW MODELS SYMBOLS LANES SEGMENT_SHIFT CHECKSUM(0|1) OUT_STREAM
//   decode DICT C H W BH BW MODELS STREAM OUT_SYMBOLS
//   dict   DICT OUT_DICT          (deserialise and serialise again)
//   batch  FILE                   (one of the commands above per line, arguments
//                                  separated by spaces; empty lines are skipped)
// Exit status 0 on success; 1 with a message on stderr for any bad file, argument or
// stream (a batch stops at its first failure).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "ldem/coder.h"
#include "ldem/endian.h"
#include "ldem/model_set.h"
#include "ldem/tables.h"

namespace {

using ldem::Dictionary;
using ldem::Layout;

struct UsageError {
  std::string message;
};

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw UsageError{"cannot open " + path + ": " + std::strerror(errno)};
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

void write_file(const std::string& path, const uint8_t* data, size_t size) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  if (!f.flush()) throw UsageError{"cannot write " + path};
}

// A raw little-endian int32 file of exactly n values.
std::vector<int32_t> read_int32(const std::string& path, int64_t n) {
  const std::vector<uint8_t> bytes = read_file(path);
  if (n < 0 || bytes.size() != static_cast<uint64_t>(n) * 4)
    throw UsageError{path + ": expected " + std::to_string(n) + " int32 values, got " +
                     std::to_string(bytes.size()) + " bytes"};
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<int32_t>(ldem::load_le32(&bytes[4 * i]));
  return v;
}

void write_int32(const std::string& path, const std::vector<int32_t>& v) {
  std::vector<uint8_t> bytes(4 * v.size());
  for (size_t i = 0; i < v.size(); ++i) ldem::store_le32(&bytes[4 * i], static_cast<uint32_t>(v[i]));
  write_file(path, bytes.data(), bytes.size());
}

int64_t parse_int(const std::string& s, int64_t lo, int64_t hi, const char* what) {
  char* end = nullptr;
  errno = 0;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || v < lo || v > hi)
    throw UsageError{std::string(what) + " must be an integer in [" + std::to_string(lo) + ", " +
                     std::to_string(hi) + "], got '" + s + "'"};
  return v;
}

Dictionary read_dictionary(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  return Dictionary::deserialize(bytes.data(), bytes.size());
}

// args[at..at + 6): DICT C H W BH BW, checked as the coder would.
Layout read_layout(const std::vector<std::string>& a, size_t at) {
  Layout L;
  L.C = parse_int(a[at + 1], 0, int64_t{1} << 31, "C");
  L.H = parse_int(a[at + 2], 0, int64_t{1} << 31, "H");
  L.W = parse_int(a[at + 3], 0, int64_t{1} << 31, "W");
  L.bh = parse_int(a[at + 4], 1, int64_t{1} << 31, "BH");
  L.bw = parse_int(a[at + 5], 1, int64_t{1} << 31, "BW");
  ldem::check_shape(L);
  return L;
}

void run(const std::vector<std::string>& a, int threads);

void run_batch(const std::string& path, int threads) {
  const std::vector<uint8_t> text = read_file(path);
  std::istringstream lines(std::string(text.begin(), text.end()));
  std::string line;
  for (int number = 1; std::getline(lines, line); ++number) {
    std::istringstream words(line);
    std::vector<std::string> a{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
    if (a.empty()) continue;
    if (a[0] == "batch") throw UsageError{path + ":" + std::to_string(number) + ": nested batch"};
    try {
      run(a, threads);
    } catch (UsageError& e) {
      e.message = path + ":" + std::to_string(number) + ": " + e.message;
      throw;
    }
  }
}

void run(const std::vector<std::string>& a, int threads) {
  const std::string cmd = a.empty() ? "" : a[0];
  if (cmd == "encode" && a.size() == 13) {
    const Dictionary d = read_dictionary(a[1]);
    const Layout L = read_layout(a, 1);
    const std::vector<int32_t> models = read_int32(a[7], L.num_blocks());
    const std::vector<int32_t> symbols = read_int32(a[8], L.num_symbols());
    ldem::StreamParams p;
    p.lanes_log2 = 0;
    const int64_t lanes = parse_int(a[9], 1, ldem::kMaxLanes, "LANES");
    while ((int64_t{1} << p.lanes_log2) < lanes) ++p.lanes_log2;
    if ((int64_t{1} << p.lanes_log2) != lanes) throw UsageError{"LANES must be a power of two"};
    p.segment_shift = static_cast<int>(parse_int(a[10], ldem::kMinSegmentShift, ldem::kMaxSegmentShift, "SEGMENT_SHIFT"));
    const bool checksum = parse_int(a[11], 0, 1, "CHECKSUM") != 0;
    ldem::check_layout(L, models.data(), d);
    const std::vector<uint8_t> out = ldem::encode(symbols.data(), models.data(), L, d, threads, checksum, p);
    write_file(a[12], out.data(), out.size());
  } else if (cmd == "decode" && a.size() == 10) {
    const Dictionary d = read_dictionary(a[1]);
    const Layout L = read_layout(a, 1);
    const std::vector<int32_t> models = read_int32(a[7], L.num_blocks());
    ldem::check_layout(L, models.data(), d);
    const std::vector<uint8_t> stream = read_file(a[8]);
    std::vector<int32_t> out(static_cast<size_t>(L.num_symbols()));
    ldem::decode(stream.data(), stream.size(), models.data(), L, d, threads, out.data());
    write_int32(a[9], out);
  } else if (cmd == "dict" && a.size() == 3) {
    const std::vector<uint8_t> out = read_dictionary(a[1]).serialize();
    write_file(a[2], out.data(), out.size());
  } else if (cmd == "batch" && a.size() == 2) {
    run_batch(a[1], threads);
  } else {
    throw UsageError{"usage: ldem_stream_tool [--threads T] encode|decode|dict|batch ARGS... "
                     "(see the comment at the top of csrc/tests/ldem_stream_tool.cc)"};
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    int threads = 2;
    if (args.size() >= 2 && args[0] == "--threads") {
      threads = static_cast<int>(parse_int(args[1], 0, 1024, "--threads"));
      args.erase(args.begin(), args.begin() + 2);
    }
    run(args, threads);
    return 0;
  } catch (const UsageError& e) {
    std::fprintf(stderr, "ldem_stream_tool: %s\n", e.message.c_str());
  } catch (const ldem::ArgumentError& e) {
    std::fprintf(stderr, "ldem_stream_tool: invalid argument: %s\n", e.message.c_str());
  } catch (const ldem::DecodeFailure& e) {
    std::fprintf(stderr, "ldem_stream_tool: decode error: %s\n", e.message.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ldem_stream_tool: %s\n", e.what());
  }
  return 1;
}
