// Integer probability tables for rANS coding.
//
// A model covers the contiguous support [offset, offset + n) plus one escape
// slot (index n) that codes every other int32 exactly. Each of the n + 1 slots
// has frequency >= 1 and the frequencies sum to exactly 2^precision.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ldem/format.h"

namespace ldem {

constexpr int kMinPrecision = 12;
constexpr int kMaxPrecision = 16;
constexpr int kLutBits = 11;  // decoder lookup resolution: 4 KiB per model keeps more models cached

// Raised for bad arguments (invalid tables, shapes, indices).
struct ArgumentError {
  std::string message;
};

// Per-symbol encoder constants (exact Alverson reciprocal; see rans.h).
struct EncSymbol {
  uint64_t x_max;  // renormalise (emit one word) while state >= x_max
  uint64_t rcp;    // ceil(2^(63 + s) / freq), s = ceil(log2(freq)); ~0 when freq == 1
  uint64_t cmpl;   // 2^P - freq (64-bit so the hot loop multiplies straight from memory)
  uint32_t bias;   // start, or start + 2^P - 1 when freq == 1
  uint32_t shift;  // s - 1, or 0 when freq == 1
};

// One model's integer tables. Immutable after construction.
struct Model {
  int32_t offset = 0;
  uint32_t n = 0;                // support size; the escape slot is index n
  std::vector<uint32_t> freq;    // n + 1 frequencies, escape last
  std::vector<uint32_t> cdf;     // n + 2 entries, cdf[0] = 0, cdf[n + 1] = 2^P
  std::vector<EncSymbol> enc;    // n + 1 entries
  std::vector<uint32_t> fc;      // n + 1 entries: freq | start << 16 (the vector encoder's table)
  std::vector<uint16_t> lut;     // 2^min(P, kLutBits) entries: first slot index of each bucket
  std::vector<double> cost;      // n + 1 entries: P - log2(freq) bits
};

// Exact cost in bits of value v under model m: cost[v - offset] inside the support,
// else the escape slot's cost plus escape_payload_bits() (ldem/format.h).
double symbol_cost(const Model& m, int32_t v);

// Builds a model from exact frequencies; without `lookup` the decoder lookup table is
// left empty (the model then codes context streams only, see Dictionary::drop_lookups).
// REQUIRES: kMinPrecision <= precision <= kMaxPrecision
// REQUIRES: freq.size() == n + 1 >= 2.
// REQUIRES: every freq >= 1 and the sum is 2^precision.
// REQUIRES: offset + n - 1 <= INT32_MAX
// Throws ArgumentError otherwise.
Model make_model(int32_t offset, const std::vector<uint32_t>& freq, int precision, bool lookup = true);

// Quantizes non-negative weights (n support symbols followed by the escape
// weight) to frequencies that sum to 2^precision, each >= 1:
//   f_i = 1 + floor(w_i * A / W), A = 2^P - (n + 1), W = sum(w),
// then the remaining units go one each to the largest remainders
// (w_i * A mod W), ties to the lower index. Weights that already form a valid
// table (all >= 1, sum == 2^P) are kept as they are. All-zero weights give a
// uniform table.
// REQUIRES: 2 <= weights.size() <= 2^precision.
std::vector<uint32_t> quantize_counts(const std::vector<uint64_t>& weights, int precision);

// The float version of the same rule, for probability masses:
//   t_i = w_i / W * A (IEEE double, no fused operations), f_i = 1 + floor(t_i),
// remainders t_i - floor(t_i), same tie rule. Deterministic on IEEE-754 hosts.
// REQUIRES: every weight finite and >= 0.
// REQUIRES: weights.size() >= 2.
std::vector<uint32_t> quantize_pmf(const std::vector<double>& weights, int precision);

// An ordered set of models sharing one precision.
class Dictionary {
 public:
  Dictionary(int precision, std::vector<Model> models);
  int precision() const { return precision_; }
  size_t size() const { return models_.size(); }
  const Model& model(size_t k) const { return models_[k]; }
  const std::vector<Model>& models() const { return models_; }
  // Frees every model's decoder lookup table (4 KiB each at precision >= 11) and the
  // vector encoder's packed table. The dictionary then codes context streams
  // (ldem/context.h) only; the block coder refuses it with ArgumentError.
  void drop_lookups();

  // Versioned little-endian serialisation: "LDMD", u8 version, u8 precision,
  // u32 K, per model {i32 offset, u32 n, u16 freq[n + 1]}, u32 crc32 of all before.
  std::vector<uint8_t> serialize() const;
  // Throws ArgumentError on any malformed input; never allocates more than the
  // input length justifies. Without `lookups`, as if drop_lookups() followed.
  static Dictionary deserialize(const uint8_t* data, size_t size, bool lookups = true);

 private:
  int precision_;
  std::vector<Model> models_;
};

uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

}  // namespace ldem
