#pragma once
// The int8 convolution: conv3x3 (stride 1, padding 1) of u8 activations with s8 weights, bias,
// ReLU and optionally a 2x2 max-pool, requantised to the next layer's u8 activations.
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/int8/image_rows.hpp"
#include "vgg/kernels/int8/run_tiles.hpp"

namespace vgg::kernels::int8 {

/// Where an int8 convolution's results go, in `layout` (its border left as it is): u8 requantised
/// through ReLU, 2x2 max-pooled when `pool` is set; or fp32, dequantised (W x + b, no ReLU).
struct conv_int8_output {
    planes layout;
    std::uint8_t* u8 = nullptr;
    float* f32 = nullptr;
    bool pool = false;
};

namespace detail {

inline void check_conv(const planes& in, const packed_weights& w, const conv_int8_output& to)
{
    const planes& out = to.layout;
    const bool pool = to.pool;
    const auto fail = [](const std::string& what) { throw std::invalid_argument("conv3x3_int8_forward: " + what); };
    if (in.border != 1)
        fail("the input needs a border of 1 pixel (padding 1), it has " + std::to_string(in.border));
    if (w.taps == 9 && w.groups * group_size != in.channels)
        fail("weights packed for " + std::to_string(w.groups * group_size) + " input channels, the input has " +
             std::to_string(in.channels));
    if (w.taps == row_taps && w.groups != row_tap_groups(in.channels))
        fail("row-tap weights packed for " + std::to_string(w.groups) + " groups per row, an input of " +
             std::to_string(in.channels) + " channels needs " + std::to_string(row_tap_groups(in.channels)));
    if (w.taps != 9 && w.taps != row_taps)
        fail("weights packed with " + std::to_string(w.taps) + " taps; a 3x3 convolution has 9, or 3 row taps");
    if (out.channels != w.blocks * channel_block)
        fail("the output stores " + std::to_string(out.channels) + " channels, the weights make " +
             std::to_string(w.blocks * channel_block));
    if (pool && (in.height % 2 || in.width % 2))
        fail("a 2x2 max-pool needs an even height and width");
    if ((to.u8 == nullptr) == (to.f32 == nullptr) || (to.f32 && pool))
        fail("give exactly one of a u8 and an fp32 output, and pool only a u8 output");
    const std::size_t factor = pool ? 2 : 1;
    if (out.height * factor != in.height || out.width * factor != in.width)
        fail("the output is " + std::to_string(out.height) + "x" + std::to_string(out.width) + ", the input " +
             std::to_string(in.height) + "x" + std::to_string(in.width) + (pool ? " pooled" : ""));
}

/// Output row h of one image (x: its input) to `out` (its pixel 0).
template <class Tiles>
void conv_row(const planes& in, const std::uint8_t* x, std::size_t h, const packed_weights& w, const tile_output& out)
{
    std::array<std::ptrdiff_t, 9> taps;
    for (std::size_t t = 0; t < w.taps; ++t) {
        const std::size_t row = w.taps == row_taps ? t : t / 3, column = w.taps == row_taps ? 0 : t % 3;
        taps[t] = static_cast<std::ptrdiff_t>((row * in.padded_width() + column) * in.channels);
    }
    const tile_source s{x + h * in.padded_width() * in.channels,
                        in.channels,
                        taps.data(),
                        w.taps,
                        w.groups,
                        w.block(0),
                        w.block_size()};
    run_tiles<Tiles>(s, out, in.width, 0, w.blocks);
}

/// y (one pooled row, `channels` per pixel) = the 2x2 maxima of rows (2 x width pixels).
inline void maxpool_rows(const std::uint8_t* rows, std::size_t width, std::size_t channels, std::uint8_t* y)
{
    const std::uint8_t* below = rows + width * channels;
    for (std::size_t w = 0; w < width / 2; ++w)
        for (std::size_t c = 0; c < channels; ++c) {
            const std::size_t left = 2 * w * channels + c, right = left + channels;
            y[w * channels + c] = std::max({rows[left], rows[right], below[left], below[right]});
        }
}

} // namespace detail

/// conv3x3(x) + bias of `batch` images in layout `in` (border 1) with weights `w`: 9 taps, or
/// row taps for an image (image_rows.hpp; x then has image_slack bytes more), through
/// requantisation `r` to `to`. A pooled output is the pool of the requantised values:
/// requantisation keeps order, so it is also the requantised pool.
inline void conv3x3_int8_forward(int8_kernel kernel, std::size_t batch, const planes& in, const std::uint8_t* x,
                                 const packed_weights& w, const requantisation& r, const conv_int8_output& to)
{
    detail::check_conv(in, w, to);
    const planes& out = to.layout;
    const std::size_t rows_per_item = to.pool ? 2 : 1;
    const std::size_t operations = 2 * w.taps * w.groups * group_size * out.channels * in.width * rows_per_item;
    const tile_output row_output{r.multiplier.data(), r.offset.data(), nullptr, nullptr, out.channels, out.channels};
    with_tiles(kernel, [&]<class Tiles>(Tiles) {
        vgg::detail::parallel_ranges(batch * out.height, operations,
                                     [&](std::size_t, std::size_t, vgg::detail::range items) {
                                         aligned_vector<std::uint8_t> rows(to.pool ? 2 * in.width * out.channels : 0);
                                         for (std::size_t item = items.begin; item < items.end; ++item) {
                                             const std::size_t n = item / out.height, h = item % out.height;
                                             const std::uint8_t* image = x + n * in.image_size();
                                             const std::size_t at = n * out.image_size() + out.at(h, 0);
                                             tile_output o = row_output;
                                             if (to.f32) {
                                                 o.f32 = to.f32 + at;
                                                 detail::conv_row<Tiles>(in, image, h, w, o);
                                                 continue;
                                             }
                                             if (!to.pool) {
                                                 o.u8 = to.u8 + at;
                                                 detail::conv_row<Tiles>(in, image, h, w, o);
                                                 continue;
                                             }
                                             for (std::size_t k = 0; k < 2; ++k) {
                                                 o.u8 = rows.data() + k * in.width * out.channels;
                                                 detail::conv_row<Tiles>(in, image, 2 * h + k, w, o);
                                             }
                                             detail::maxpool_rows(rows.data(), in.width, out.channels, to.u8 + at);
                                         }
                                     });
    });
}

} // namespace vgg::kernels::int8
