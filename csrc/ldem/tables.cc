#include "ldem/tables.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace ldem {
namespace {

[[noreturn]] void fail(const std::string& msg) { throw ArgumentError{msg}; }

int bit_length(uint64_t v) {
  int b = 0;
  while (v) {
    ++b;
    v >>= 1;
  }
  return b;
}

EncSymbol make_enc_symbol(uint32_t start, uint32_t freq, int precision) {
  EncSymbol s{};
  const uint64_t M = 1ull << precision;
  s.x_max = static_cast<uint64_t>(freq) << (63 - precision);
  s.cmpl = M - freq;
  if (freq == 1) {
    // q = floor(x * (2^64 - 1) / 2^64) = x - 1, and x + (start + M - 1) + (x - 1)(M - 1)
    // = x * M + start, which is C(s, x) for freq 1.
    s.rcp = ~0ull;
    s.shift = 0;
    s.bias = static_cast<uint32_t>(start + M - 1);
  } else {
    int sh = bit_length(freq - 1);  // ceil(log2(freq))
    unsigned __int128 num = (static_cast<unsigned __int128>(1) << (63 + sh)) + freq - 1;
    s.rcp = static_cast<uint64_t>(num / freq);
    s.shift = static_cast<uint32_t>(sh - 1);
    s.bias = start;
  }
  return s;
}

void check_precision(int precision) {
  if (precision < kMinPrecision || precision > kMaxPrecision)
    fail("precision must be in [12, 16], got " + std::to_string(precision));
}

std::vector<uint32_t> finish_quantize(std::vector<uint32_t> f, const std::vector<size_t>& order,
                                      uint64_t remaining) {
  for (size_t i = 0; i < remaining; ++i) f[order[i % order.size()]] += 1;
  return f;
}

}  // namespace

double symbol_cost(const Model& m, int32_t v) {
  const uint32_t idx = static_cast<uint32_t>(v) - static_cast<uint32_t>(m.offset);
  if (idx < m.n) return m.cost[idx];
  return m.cost[m.n] + escape_payload_bits(m.offset, m.n, v);
}

Model make_model(int32_t offset, const std::vector<uint32_t>& freq, int precision, bool lookup) {
  check_precision(precision);
  const uint64_t M = 1ull << precision;
  if (freq.size() < 2) fail("a model needs at least one support symbol plus the escape");
  if (freq.size() > M) fail("support too large for the precision");
  const uint32_t n = static_cast<uint32_t>(freq.size() - 1);
  if (static_cast<int64_t>(offset) + n - 1 > INT32_MAX) fail("support exceeds int32 range");
  uint64_t total = 0;
  for (uint32_t f : freq) {
    if (f == 0) fail("every frequency must be >= 1");
    total += f;
  }
  if (total != M) fail("frequencies must sum to 2^precision");

  Model m;
  m.offset = offset;
  m.n = n;
  m.freq = freq;
  m.cdf.resize(n + 2);
  m.cdf[0] = 0;
  for (uint32_t i = 0; i <= n; ++i) m.cdf[i + 1] = m.cdf[i] + freq[i];
  m.enc.resize(n + 1);
  if (lookup) m.fc.resize(n + 1);  // the vector block encoder's table (not used by context coding)
  m.cost.resize(n + 1);
  for (uint32_t i = 0; i <= n; ++i) {
    m.enc[i] = make_enc_symbol(m.cdf[i], freq[i], precision);
    if (lookup) m.fc[i] = freq[i] | m.cdf[i] << 16;  // freq < 2^P <= 2^16 (the escape has >= 1), start < 2^16
    m.cost[i] = precision - std::log2(static_cast<double>(freq[i]));
  }
  if (!lookup) return m;
  const int lut_bits = std::min(precision, kLutBits);
  const int lut_shift = precision - lut_bits;
  m.lut.resize(size_t{1} << lut_bits);
  uint32_t s = 0;
  for (size_t b = 0; b < m.lut.size(); ++b) {
    const uint32_t slot = static_cast<uint32_t>(b << lut_shift);
    while (m.cdf[s + 1] <= slot) ++s;
    m.lut[b] = static_cast<uint16_t>(s);
  }
  return m;
}

std::vector<uint32_t> quantize_counts(const std::vector<uint64_t>& w, int precision) {
  check_precision(precision);
  const uint64_t M = 1ull << precision;
  const size_t k = w.size();
  if (k < 2 || k > M) fail("support size must be in [1, 2^precision - 1]");
  unsigned __int128 W = 0;
  bool valid = true;
  for (uint64_t v : w) {
    W += v;
    valid = valid && v >= 1;
  }
  std::vector<uint32_t> f(k, 1);
  if (valid && W == M) {
    for (size_t i = 0; i < k; ++i) f[i] = static_cast<uint32_t>(w[i]);
    return f;
  }
  const uint64_t A = M - k;
  if (W == 0) {
    std::vector<size_t> order(k);
    std::iota(order.begin(), order.end(), 0);
    for (size_t i = 0; i < k; ++i) f[i] = 1 + static_cast<uint32_t>(A / k);
    return finish_quantize(std::move(f), order, A % k);
  }
  std::vector<unsigned __int128> rem(k);
  uint64_t used = 0;
  for (size_t i = 0; i < k; ++i) {
    unsigned __int128 t = static_cast<unsigned __int128>(w[i]) * A;
    uint64_t q = static_cast<uint64_t>(t / W);
    rem[i] = t % W;
    f[i] += static_cast<uint32_t>(q);
    used += q;
  }
  std::vector<size_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rem[a] > rem[b]; });
  return finish_quantize(std::move(f), order, A - used);
}

std::vector<uint32_t> quantize_pmf(const std::vector<double>& w, int precision) {
  check_precision(precision);
  const uint64_t M = 1ull << precision;
  const size_t k = w.size();
  if (k < 2 || k > M) fail("support size must be in [1, 2^precision - 1]");
  double W = 0.0;
  for (double v : w) {
    if (!std::isfinite(v) || v < 0) fail("probabilities must be finite and >= 0");
    W += v;
  }
  if (!(W > 0)) return quantize_counts(std::vector<uint64_t>(k, 0), precision);
  const uint64_t A = M - k;
  const double Ad = static_cast<double>(A);
  std::vector<uint32_t> f(k, 1);
  std::vector<double> rem(k);
  uint64_t used = 0;
  for (size_t i = 0; i < k; ++i) {
    volatile double t = w[i] / W;  // volatile: keep the two roundings, no fused multiply-add
    double u = t * Ad;
    double fl = std::floor(u);
    if (fl > Ad) fl = Ad;
    rem[i] = u - fl;
    f[i] += static_cast<uint32_t>(fl);
    used += static_cast<uint64_t>(fl);
  }
  if (used > A) {  // float rounding may overshoot by a few units; take them from the largest
    std::vector<size_t> big(k);
    std::iota(big.begin(), big.end(), 0);
    std::stable_sort(big.begin(), big.end(), [&](size_t a, size_t b) { return f[a] > f[b]; });
    for (size_t i = 0; used > A; ++i) {
      size_t j = big[i % k];
      if (f[j] > 1) {
        f[j] -= 1;
        --used;
      }
    }
    return f;
  }
  std::vector<size_t> order(k);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rem[a] > rem[b]; });
  return finish_quantize(std::move(f), order, A - used);
}

Dictionary::Dictionary(int precision, std::vector<Model> models)
    : precision_(precision), models_(std::move(models)) {
  check_precision(precision);
}

namespace {
void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
constexpr uint8_t kDictVersion = 1;
}  // namespace

std::vector<uint8_t> Dictionary::serialize() const {
  std::vector<uint8_t> out = {'L', 'D', 'M', 'D', kDictVersion, static_cast<uint8_t>(precision_)};
  put_u32(out, static_cast<uint32_t>(models_.size()));
  for (const Model& m : models_) {
    put_u32(out, static_cast<uint32_t>(m.offset));
    put_u32(out, m.n);
    for (uint32_t f : m.freq) {
      out.push_back(static_cast<uint8_t>(f));
      out.push_back(static_cast<uint8_t>(f >> 8));
    }
  }
  put_u32(out, crc32(out.data(), out.size()));
  return out;
}

void Dictionary::drop_lookups() {
  for (Model& m : models_) {
    std::vector<uint16_t>().swap(m.lut);
    std::vector<uint32_t>().swap(m.fc);
  }
}

Dictionary Dictionary::deserialize(const uint8_t* data, size_t size, bool lookups) {
  if (size < 14 || std::memcmp(data, "LDMD", 4) != 0) fail("not a serialized ldem dictionary");
  if (data[4] != kDictVersion)
    fail("unsupported dictionary format version " + std::to_string(data[4]));
  if (crc32(data, size - 4) != get_u32(data + size - 4)) fail("dictionary checksum mismatch");
  const int precision = data[5];
  check_precision(precision);
  const uint32_t K = get_u32(data + 6);
  size_t pos = 10;
  const size_t end = size - 4;
  if (K > (end - pos) / 12) fail("dictionary header claims more models than the data holds");
  std::vector<Model> models;
  models.reserve(K);
  for (uint32_t k = 0; k < K; ++k) {
    if (end - pos < 8) fail("truncated dictionary");
    const int32_t offset = static_cast<int32_t>(get_u32(data + pos));
    const uint32_t n = get_u32(data + pos + 4);
    pos += 8;
    if (n == 0 || n >= (1u << precision) || (end - pos) / 2 < uint64_t{n} + 1)
      fail("truncated or invalid dictionary model");
    std::vector<uint32_t> freq(n + 1);
    for (uint32_t i = 0; i <= n; ++i, pos += 2) freq[i] = uint32_t(data[pos]) | uint32_t(data[pos + 1]) << 8;
    models.push_back(make_model(offset, freq, precision, lookups));
  }
  if (pos != end) fail("trailing bytes in dictionary");
  return Dictionary(precision, std::move(models));
}

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc) {
  static uint32_t table[256];
  static const bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int j = 0; j < 8; ++j) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ data[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

}  // namespace ldem
