// Context-coded streams: the model of each symbol is its block's *family* of tables,
// indexed by a causal context computed from symbols decoded before it.
//
// The stream layout is ldem/format.h's (header, segments, lanes, escapes); only the
// choice of model per symbol differs: symbol i of block b is coded with model
// families[b] * kNumContexts + context(i). A family is kNumContexts consecutive
// models of the model set (a context-free model is the same model repeated).
//
// The context of symbol (c, y, x), which lies in segment [a, b), uses only symbols of
// the same segment (anything before a counts as zero), so segments decode in parallel
// and the stream is the same at any thread count:
//   m(v)  = min(|v|, 64) for a neighbour v of the same channel, 0 outside the plane
//           or the segment;
//   s     = 2 m(W) + 2 m(N) + m(NW) + m(NE) + m(WW) + m(NN)   (W = (c, y, x - 1), ...)
//   k     = number of thresholds {1, 2, 3, 4, 6, 9, 14, 22, 32, 48} that s reaches (0..10);
//   n     = channels c' < c whose symbol (c', y, x) lies in [a, i) (the earlier channels
//           at this place within the segment), z = how many of those are non-zero;
//   q     = number of thresholds t in {1, 3, 6, 10, 16, 24, 36} with 64 z >= t n
//           (0 when n = 0);
//   context = 8 k + q   (kNumContexts = 88).
#pragma once

#include <cstdint>
#include <vector>

#include "ldem/coder.h"
#include "ldem/model_set.h"

namespace ldem {

constexpr int kNumContexts = 88;

// The context of every symbol of y (layout L) as a stream with `params` cuts it into
// segments: ctx[i] in [0, kNumContexts).
// REQUIRES: check_shape(L) passed.
// REQUIRES: y and ctx have L.num_symbols() entries.
// Throws ArgumentError unless check_params(params) passes.
void context_map(const int32_t* y, const Layout& L, const StreamParams& params, int threads,
                 uint8_t* ctx);

// Throws ArgumentError unless tables.size() is a positive multiple of kNumContexts,
// check_shape(L) passes and every family index is in [0, tables.size() / kNumContexts).
// REQUIRES: families has L.num_blocks() entries.
void check_context_layout(const Layout& L, const int32_t* families, const ModelSet& tables);

// Encodes y with per-block families. Output is independent of threads. `contexts`, if
// given, is context_map() of y for these params (saves computing it again).
// REQUIRES: check_context_layout(L, families, tables) passed.
// REQUIRES: symbols (and contexts, if given) have L.num_symbols() entries.
// REQUIRES: contexts, if given, equals context_map(symbols, L, params) (else the stream
//           decodes to other values).
// Throws ArgumentError unless check_params(params) passes, or if a family index or
// context read during the call left its range (the arrays were written by another thread).
EncodedStream encode_context_stream(const int32_t* symbols, const int32_t* families, const Layout& L,
                                    const ModelSet& tables, int threads, bool checksum,
                                    const StreamParams& params = {}, const uint8_t* contexts = nullptr);
std::vector<uint8_t> encode_context(const int32_t* symbols, const int32_t* families, const Layout& L,
                                    const ModelSet& tables, int threads, bool checksum,
                                    const StreamParams& params = {}, const uint8_t* contexts = nullptr);

// Decodes a stream of encode_context(). Throws DecodeFailure on any inconsistency; reads
// only [data, data + size) whatever the bytes (the same checks as decode()).
// REQUIRES: check_context_layout(L, families, tables) passed.
// REQUIRES: out has L.num_symbols() entries.
void decode_context(const uint8_t* data, size_t size, const int32_t* families, const Layout& L,
                    const ModelSet& tables, int threads, int32_t* out);

// Exact bits of each block of y (layout L, contexts ctx from context_map) under families:
// own_channel: costs[b] under family c(b), the block's channel (needs C families);
// else costs[b * F + f] under family first + f, F = count.
// REQUIRES: check_shape(L) passed; y and ctx have L.num_symbols() entries.
// REQUIRES: costs has L.num_blocks() (own_channel) or L.num_blocks() * count entries.
// Throws ArgumentError unless tables.size() is a multiple of kNumContexts holding the
// families asked for.
void context_block_costs(const int32_t* y, const uint8_t* ctx, const Layout& L, const ModelSet& tables,
                         bool own_channel, int64_t first, int64_t count, int threads, double* costs);

}  // namespace ldem
