#pragma once
#include <algorithm>
#include <cstddef>

#include <xsimd/xsimd.hpp>

namespace vgg::kernels {

/// 3x3, stride-1, pad-1 convolution of a one-channel image, computed directly: with one input
/// channel, im2col + GEMM has a depth of only 9 and wastes most of the GEMM's time on packing.
/// For each strip of pixels the nine shifted input vectors are loaded once and reused by every
/// output channel. `padded` holds (height + 2) * (width + 2) floats of scratch.
inline void conv3x3_single_channel(const float* image, std::size_t height, std::size_t width, const float* weight,
                                   const float* bias, std::size_t out_channels, float* padded, float* out)
{
    using batch = xsimd::batch<float>;
    constexpr std::size_t lanes = batch::size;
    const std::size_t padded_width = width + 2, pixels = height * width;
    std::fill(padded, padded + padded_width, 0.f);
    std::fill(padded + (height + 1) * padded_width, padded + (height + 2) * padded_width, 0.f);
    for (std::size_t y = 0; y < height; ++y) {
        float* row = padded + (y + 1) * padded_width;
        row[0] = row[width + 1] = 0.f;
        std::copy(image + y * width, image + (y + 1) * width, row + 1);
    }
    for (std::size_t y = 0; y < height; ++y) {
        const float* rows[3] = {padded + y * padded_width, padded + (y + 1) * padded_width, padded + (y + 2) * padded_width};
        std::size_t x = 0;
        for (; x + lanes <= width; x += lanes) {
            batch in[9];
            for (std::size_t k = 0; k < 9; ++k)
                in[k] = batch::load_unaligned(rows[k / 3] + x + k % 3);
            for (std::size_t o = 0; o < out_channels; ++o) {
                const float* w = weight + o * 9;
                batch sum(bias[o]);
                for (std::size_t k = 0; k < 9; ++k)
                    sum = xsimd::fma(in[k], batch(w[k]), sum);
                sum.store_unaligned(out + o * pixels + y * width + x);
            }
        }
        for (; x < width; ++x)
            for (std::size_t o = 0; o < out_channels; ++o) {
                const float* w = weight + o * 9;
                float sum = bias[o];
                for (std::size_t k = 0; k < 9; ++k)
                    sum += rows[k / 3][x + k % 3] * w[k];
                out[o * pixels + y * width + x] = sum;
            }
    }
}

} // namespace vgg::kernels
