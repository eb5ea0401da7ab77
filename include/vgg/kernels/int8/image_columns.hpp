#pragma once
// The first convolution's input: an fp32 image quantised to u8 and gathered into its 3x3
// neighbourhoods (im2col), so that the int8 convolution reads each pixel's 9 x channels values as
// one tap: one or three channels would otherwise fill a quarter or less of the groups of 4 the
// tiles sum.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vgg/kernels/int8/layout.hpp"

namespace vgg::kernels::int8 {

namespace detail {

/// Writes runs of 3 bytes one after another, gathered into 64-bit words: the columns' bytes
/// stored one at a time cost a store each.
class column_writer {
public:
    static_assert(std::endian::native == std::endian::little, "the columns are assembled as little-endian words");

    explicit column_writer(std::uint8_t* to) : to_(to) {}

    void put(const std::uint8_t* three)
    {
        const std::uint64_t run = three[0] | std::uint64_t(three[1]) << 8 | std::uint64_t(three[2]) << 16;
        word_ |= run << bits_;
        bits_ += 24;
        if (bits_ >= 64) {
            store();
            bits_ -= 64;
            word_ = run >> (24 - bits_);
        }
    }

    /// Stores the last word, its unused bytes zero.
    void finish()
    {
        if (bits_ > 0)
            store();
    }

private:
    void store()
    {
        std::memcpy(to_, &word_, sizeof word_);
        to_ += sizeof word_;
    }

    std::uint8_t* to_;
    std::uint64_t word_ = 0;
    unsigned bits_ = 0;
};

} // namespace detail

/// The columns of an image of channels x height x width: per pixel, channel c's 3x3
/// neighbourhood (padding 1) at c * 9 + tap (tap = 3 * row + column, Conv2d's weight order), then
/// zeros to whole blocks.
inline planes column_planes(std::size_t channels, std::size_t height, std::size_t width)
{
    return {height, width, padded_channels(9 * channels), 0};
}

/// x (one image, [channels][height][width]) quantised as q says and gathered into columns `to`
/// (column_planes); the padding pixels hold q.zero_point, the code of 0. False when a value is
/// NaN (it becomes code 0).
inline bool quantise_image_columns(const float* x, std::size_t channels, const input_quantisation& q, const planes& to,
                                   std::uint8_t* y)
{
    const std::size_t height = to.height, width = to.width, padded_width = width + 2;
    // The image quantised, each channel with a border of one pixel of zero_point.
    std::vector<std::uint8_t> image(channels * (height + 2) * padded_width, std::uint8_t(q.zero_point));
    const float inverse = 1.f / q.scale, zero = float(q.zero_point);
    bool nan = false;
    for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t h = 0; h < height; ++h) {
            const float* row = x + (c * height + h) * width;
            std::uint8_t* into = image.data() + (c * (height + 2) + h + 1) * padded_width + 1;
            for (std::size_t w = 0; w < width; ++w) {
                nan |= row[w] != row[w];
                into[w] = requantize(row[w] * inverse + zero);
            }
        }
    const std::size_t used = 9 * channels;
    for (std::size_t h = 0; h < height; ++h)
        for (std::size_t w = 0; w < width; ++w) {
            std::uint8_t* column = y + (h * width + w) * to.channels;
            // The zeros from the last word the writer touches: it writes whole words.
            std::fill(column + used / 8 * 8, column + to.channels, std::uint8_t(0));
            detail::column_writer writer(column);
            for (std::size_t c = 0; c < channels; ++c)
                for (std::size_t r = 0; r < 3; ++r)
                    writer.put(image.data() + (c * (height + 2) + h + r) * padded_width + w);
            writer.finish();
        }
    return !nan;
}

} // namespace vgg::kernels::int8
