#pragma once
#include <cstddef>
#include <cstdint>

#include "vgg/detail/xsimd.hpp"

#include "vgg/core/rng.hpp"
#include "vgg/kernels/simd.hpp"

namespace vgg::kernels {

/// x = max(x, 0), NaN kept as NaN (as PyTorch's ReLU): a NaN input must reach the loss, where
/// training notices it, not vanish into a zero.
inline void relu_inplace(float* x, std::size_t n)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t vector_end = n - n % lanes;
    const float_batch zero(0.f);
    // A compare and select, not xsimd::max: GCC 12 warns that _mm512_max_ps's operand "may be
    // used uninitialized" in every program that inlines it.
    for (std::size_t i = 0; i < vector_end; i += lanes) {
        const auto v = float_batch::load_unaligned(x + i);
        xsimd::select(v < zero, zero, v).store_unaligned(x + i);
    }
    for (std::size_t i = vector_end; i < n; ++i)
        x[i] = x[i] < 0.f ? 0.f : x[i];
}

/// ReLU backward from its output: grad = output > 0 ? grad : 0.
inline void relu_backward_inplace(float* grad, const float* output, std::size_t n)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t vector_end = n - n % lanes;
    const float_batch zero(0.f);
    for (std::size_t i = 0; i < vector_end; i += lanes) {
        const auto keep = float_batch::load_unaligned(output + i) > zero;
        xsimd::select(keep, float_batch::load_unaligned(grad + i), zero).store_unaligned(grad + i);
    }
    for (std::size_t i = vector_end; i < n; ++i)
        grad[i] = output[i] > 0.f ? grad[i] : 0.f;
}

/// Inverted dropout: element i of the batch survives with probability 1 - p and is scaled by
/// 1 / (1 - p). Whether it survives depends only on (key, i), never on which thread asks.
inline bool dropout_keeps(std::uint64_t key, std::size_t i, float p) { return unit_float(mix64(key, i)) >= p; }

} // namespace vgg::kernels
