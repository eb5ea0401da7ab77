#pragma once
// The int8 fully connected layer: u8 inputs times s8 weights summed in int32, requantised to u8
// through ReLU for a hidden layer, or to fp32 for the last.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/int8/run_tiles.hpp"

namespace vgg::kernels::int8 {

/// Batches up to this size multiply by linear_int8_small_batch: the weights are read once, group
/// by group, skipping the groups of inputs that are zero in every image (ReLU makes many).
inline constexpr std::size_t small_batch = 8;

/// The weights of a Linear (packed_weights, one tap) reordered for small batches: [groups][blocks]
/// of [16][4], the weights of one group of 4 inputs for every output in one contiguous run.
inline packed_weights by_group(const packed_weights& w)
{
    packed_weights grouped = w;
    constexpr std::size_t line = channel_block * group_size;
    for (std::size_t b = 0; b < w.blocks; ++b)
        for (std::size_t g = 0; g < w.groups; ++g)
            std::copy_n(w.block(b) + g * line, line, grouped.values.data() + (g * w.blocks + b) * line);
    return grouped;
}

/// linear_int8_forward for up to small_batch inputs from the weights by_group reorders: the same
/// results, and a group of inputs zero in every image skips its weights.
inline void linear_int8_small_batch(int8_kernel kernel, std::size_t batch, const std::uint8_t* x, std::size_t in_stride,
                                    const packed_weights& grouped, const requantisation& r, std::size_t out,
                                    std::uint8_t* y_u8, float* y_f32)
{
    if (batch > small_batch || grouped.taps != 1 || grouped.blocks * channel_block != padded_channels(out) ||
        in_stride < grouped.groups * group_size || (y_u8 == nullptr) == (y_f32 == nullptr))
        throw std::invalid_argument("linear_int8_small_batch: a batch of " + std::to_string(batch) + " (at most " +
                                    std::to_string(small_batch) + "), weights for " +
                                    std::to_string(grouped.blocks * channel_block) + " outputs and " +
                                    std::to_string(grouped.groups * group_size) + " inputs, " + std::to_string(out) +
                                    " outputs wanted from inputs " + std::to_string(in_stride) +
                                    " apart, with exactly one of a u8 and an fp32 output");
    constexpr std::size_t line = channel_block * group_size;
    const std::size_t stride = y_u8 ? padded_channels(out) : out;
    with_tiles(kernel, [&]<class Tiles>(Tiles) {
        vgg::detail::parallel_ranges(
            grouped.blocks, 2 * batch * grouped.groups * line,
            [&](std::size_t, std::size_t, vgg::detail::range blocks) {
                if (blocks.size() == 0)
                    return;
                const std::size_t width = blocks.size() * channel_block;
                aligned_vector<std::int32_t> sums(batch * width, 0);
                std::int32_t x4[small_batch];
                for (std::size_t g = 0; g < grouped.groups; ++g) {
                    bool any = false;
                    for (std::size_t n = 0; n < batch; ++n) {
                        x4[n] = load_group(x + n * in_stride + g * group_size);
                        any = any || x4[n] != 0;
                    }
                    if (!any)
                        continue;
                    const std::int8_t* w = grouped.values.data() + (g * grouped.blocks + blocks.begin) * line;
                    for (std::size_t n = 0; n < batch; ++n)
                        if (x4[n] != 0)
                            Tiles::accumulate_group(sums.data() + n * width, x4[n], w, blocks.size());
                }
                const std::size_t first = blocks.begin * channel_block;
                const std::size_t count = y_u8 ? width : std::min(width, out - first);
                for (std::size_t n = 0; n < batch; ++n) {
                    const tile_output to{r.multiplier.data() + first,
                                         r.offset.data() + first,
                                         y_u8 ? y_u8 + n * stride + first : nullptr,
                                         y_f32 ? y_f32 + n * stride + first : nullptr,
                                         1,
                                         count};
                    finish_sums(sums.data() + n * width, to);
                }
            });
    });
}

/// For each of `batch` inputs (u8, `in_stride` apart, packed_weights' groups x 4 of them read):
/// y_u8 = requantise(relu(W x + b)) with padded_channels(out) values per input, or, where y_f32
/// is given instead, y_f32 = W x + b (dequantised) with `out` values per input.
inline void linear_int8_forward(int8_kernel kernel, std::size_t batch, const std::uint8_t* x, std::size_t in_stride,
                                const packed_weights& w, const requantisation& r, std::size_t out, std::uint8_t* y_u8,
                                float* y_f32)
{
    if (w.taps != 1 || w.blocks * channel_block != padded_channels(out) || in_stride < w.groups * group_size ||
        (y_u8 == nullptr) == (y_f32 == nullptr))
        throw std::invalid_argument("linear_int8_forward: weights packed for " +
                                    std::to_string(w.blocks * channel_block) + " outputs and " +
                                    std::to_string(w.groups * group_size) + " inputs, called for " +
                                    std::to_string(out) + " outputs from inputs " + std::to_string(in_stride) +
                                    " apart, with exactly one of a u8 and an fp32 output");
    const std::ptrdiff_t tap = 0;
    const std::size_t stride = y_u8 ? padded_channels(out) : out;
    const tile_source s{x, in_stride, &tap, 1, w.groups, w.block(0), w.block_size()};
    const tile_output to{r.multiplier.data(), r.offset.data(), y_u8, y_f32, stride, y_u8 ? stride : out};
    // Threads split the weights, each streaming its own blocks once for the whole batch.
    with_tiles(kernel, [&]<class Tiles>(Tiles) {
        vgg::detail::parallel_ranges(w.blocks, 2 * batch * w.block_size(),
                                     [&](std::size_t, std::size_t, vgg::detail::range blocks) {
                                         run_tiles<Tiles>(s, to, batch, blocks.begin, blocks.end, to.channels);
                                     });
    });
}

} // namespace vgg::kernels::int8
