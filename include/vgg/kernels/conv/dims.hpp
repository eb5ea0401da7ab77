#pragma once
#include <algorithm>
#include <cstddef>

#include "vgg/core/precision.hpp"

namespace vgg::kernels {

/// Sizes of a 3x3, stride-1, pad-1 convolution.
struct conv3x3_dims {
    std::size_t in_channels, out_channels, height, width;
    /// The products' arithmetic. bf16 runs on AMX from channels-last copies where the CPU has AMX
    /// and the output channels come in 16s (the weight gradient: both sides; conv3x3_amx.hpp),
    /// otherwise as im2col + gemm_bf16; never by Winograd, whose transforms would round in bf16
    /// what fp32 keeps exact (layers ask with_fastest_products whether fp32 Winograd is faster).
    vgg::precision compute = vgg::precision::fp32;
    constexpr std::size_t pixels() const { return height * width; }
    constexpr std::size_t patch() const { return in_channels * 9; }
    constexpr std::size_t in_size() const { return in_channels * pixels(); }
    constexpr std::size_t out_size() const { return out_channels * pixels(); }
    constexpr std::size_t weight_size() const { return out_channels * patch(); }
    /// Multiplies and adds of one image's forward pass (the backward pass takes about twice as many).
    constexpr std::size_t forward_operations() const { return 2 * out_channels * patch() * pixels(); }
    /// Floats of one image's im2col columns, or of its padded copy when it has one channel.
    constexpr std::size_t columns_size() const { return std::max(patch() * pixels(), (height + 2) * (width + 2)); }
    /// The convolution that gives the input gradient: from the output channels to the input
    /// channels, with the adjoint kernels (adjoint_kernels).
    constexpr conv3x3_dims adjoint() const { return {out_channels, in_channels, height, width, compute}; }
};

/// The kernels of the input gradient, [in][out][3][3]: weight [out][in][3][3] with the channels
/// swapped and each 3x3 kernel turned by 180 degrees, so that dx = conv3x3(dy) with them.
inline void adjoint_kernels(const float* weight, std::size_t out_channels, std::size_t in_channels, float* adjoint)
{
    for (std::size_t o = 0; o < out_channels; ++o)
        for (std::size_t c = 0; c < in_channels; ++c)
            for (std::size_t tap = 0; tap < 9; ++tap)
                adjoint[(c * out_channels + o) * 9 + 8 - tap] = weight[(o * in_channels + c) * 9 + tap];
}

} // namespace vgg::kernels
