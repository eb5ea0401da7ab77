#pragma once
#include <algorithm>
#include <cstddef>

#include "vgg/detail/xsimd.hpp"

#include "vgg/kernels/maxpool.hpp"
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
    VGG_UNROLL
    for (std::size_t c = 0; c < Count; ++c)
        VGG_UNROLL
    for (std::size_t k = 0; k < 9; ++k)
        sums[c][k] = batch(0.f);
    for (std::size_t y = 0; y < height; ++y) {
        const float* rows[3] = {padded + y * padded_width, padded + (y + 1) * padded_width,
                                padded + (y + 2) * padded_width};
        std::size_t x = 0;
        for (; x + lanes <= width; x += lanes)
            VGG_UNROLL
        for (std::size_t c = 0; c < Count; ++c) {
            const batch g = batch::load_unaligned(gradient + (first + c) * pixels + y * width + x);
            VGG_UNROLL
            for (std::size_t k = 0; k < 9; ++k)
                sums[c][k] = fused_multiply_add(g, batch::load_unaligned(rows[k / 3] + x + k % 3), sums[c][k]);
        }
        for (; x < width; ++x)
            VGG_UNROLL
        for (std::size_t c = 0; c < Count; ++c)
            VGG_UNROLL
        for (std::size_t k = 0; k < 9; ++k)
            tail[c][k] += gradient[(first + c) * pixels + y * width + x] * rows[k / 3][x + k % 3];
    }
    VGG_UNROLL
    for (std::size_t c = 0; c < Count; ++c)
        VGG_UNROLL
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
        const float* rows[3] = {padded + y * padded_width, padded + (y + 1) * padded_width,
                                padded + (y + 2) * padded_width};
        std::size_t x = 0;
        for (; x + lanes <= width; x += lanes) {
            batch in[9];
            VGG_UNROLL
            for (std::size_t k = 0; k < 9; ++k)
                in[k] = batch::load_unaligned(rows[k / 3] + x + k % 3);
            for (std::size_t o = 0; o < out_channels; ++o) {
                const float* w = weight + o * 9;
                batch sum(bias[o]);
                VGG_UNROLL
                for (std::size_t k = 0; k < 9; ++k)
                    sum = fused_multiply_add(in[k], batch(w[k]), sum);
                sum.store_unaligned(out + o * pixels + y * width + x);
            }
        }
        for (; x < width; ++x)
            for (std::size_t o = 0; o < out_channels; ++o) {
                const float* w = weight + o * 9;
                float sum = bias[o];
                VGG_UNROLL
                for (std::size_t k = 0; k < 9; ++k)
                    sum = fused_multiply_add(rows[k / 3][x + k % 3], w[k], sum);
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

namespace detail {

/// Floats of split_padded_columns' output for an image of height x width (width even): even and
/// odd columns of the padded image, plus room for the batch reads past the last row.
inline std::size_t split_columns_size(std::size_t height, std::size_t width)
{
    return (height + 2) * (width + 2) + 2 * float_batch::size;
}

/// The one-channel image padded with a zero border, (height + 2) x (width + 2) with width even,
/// split into its even columns (rows of half = width / 2 + 1 floats from `split` on) and its odd
/// columns (from split + (height + 2) * half): the inputs of a batch of pooling windows are then
/// contiguous runs of either.
inline void split_padded_columns(const float* image, std::size_t height, std::size_t width, float* split)
{
    const std::size_t half = width / 2 + 1;
    float* even = split;
    float* odd = split + (height + 2) * half;
    std::fill(even, even + half, 0.f);
    std::fill(odd, odd + half, 0.f);
    std::fill(even + (height + 1) * half, even + (height + 2) * half, 0.f);
    std::fill(odd + (height + 1) * half, odd + (height + 2) * half + 2 * float_batch::size, 0.f);
    for (std::size_t y = 0; y < height; ++y) {
        const float* source = image + y * width;
        float* even_row = even + (y + 1) * half;
        float* odd_row = odd + (y + 1) * half;
        even_row[0] = 0.f; // padded column 0; padded column 2m is image column 2m - 1
        for (std::size_t m = 1; m < half; ++m)
            even_row[m] = source[2 * m - 1];
        for (std::size_t m = 0; m + 1 < half; ++m) // padded column 2m + 1 is image column 2m
            odd_row[m] = source[2 * m];
        odd_row[half - 1] = 0.f;
    }
}

/// The padded inputs of a batch of pooling windows [j, j + lanes) of pooled row i:
/// at[t][s] = padded pixel (2i + t, 2j + s), so the window's output (a, b) reads at[a + ky][b + kx].
struct pooling_window_inputs {
    float_batch at[4][4];
    pooling_window_inputs(const float* split, std::size_t height, std::size_t width, std::size_t i, std::size_t j)
    {
        const std::size_t half = width / 2 + 1;
        VGG_UNROLL
        for (std::size_t t = 0; t < 4; ++t) {
            const float* even = split + (2 * i + t) * half + j;
            const float* odd = split + (height + 2 + 2 * i + t) * half + j;
            VGG_UNROLL
            for (std::size_t s = 0; s < 4; ++s)
                at[t][s] = float_batch::load_unaligned((s % 2 == 0 ? even : odd) + s / 2);
        }
    }
};

} // namespace detail

VGG_UNDEFINED_VECTOR_WARNINGS_OFF
/// maxpool2x2(relu(conv3x3(image))) for a one-channel image, computed directly and pooled in
/// registers (the full-resolution output is never stored): per batch of pooling windows, the 16
/// inputs are loaded once and each output channel's four sums come from 36 multiply-adds. The
/// same sums in the same order as conv3x3_single_channel, so the same values and arg-max as
/// that, maxpool2x2_planes and ReLU. `split` holds detail::split_columns_size floats of scratch.
inline void conv3x3_single_channel_relu_pool(const float* image, std::size_t height, std::size_t width,
                                             const float* weight, const float* bias, std::size_t out_channels,
                                             float* split, float* pooled, std::uint8_t* argmax)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t pooled_height = height / 2, pooled_width = width / 2, plane = pooled_height * pooled_width;
    const float_batch zero(0.f);
    detail::split_padded_columns(image, height, width, split);
    for (std::size_t i = 0; i < pooled_height; ++i)
        for (std::size_t j = 0; j < pooled_width; j += lanes) {
            const detail::pooling_window_inputs in(split, height, width, i, j);
            const std::size_t count = pooled_width - j, at = i * pooled_width + j;
            for (std::size_t o = 0; o < out_channels; ++o) {
                const float* w = weight + o * 9;
                float_batch sum[2][2];
                VGG_UNROLL
                for (std::size_t a = 0; a < 2; ++a)
                    VGG_UNROLL
                for (std::size_t b = 0; b < 2; ++b) {
                    sum[a][b] = float_batch(bias[o]);
                    VGG_UNROLL
                    for (std::size_t k = 0; k < 9; ++k)
                        sum[a][b] = fused_multiply_add(in.at[a + k / 3][b + k % 3], float_batch(w[k]), sum[a][b]);
                }
                float_batch winner;
                const float_batch best = max_of_windows(sum[0][0], sum[0][1], sum[1][0], sum[1][1], winner);
                store_first(xsimd::select(best < zero, zero, best), pooled + o * plane + at, count);
                detail::store_winners(winner, argmax + o * plane + at, count);
            }
        }
}

/// The weight and bias gradients of conv3x3_single_channel_relu_pool, added to dweight[o][9] and
/// dbias[o], from the pooled output's gradient: each window's gradient (zero where ReLU cut the
/// pooled value) goes only to its arg-max, so the sums run over pooling windows, the winner
/// choosing the inputs, without a full-resolution gradient. `split` as for the forward pass.
inline void conv3x3_single_channel_relu_pool_weight_gradient(const float* image, std::size_t height, std::size_t width,
                                                             const float* dpooled, const float* pooled,
                                                             const std::uint8_t* argmax, std::size_t out_channels,
                                                             float* split, float* dweight, float* dbias)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t pooled_height = height / 2, pooled_width = width / 2, plane = pooled_height * pooled_width;
    const float_batch zero(0.f);
    detail::split_padded_columns(image, height, width, split);
    for (std::size_t o = 0; o < out_channels; ++o) {
        float_batch sums[9], bias_sum = zero;
        for (auto& s : sums)
            s = zero;
        for (std::size_t i = 0; i < pooled_height; ++i)
            for (std::size_t j = 0; j < pooled_width; j += lanes) {
                const detail::pooling_window_inputs in(split, height, width, i, j);
                const std::size_t count = pooled_width - j, at = o * plane + i * pooled_width + j;
                const float_batch gradient =
                    xsimd::select(load_first(pooled + at, count) > zero, load_first(dpooled + at, count), zero);
                const float_batch winner = detail::load_winners(argmax + at, count);
                bias_sum += gradient;
                VGG_UNROLL
                for (std::size_t a = 0; a < 2; ++a)
                    VGG_UNROLL
                for (std::size_t b = 0; b < 2; ++b) {
                    const float_batch routed = xsimd::select(winner == float_batch(float(2 * a + b)), gradient, zero);
                    VGG_UNROLL
                    for (std::size_t k = 0; k < 9; ++k)
                        sums[k] = fused_multiply_add(routed, in.at[a + k / 3][b + k % 3], sums[k]);
                }
            }
        VGG_UNROLL
        for (std::size_t k = 0; k < 9; ++k)
            dweight[o * 9 + k] += xsimd::hadd(sums[k]);
        dbias[o] += xsimd::hadd(bias_sum);
    }
}

VGG_UNDEFINED_VECTOR_WARNINGS_ON

} // namespace vgg::kernels
