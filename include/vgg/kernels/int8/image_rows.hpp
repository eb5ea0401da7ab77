#pragma once
// The first convolution's input: an fp32 image quantised to u8, channels-last with its channels
// not padded, read one 3x3 row at a time. One or three channels would fill a quarter or less of
// the groups of 4 the tiles sum if each of the 9 taps read a pixel's channels; a row tap reads its
// 3 pixels' 3 x channels consecutive values instead, in whole groups.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "vgg/kernels/int8/layout.hpp"

namespace vgg::kernels::int8 {

/// Taps of a convolution that reads rows: one per row of the 3x3 window.
inline constexpr std::size_t row_taps = 3;

/// Groups of 4 values a row tap reads: 3 x channels rounded up. The values past the window
/// (a pixel's neighbour, or the next row's first) meet zero weights.
constexpr std::size_t row_tap_groups(std::size_t channels) { return (3 * channels + group_size - 1) / group_size; }

/// Bytes a row-tap convolution reads past the last image: give its input that many more.
inline constexpr std::size_t image_slack = group_size;

/// An image of channels x height x width as a row-tap convolution reads it: channels-last, a
/// border of one pixel (padding 1), the channels not padded.
inline planes image_planes(std::size_t channels, std::size_t height, std::size_t width)
{
    return {height, width, channels, 1};
}

namespace detail {

/// Weights q ([out][channels][3][3], Conv2d's order) as row taps: [out][3 x channels][3], input
/// value s of row r being column s / channels, channel s % channels.
inline quantised_weights row_tap_weights(const quantised_weights& q, std::size_t out, std::size_t channels)
{
    quantised_weights rows{std::vector<std::int8_t>(q.values.size()), q.scales};
    for (std::size_t o = 0; o < out; ++o)
        for (std::size_t s = 0; s < 3 * channels; ++s)
            for (std::size_t r = 0; r < row_taps; ++r) {
                const std::size_t column = s / channels, c = s % channels;
                rows.values[(o * 3 * channels + s) * row_taps + r] =
                    q.values[((o * channels + c) * 3 + r) * 3 + column];
            }
    return rows;
}

} // namespace detail

/// Weights q ([out][channels][3][3], Conv2d's order) packed for a row-tap convolution of an
/// image with `channels` channels.
inline packed_weights pack_row_tap_weights(const quantised_weights& q, std::size_t out, std::size_t channels)
{
    return pack_weights(detail::row_tap_weights(q, out, channels), out, 3 * channels, row_taps, 3 * channels,
                        [](std::size_t s) { return s; });
}

/// x (one image, [channels][height][width]) quantised as q says into y (image_planes), its border
/// zero_point, the code of 0. False when a value is NaN (it becomes code 0).
inline bool quantise_image(const float* x, const input_quantisation& q, const planes& to, std::uint8_t* y)
{
    const std::size_t height = to.height, width = to.width, channels = to.channels;
    const std::size_t row_size = to.padded_width() * channels;
    const auto zero_point = static_cast<std::uint8_t>(q.zero_point);
    std::fill(y, y + row_size, zero_point);
    std::fill(y + (height + 1) * row_size, y + (height + 2) * row_size, zero_point);
    const float inverse = 1.f / q.scale, zero = float(q.zero_point);
    bool nan = false;
    for (std::size_t h = 0; h < height; ++h) {
        std::uint8_t* row = y + (h + 1) * row_size;
        std::fill(row, row + channels, zero_point);
        std::fill(row + (width + 1) * channels, row + row_size, zero_point);
        for (std::size_t c = 0; c < channels; ++c) {
            const float* from = x + (c * height + h) * width;
            std::uint8_t* into = row + channels + c;
            for (std::size_t w = 0; w < width; ++w) {
                nan |= from[w] != from[w];
                into[w * channels] = requantize(from[w] * inverse + zero);
            }
        }
    }
    return !nan;
}

} // namespace vgg::kernels::int8
