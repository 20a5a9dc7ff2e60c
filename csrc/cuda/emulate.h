// Host emulation of the CUDA kernels' per-warp algorithms (warp.h with a warp of 32
// simulated lanes). Lets the CPU check the GPU's word placement, escapes, header, CRC
// combination and cost order against the CPU coder without a GPU; built in every build.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "cuda/kernels.h"

namespace ldem::cuda::emulate {

// The stream of one item as the encode kernels write it (the CPU's bytes).
// Throws ArgumentError for invalid parameters, shapes or model indices.
// REQUIRES: symbols has layout.num_symbols() entries.
// REQUIRES: models has layout.num_blocks() entries.
std::vector<uint8_t> encode(const int32_t* symbols, const int32_t* models, const Layout& layout,
                            const ModelSet& dict, const StreamParams& params, bool checksum);
// Decodes one stream as the decode kernels do; throws DecodeFailure / ArgumentError
// like the GPU status would.
// REQUIRES: models has layout.num_blocks() entries.
// REQUIRES: out has layout.num_symbols() entries.
void decode(const uint8_t* data, size_t size, const int32_t* models, const Layout& layout,
            const ModelSet& dict, int32_t* out);
// Same results as block_costs_batch for one item (costs [B, K], choice [B]; either may
// be null; bias null or K entries).
// REQUIRES: symbols has layout.num_symbols() entries.
void block_costs(const int32_t* symbols, const Layout& layout, const ModelSet& dict,
                 const double* bias, double* costs, int32_t* choice);
// estimate_coded_bits of one item (1/256 bit).
// REQUIRES: symbols has layout.num_symbols() entries.
// REQUIRES: models has layout.num_blocks() entries.
uint64_t coded_bits(const int32_t* symbols, const int32_t* models, const Layout& layout,
                    const ModelSet& dict);
// CRC-32 of data computed as the GPU does: per chunk, then combined.
// Throws ArgumentError if chunk is 0.
uint32_t chunked_crc32(const uint8_t* data, size_t size, size_t chunk);

}  // namespace ldem::cuda::emulate
