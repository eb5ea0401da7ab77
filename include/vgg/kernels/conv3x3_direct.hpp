#pragma once
#include <algorithm>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "vgg/kernels/simd.hpp"

namespace vgg::kernels {

namespace detail {

/// Copies a one-channel image into `padded`, (height + 2) x (width + 2), with a zero border.
inline void pad_single_channel(const float* image, std::size_t height, std::size_t width, float* padded)
{
    const std::size_t padded_width = width + 2;
    std::fill(padded, padded + padded_width, 0.f);
    std::fill(padded + (height + 1) * padded_width, padded + (height + 2) * padded_width, 0.f);
    for (std::size_t y = 0; y < height; ++y) {
        float* row = padded + (y + 1) * padded_width;
        row[0] = row[width + 1] = 0.f;
        std::copy(image + y * width, image + (y + 1) * width, row + 1);
    }
}

/// The weight gradient of output channels [first, first + Count) for a padded one-channel
/// image: their 9 x Count sums stay in registers over the whole image.
template <std::size_t Count>
void single_channel_weight_gradient(const float* padded, std::size_t height, std::size_t width, const float* gradient,
                                    std::size_t first, float* dweight)
{
    using batch = xsimd::batch<float>;
    constexpr std::size_t lanes = batch::size;
    const std::size_t padded_width = width + 2, pixels = height * width;
    batch sums[Count][9];
    float tail[Count][9] = {};
    for (std::size_t c = 0; c < Count; ++c)
        for (std::size_t k = 0; k < 9; ++k)
            sums[c][k] = batch(0.f);
    for (std::size_t y = 0; y < height; ++y) {
        const float* rows[3] = {padded + y * padded_width, padded + (y + 1) * padded_width, padded + (y + 2) * padded_width};
        std::size_t x = 0;
        for (; x + lanes <= width; x += lanes)
            for (std::size_t c = 0; c < Count; ++c) {
                const batch g = batch::load_unaligned(gradient + (first + c) * pixels + y * width + x);
                for (std::size_t k = 0; k < 9; ++k)
                    sums[c][k] = fused_multiply_add(g, batch::load_unaligned(rows[k / 3] + x + k % 3), sums[c][k]);
            }
        for (; x < width; ++x)
            for (std::size_t c = 0; c < Count; ++c)
                for (std::size_t k = 0; k < 9; ++k)
                    tail[c][k] += gradient[(first + c) * pixels + y * width + x] * rows[k / 3][x + k % 3];
    }
    for (std::size_t c = 0; c < Count; ++c)
        for (std::size_t k = 0; k < 9; ++k)
            dweight[(first + c) * 9 + k] += xsimd::hadd(sums[c][k]) + tail[c][k];
}

} // namespace detail

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
    detail::pad_single_channel(image, height, width, padded);
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
                    sum = fused_multiply_add(in[k], batch(w[k]), sum);
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

/// dweight[o][k] += the sum over pixels of gradient[o][pixel] times the input pixel under tap k:
/// the weight gradient of conv3x3_single_channel, computed directly (as im2col + GEMM its
/// result would be only 9 columns wide). `padded` is scratch as for conv3x3_single_channel.
inline void conv3x3_single_channel_weight_gradient(const float* image, std::size_t height, std::size_t width,
                                                   const float* gradient, std::size_t out_channels, float* padded,
                                                   float* dweight)
{
    // Output channels per pass: 2 x 9 sums + 2 gradients + the inputs fit AVX-512's 32 registers.
    constexpr std::size_t group = has_32_vector_registers ? 2 : 1;
    detail::pad_single_channel(image, height, width, padded);
    std::size_t o = 0;
    for (; o + group <= out_channels; o += group)
        detail::single_channel_weight_gradient<group>(padded, height, width, gradient, o, dweight);
    for (; o < out_channels; ++o)
        detail::single_channel_weight_gradient<1>(padded, height, width, gradient, o, dweight);
}

} // namespace vgg::kernels
