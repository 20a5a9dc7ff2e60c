#include "ldem/side_info.h"

#include <algorithm>
#include <string>

#include "ldem/coder.h"

namespace ldem {
namespace {

// Image tables' values: gamma(table_bits), then per table zigzag(offset) + 1, n, q_i + 1.
void append_table_codes(const ImageTables& t, std::vector<uint64_t>& out) {
  if (t.size() == 0) return;
  out.push_back(static_cast<uint64_t>(t.table_bits));
  for (size_t j = 0; j < t.size(); ++j) {
    const int64_t o = t.offsets[j];
    out.push_back((o >= 0 ? 2 * static_cast<uint64_t>(o) : 2 * static_cast<uint64_t>(-o) - 1) + 1);
    out.push_back(static_cast<uint64_t>(t.ptr[j + 1] - t.ptr[j]));
    for (int64_t i = t.ptr[j]; i < t.ptr[j + 1]; ++i) out.push_back(t.q[i] + 1);
  }
}

Model map_table(const std::vector<uint64_t>& counts, int precision) {
  std::vector<uint64_t> w(counts);
  w.push_back(0);  // escape weight
  return make_model(0, quantize_counts(w, precision), precision);
}

}  // namespace

int64_t gamma_bits(uint64_t v) { return 2 * (64 - __builtin_clzll(v)) - 1; }

std::vector<uint8_t> gamma_pack(const uint64_t* values, size_t n) {
  std::vector<uint8_t> out;
  uint64_t acc = 0;  // pending bits, fewer than 8 between values
  int nacc = 0;
  auto put = [&](uint64_t v, int nbits) {  // nbits <= 32
    acc = (acc << nbits) | v;
    nacc += nbits;
    while (nacc >= 8) {
      nacc -= 8;
      out.push_back(static_cast<uint8_t>(acc >> nacc));
    }
    acc &= (uint64_t{1} << nacc) - 1;
  };
  for (size_t i = 0; i < n; ++i) {
    const uint64_t v = values[i];
    const int len = 64 - __builtin_clzll(v);  // v >= 1
    for (int z = len - 1; z > 0; z -= std::min(z, 32)) put(0, std::min(z, 32));
    if (len > 32) put(v >> 32, len - 32);
    put(v & (len >= 32 ? 0xFFFFFFFFull : ((uint64_t{1} << len) - 1)), std::min(len, 32));
  }
  if (nacc) out.push_back(static_cast<uint8_t>(acc << (8 - nacc)));
  return out;
}

bool gamma_unpack(const uint8_t* data, size_t size, uint64_t& pos, size_t n, int max_bits,
                  uint64_t* out) {
  const uint64_t total = 8 * static_cast<uint64_t>(size);
  auto bit = [&](uint64_t p) { return (data[p >> 3] >> (7 - (p & 7))) & 1; };
  for (size_t i = 0; i < n; ++i) {
    int zeros = 0;
    for (;;) {
      if (pos >= total) return false;
      if (bit(pos++)) break;
      if (++zeros > max_bits) return false;
    }
    if (pos + zeros > total) return false;
    uint64_t v = 1;
    for (int z = 0; z < zeros; ++z) v = (v << 1) | bit(pos++);
    out[i] = v;
  }
  return true;
}

ImageTables scale_cluster_counts(const int64_t* counts, int64_t K, int64_t V, int32_t lo,
                                  int table_bits) {
  ImageTables t;
  t.table_bits = table_bits;
  for (int64_t k = 0; k < K; ++k) {
    const int64_t* row = counts + k * V;
    int64_t a = 0, b = V - 1;
    while (a < V && row[a] == 0) ++a;
    if (a == V) continue;
    while (row[b] == 0) --b;
    unsigned __int128 total = 0;
    for (int64_t i = a; i <= b; ++i) total += static_cast<uint64_t>(row[i]);
    t.offsets.push_back(static_cast<int32_t>(lo + a));
    for (int64_t i = a; i <= b; ++i) {
      const unsigned __int128 num = 2 * (static_cast<unsigned __int128>(row[i]) << table_bits) + total;
      t.q.push_back(static_cast<uint64_t>(num / (2 * total)));
    }
    t.ptr.push_back(static_cast<int64_t>(t.q.size()));
  }
  return t;
}

std::vector<Model> image_models(const ImageTables& t, int precision) {
  std::vector<Model> models;
  models.reserve(t.size());
  for (size_t j = 0; j < t.size(); ++j) {
    std::vector<uint64_t> w(t.q.begin() + t.ptr[j], t.q.begin() + t.ptr[j + 1]);
    w.push_back(0);  // escape weight
    models.push_back(make_model(t.offsets[j], quantize_counts(w, precision), precision));
  }
  return models;
}

int64_t image_tables_bits(const ImageTables& t) {
  std::vector<uint64_t> codes;
  append_table_codes(t, codes);
  int64_t bits = 0;
  for (uint64_t v : codes) bits += gamma_bits(v);
  return bits;
}

std::vector<uint8_t> write_side_info(const ImageTables& tables, const std::vector<uint64_t>& map_counts) {
  std::vector<uint64_t> codes;
  append_table_codes(tables, codes);
  for (uint64_t c : map_counts) codes.push_back(c + 1);
  return gamma_pack(codes.data(), codes.size());
}

SideInfo read_side_info(const uint8_t* data, size_t size, int64_t num_tables, int64_t num_map_counts,
                        int precision) {
  const uint64_t total = 8 * static_cast<uint64_t>(size);
  uint64_t pos = 0;
  // Every gamma code takes at least one bit: a count of codes is checked against the
  // bits left before anything is allocated for it.
  auto read = [&](uint64_t n, uint64_t* out) {
    if (n > total - pos) throw DecodeFailure{"side information truncated"};
    if (!gamma_unpack(data, size, pos, n, kMaxGammaBits, out))
      throw DecodeFailure{"side information truncated or invalid"};
  };
  SideInfo s;
  if (num_tables < 0 || num_map_counts < 0) throw DecodeFailure{"invalid side information counts"};
  if (num_tables > 0) {
    uint64_t table_bits;
    read(1, &table_bits);
    if (table_bits < kMinTableBits || table_bits > kMaxTableBits)
      throw DecodeFailure{"invalid image table precision"};
    s.tables.table_bits = static_cast<int>(table_bits);
    for (int64_t k = 0; k < num_tables; ++k) {
      uint64_t head[2];
      read(2, head);
      const uint64_t zz = head[0] - 1, n = head[1];
      const int64_t offset = zz % 2 == 0 ? static_cast<int64_t>(zz / 2) : -static_cast<int64_t>((zz + 1) / 2);
      if (n > (uint64_t{1} << precision) - 1 || offset < INT32_MIN ||
          offset > static_cast<int64_t>(INT32_MAX) - static_cast<int64_t>(n))
        throw DecodeFailure{"invalid image model support"};
      const size_t at = s.tables.q.size();
      if (n > total - pos) throw DecodeFailure{"side information truncated"};
      s.tables.q.resize(at + n);
      read(n, s.tables.q.data() + at);
      for (size_t i = at; i < at + n; ++i) {
        if (s.tables.q[i] - 1 > (uint64_t{1} << table_bits)) throw DecodeFailure{"invalid image model counts"};
        s.tables.q[i] -= 1;
      }
      s.tables.offsets.push_back(static_cast<int32_t>(offset));
      s.tables.ptr.push_back(static_cast<int64_t>(s.tables.q.size()));
    }
    s.models = image_models(s.tables, precision);
  }
  if (static_cast<uint64_t>(num_map_counts) > total - pos) throw DecodeFailure{"side information truncated"};
  s.map_counts.resize(num_map_counts);
  read(num_map_counts, s.map_counts.data());
  for (uint64_t& c : s.map_counts) c -= 1;
  return s;
}

CodedBlockMap encode_block_map(const int32_t* categories, int64_t B, int64_t A, int precision) {
  CodedBlockMap out;
  out.counts.assign(A, 0);
  for (int64_t b = 0; b < B; ++b) ++out.counts[categories[b]];
  const Dictionary table(precision, {map_table(out.counts, precision)});
  const int32_t model = 0;
  const Layout layout{1, 1, B, 1, std::max<int64_t>(B, 1)};
  out.data = encode(categories, &model, layout, ModelSet(table), 1, false, StreamParams{0, 17});
  return out;
}

void decode_block_map(const uint8_t* data, size_t size, const std::vector<uint64_t>& counts, int64_t B,
                      int precision, int32_t* out) {
  unsigned __int128 sum = 0;
  for (uint64_t c : counts) sum += c;
  if (sum != static_cast<unsigned __int128>(B)) throw DecodeFailure{"block map counts do not match the block grid"};
  Model m;
  try {
    m = map_table(counts, precision);
  } catch (const ArgumentError& e) {  // more categories than a table at this precision holds
    throw DecodeFailure{"invalid block map counts: " + e.message};
  }
  const Dictionary table(precision, {std::move(m)});
  const int32_t model = 0;
  const Layout layout{1, 1, B, 1, std::max<int64_t>(B, 1)};
  check_stream_fits(data, size, B, precision);
  decode(data, size, &model, layout, ModelSet(table), 1, out);
  const int64_t A = static_cast<int64_t>(counts.size());
  for (int64_t b = 0; b < B; ++b)
    if (out[b] < 0 || out[b] >= A) throw DecodeFailure{"block map index out of range"};
}

}  // namespace ldem
