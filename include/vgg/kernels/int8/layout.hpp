#pragma once
// The int8 operands: u8 activations stored channels-last with a zero border, s8 weights quantised
// per output channel and packed in the blocks the tiles read, and the requantisation rule every
// int8 kernel applies to its int32 sums.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "vgg/core/tensor.hpp"

namespace vgg::kernels::int8 {

/// Output channels of one packed weight block: a 64-byte line of 16 channels x 4 input channels.
inline constexpr std::size_t channel_block = 16;
/// Input channels one int32 lane sums per instruction (vpdpbusd, vpmaddubsw + vpmaddwd).
inline constexpr std::size_t group_size = 4;
/// Weights are quantised to [-63, 63], not [-127, 127]: AVX2's vpmaddubsw adds two u8 x s8
/// products into a saturating int16, and 2 x 255 x 63 fits where 2 x 255 x 127 does not. One rule
/// for every kernel keeps a quantised network's results the same on every CPU.
inline constexpr int weight_levels = 63;
/// The largest weight magnitude the kernels take exactly (2 x 255 x 64 still fits int16): what
/// ONNX Runtime's quantiser writes with reduce_range, [-64, 64], reads as it is.
inline constexpr int weight_code_limit = 64;
/// Activations are u8 with zero at code 0: what follows ReLU is never negative.
inline constexpr int activation_levels = 255;

/// Channels stored per pixel: whole blocks, so that a tile writes 16 channels at once and the
/// next layer reads whole groups; the padding channels hold zeros.
constexpr std::size_t padded_channels(std::size_t channels)
{
    return (channels + channel_block - 1) / channel_block * channel_block;
}

/// u8 activations of one image, channels-last ([height + 2b][width + 2b][channels]) with a
/// border of b zero pixels around (1 for a convolution's input, 0 for a fully connected layer's).
struct planes {
    std::size_t height, width, channels, border;

    std::size_t padded_width() const { return width + 2 * border; }
    std::size_t image_size() const { return (height + 2 * border) * padded_width() * channels; }
    /// Offset of pixel (h, w)'s first channel.
    std::size_t at(std::size_t h, std::size_t w) const
    {
        return ((h + border) * padded_width() + w + border) * channels;
    }
};

/// v requantised: rounded to nearest (ties to even) after clamping to [0, 255] (ReLU's floor and
/// u8's ceiling; NaN to 0, as the kernels' max does). Every kernel computes v = fma(sum,
/// multiplier, offset) in fp32 and rounds it so.
inline std::uint8_t requantize(float v)
{
    const float floored = v > 0.f ? v : 0.f;
    return static_cast<std::uint8_t>(std::nearbyint(std::min(floored, float(activation_levels))));
}

/// How fp32 values become a layer's u8 input: q = round(x / scale) + zero_point, clamped to
/// [0, 255]. zero_point is the code of 0: 0 after a ReLU, above 0 for an image with negative values.
struct input_quantisation {
    float scale = 1.f;
    int zero_point = 0;
};

/// An activation's scale for a calibrated range [0, threshold]: the value of one u8 step.
inline float activation_scale(float threshold) { return threshold > 0.f ? threshold / float(activation_levels) : 1.f; }

/// Weights of a layer quantised per output channel: value[o][k] ~ scale[o] * quantised[o][k].
struct quantised_weights {
    std::vector<std::int8_t> values; ///< [out][per_channel]
    std::vector<float> scales;       ///< [out]
};

/// Symmetric per-channel quantisation of weight [out][per_channel] to [-weight_levels, weight_levels].
inline quantised_weights quantise_weights(const float* weight, std::size_t out, std::size_t per_channel)
{
    quantised_weights q{std::vector<std::int8_t>(out * per_channel), std::vector<float>(out)};
    for (std::size_t o = 0; o < out; ++o) {
        const float* row = weight + o * per_channel;
        float largest = 0.f;
        for (std::size_t k = 0; k < per_channel; ++k)
            largest = std::max(largest, std::abs(row[k]));
        const float scale = largest > 0.f ? largest / float(weight_levels) : 1.f;
        q.scales[o] = scale;
        for (std::size_t k = 0; k < per_channel; ++k) {
            const float level = std::nearbyint(row[k] / scale);
            q.values[o * per_channel + k] =
                static_cast<std::int8_t>(std::clamp(level, -float(weight_levels), float(weight_levels)));
        }
    }
    return q;
}

/// Packed weights of one layer: blocks of 16 output channels, each [taps][groups][16][4] (input
/// channel g * 4 + i of output channel j at [g][j][i]), zeros where a channel is padding.
struct packed_weights {
    aligned_vector<std::int8_t> values;
    std::size_t taps = 0, groups = 0, blocks = 0;

    std::size_t block_size() const { return taps * groups * channel_block * group_size; }
    const std::int8_t* block(std::size_t b) const { return values.data() + b * block_size(); }
};

/// Packs q ([out][in][taps], as Conv2d's and, with one tap, Linear's weights) for inputs stored
/// with `stored_in` channels per pixel. `input_channel` maps a stored channel to q's (or to `in`
/// for a zero): the identity for a convolution, Flatten's order for the first Linear.
template <class InputChannel>
packed_weights pack_weights(const quantised_weights& q, std::size_t out, std::size_t in, std::size_t taps,
                            std::size_t stored_in, InputChannel&& input_channel)
{
    packed_weights p;
    p.taps = taps;
    p.groups = (stored_in + group_size - 1) / group_size;
    p.blocks = padded_channels(out) / channel_block;
    p.values.assign(p.blocks * p.block_size(), 0);
    for (std::size_t s = 0; s < p.groups * group_size; ++s) {
        const std::size_t c = s < stored_in ? input_channel(s) : in;
        if (c >= in)
            continue;
        for (std::size_t o = 0; o < out; ++o)
            for (std::size_t t = 0; t < taps; ++t) {
                const std::size_t b = o / channel_block, j = o % channel_block;
                const std::size_t at =
                    ((t * p.groups + s / group_size) * channel_block + j) * group_size + s % group_size;
                p.values[b * p.block_size() + at] = q.values[(o * in + c) * taps + t];
            }
    }
    return p;
}

/// What turns a layer's int32 sums into its output, per output channel (padded to whole blocks
/// with zeros): out[o] = sum[o] * multiplier[o] + offset[o], requantised to u8 through ReLU, or
/// kept as fp32.
struct requantisation {
    aligned_vector<float> multiplier, offset;

    /// Input scale, weight scales and bias to the output's scale (output_scale 1 keeps fp32 values).
    static requantisation of(float input_scale, const std::vector<float>& weight_scales, const float* bias,
                             float output_scale)
    {
        const std::size_t out = weight_scales.size();
        requantisation r{aligned_vector<float>(padded_channels(out), 0.f),
                         aligned_vector<float>(padded_channels(out), 0.f)};
        for (std::size_t o = 0; o < out; ++o) {
            r.multiplier[o] = static_cast<float>(double(input_scale) * weight_scales[o] / output_scale);
            r.offset[o] = static_cast<float>(double(bias[o]) / output_scale);
        }
        return r;
    }
};

} // namespace vgg::kernels::int8
