#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/simd.hpp"

namespace vgg::kernels {

/// The maximum of a 2x2 window (a b over c d) and which input won, `winner` 0..3 in that order;
/// on ties the first wins, and a NaN wins as in PyTorch (`value > max || isnan(value)`), so that
/// it reaches the loss. Arithmetic instead of branches, so loops over it vectorise: on real
/// activations the winner is random, and mispredicted branches would cost more than the pool.
inline float max_of_window(float a, float b, float c, float d, std::uint8_t& winner)
{
    const auto beats = [](float challenger, float holder) { return challenger > holder || challenger != challenger; };
    const int right_top = beats(b, a), right_bottom = beats(d, c);
    const float top_max = right_top ? b : a, bottom_max = right_bottom ? d : c;
    const int bottom_wins = beats(bottom_max, top_max);
    winner = static_cast<std::uint8_t>(bottom_wins * (2 + right_bottom) + (1 - bottom_wins) * right_top);
    return bottom_wins ? bottom_max : top_max;
}

/// max_of_window for a batch of windows, the winners as floats 0 to 3, bit for bit the same.
inline float_batch max_of_windows(const float_batch& a, const float_batch& b, const float_batch& c,
                                  const float_batch& d, float_batch& winner)
{
    const auto beats = [](const float_batch& challenger, const float_batch& holder) {
        return (challenger > holder) || xsimd::isnan(challenger);
    };
    const auto right_top = beats(b, a), right_bottom = beats(d, c);
    const auto top_max = xsimd::select(right_top, b, a), bottom_max = xsimd::select(right_bottom, d, c);
    const auto bottom_wins = beats(bottom_max, top_max);
    const float_batch zero(0.f), one(1.f), two(2.f), three(3.f);
    winner = xsimd::select(bottom_wins, xsimd::select(right_bottom, three, two), xsimd::select(right_top, one, zero));
    return xsimd::select(bottom_wins, bottom_max, top_max);
}

VGG_UNDEFINED_VECTOR_WARNINGS_OFF
namespace detail {
/// Stores the first `count` lanes of `winners` (max_of_windows' 0 to 3) as bytes.
inline void store_winners(const float_batch& winners, std::uint8_t* to, std::size_t count)
{
    count = std::min(count, float_batch::size);
#if defined(__AVX512F__)
    _mm512_mask_cvtepi32_storeu_epi8(to, static_cast<__mmask16>((1u << count) - 1), _mm512_cvttps_epi32(winners));
#else
    alignas(64) float lanes[float_batch::size];
    winners.store_aligned(lanes);
    for (std::size_t i = 0; i < count; ++i)
        to[i] = static_cast<std::uint8_t>(lanes[i]);
#endif
}

/// The first `count` (at most a batch) arg-max bytes from `from` as floats; the other lanes 0.
inline float_batch load_winners(const std::uint8_t* from, std::size_t count)
{
    count = std::min(count, float_batch::size);
#if defined(__AVX512BW__) && defined(__AVX512VL__)
    return _mm512_cvtepi32_ps(
        _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(static_cast<__mmask16>((1u << count) - 1), from)));
#else
    alignas(64) float lanes[float_batch::size] = {};
    for (std::size_t i = 0; i < count; ++i)
        lanes[i] = from[i];
    return float_batch::load_aligned(lanes);
#endif
}
} // namespace detail
VGG_UNDEFINED_VECTOR_WARNINGS_ON

/// 2x2, stride-2 max-pool of planes [first, last) of height x width (both even). For every
/// output it records which of the four inputs won (0 top-left, 1 top-right, 2 bottom-left,
/// 3 bottom-right) in one byte; on ties the first in that order wins, so the gradient's route
/// is deterministic.
inline void maxpool2x2_planes(std::size_t first, std::size_t last, std::size_t height, std::size_t width,
                              const float* x, float* y, std::uint8_t* argmax)
{
    const std::size_t out_h = height / 2, out_w = width / 2;
    for (std::size_t p = first; p < last; ++p)
        for (std::size_t i = 0; i < out_h; ++i) {
            const float* top = x + (p * height + 2 * i) * width;
            const float* bottom = top + width;
            float* out = y + (p * out_h + i) * out_w;
            std::uint8_t* arg = argmax + (p * out_h + i) * out_w;
            for (std::size_t j = 0; j < out_w; ++j)
                out[j] = max_of_window(top[2 * j], top[2 * j + 1], bottom[2 * j], bottom[2 * j + 1], arg[j]);
        }
}

namespace detail {
// Batch constants of the routing below: lane i takes window i / 2 of the first half of a batch of
// windows (or of the second half), and lies in its window's column i % 2.
struct window_of_first_half {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t) { return lane / 2; }
};
struct window_of_second_half {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes) { return (lane + lanes) / 2; }
};
struct column_in_window {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t) { return lane % 2; }
};
} // namespace detail

VGG_UNDEFINED_VECTOR_WARNINGS_OFF
/// Routes each output gradient of planes [first, last) to the input that won the forward max;
/// the other three inputs of the window get zero. Every input is written exactly once. A batch
/// of windows at a time in SIMD, each window's gradient and winner spread over its two columns by
/// a swizzle; a row's last, partial batch goes through scratch.
inline void maxpool2x2_planes_backward(std::size_t first, std::size_t last, std::size_t height, std::size_t width,
                                       const float* dy, const std::uint8_t* argmax, float* dx)
{
    using index_batch = xsimd::batch<std::uint32_t>;
    constexpr std::size_t lanes = float_batch::size;
    constexpr auto first_half = xsimd::make_batch_constant<index_batch, detail::window_of_first_half>();
    constexpr auto second_half = xsimd::make_batch_constant<index_batch, detail::window_of_second_half>();
    const float_batch column =
        xsimd::batch_cast<float>(index_batch(xsimd::make_batch_constant<index_batch, detail::column_in_window>()));
    const float_batch zero(0.f), below(2.f);
    const std::size_t out_h = height / 2, out_w = width / 2;
    for (std::size_t p = first; p < last; ++p)
        for (std::size_t i = 0; i < out_h; ++i) {
            float* top = dx + (p * height + 2 * i) * width;
            float* bottom = top + width;
            const float* g = dy + (p * out_h + i) * out_w;
            const std::uint8_t* arg = argmax + (p * out_h + i) * out_w;
            for (std::size_t j = 0; j < out_w; j += lanes) {
                const std::size_t count = std::min(lanes, out_w - j);
                alignas(64) float scratch[2][2 * lanes];
                const auto gradient = load_first(g + j, count), winner = detail::load_winners(arg + j, count);
                float* top_out = count == lanes ? top + 2 * j : scratch[0];
                float* bottom_out = count == lanes ? bottom + 2 * j : scratch[1];
                for (const std::size_t half : {0, 1}) {
                    const auto spread =
                        half == 0 ? xsimd::swizzle(gradient, first_half) : xsimd::swizzle(gradient, second_half);
                    const auto won =
                        half == 0 ? xsimd::swizzle(winner, first_half) : xsimd::swizzle(winner, second_half);
                    xsimd::select(won == column, spread, zero).store_unaligned(top_out + half * lanes);
                    xsimd::select(won == column + below, spread, zero).store_unaligned(bottom_out + half * lanes);
                }
                if (count < lanes) {
                    std::copy(scratch[0], scratch[0] + 2 * count, top + 2 * j);
                    std::copy(scratch[1], scratch[1] + 2 * count, bottom + 2 * j);
                }
            }
        }
}

VGG_UNDEFINED_VECTOR_WARNINGS_ON

/// maxpool2x2_planes over all `planes`, split across threads.
inline void maxpool2x2_forward(std::size_t planes, std::size_t height, std::size_t width, const float* x, float* y,
                               std::uint8_t* argmax)
{
    vgg::detail::parallel_ranges(planes, height * width, [&](std::size_t, std::size_t, vgg::detail::range part) {
        maxpool2x2_planes(part.begin, part.end, height, width, x, y, argmax);
    });
}

/// maxpool2x2_planes_backward over all `planes`, split across threads.
inline void maxpool2x2_backward(std::size_t planes, std::size_t height, std::size_t width, const float* dy,
                                const std::uint8_t* argmax, float* dx)
{
    vgg::detail::parallel_ranges(planes, height * width, [&](std::size_t, std::size_t, vgg::detail::range part) {
        maxpool2x2_planes_backward(part.begin, part.end, height, width, dy, argmax, dx);
    });
}

} // namespace vgg::kernels
