#pragma once
// The int8 fully connected layer: u8 inputs times s8 weights summed in int32, requantised to u8
// through ReLU for a hidden layer, or to fp32 for the last.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/int8/run_tiles.hpp"

namespace vgg::kernels::int8 {

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
                                         run_tiles<Tiles>(s, to, batch, blocks.begin, blocks.end);
                                     });
    });
}

} // namespace vgg::kernels::int8
