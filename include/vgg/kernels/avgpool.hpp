#pragma once
#include <algorithm>
#include <cstddef>

#include "vgg/detail/parallel.hpp"

namespace vgg::kernels {

/// PyTorch's adaptive average pooling windows along one axis: output i averages the inputs
/// [floor(i * in / out), ceil((i + 1) * in / out)), so windows may overlap or differ in size.
constexpr std::size_t adaptive_window_begin(std::size_t i, std::size_t in, std::size_t out) { return i * in / out; }
constexpr std::size_t adaptive_window_end(std::size_t i, std::size_t in, std::size_t out)
{
    return ((i + 1) * in + out - 1) / out;
}

/// The sizes of an adaptive average pool over `planes` planes (images times channels).
struct adaptive_pool_dims {
    std::size_t planes, in_height, in_width, out_height, out_width;
    std::size_t in_plane() const { return in_height * in_width; }
    std::size_t out_plane() const { return out_height * out_width; }
};

/// Calls window(oy, ox, y0, y1, x0, x1) for every output pixel of one plane.
template <class Window>
void for_each_adaptive_window(const adaptive_pool_dims& d, Window&& window)
{
    for (std::size_t oy = 0; oy < d.out_height; ++oy)
        for (std::size_t ox = 0; ox < d.out_width; ++ox)
            window(oy, ox, adaptive_window_begin(oy, d.in_height, d.out_height),
                   adaptive_window_end(oy, d.in_height, d.out_height),
                   adaptive_window_begin(ox, d.in_width, d.out_width),
                   adaptive_window_end(ox, d.in_width, d.out_width));
}

/// nn.AdaptiveAvgPool2d forward; the identity (a copy) when the sizes agree.
inline void adaptive_avgpool_forward(const adaptive_pool_dims& d, const float* x, float* y)
{
    vgg::detail::parallel_ranges(d.planes, d.in_plane() + d.out_plane(), [&](std::size_t, std::size_t, auto mine) {
        for (std::size_t p = mine.begin; p < mine.end; ++p) {
            const float* in = x + p * d.in_plane();
            float* out = y + p * d.out_plane();
            for_each_adaptive_window(
                d, [&](std::size_t oy, std::size_t ox, std::size_t y0, std::size_t y1, std::size_t x0, std::size_t x1) {
                    float sum = 0.f;
                    for (std::size_t iy = y0; iy < y1; ++iy)
                        for (std::size_t ix = x0; ix < x1; ++ix)
                            sum += in[iy * d.in_width + ix];
                    out[oy * d.out_width + ox] = sum / float((y1 - y0) * (x1 - x0));
                });
        }
    });
}

/// Backward: each input pixel receives the share of every window it lies in.
inline void adaptive_avgpool_backward(const adaptive_pool_dims& d, const float* dy, float* dx)
{
    vgg::detail::parallel_ranges(d.planes, d.in_plane() + d.out_plane(), [&](std::size_t, std::size_t, auto mine) {
        for (std::size_t p = mine.begin; p < mine.end; ++p) {
            const float* out_grad = dy + p * d.out_plane();
            float* in_grad = dx + p * d.in_plane();
            std::fill(in_grad, in_grad + d.in_plane(), 0.f);
            for_each_adaptive_window(
                d, [&](std::size_t oy, std::size_t ox, std::size_t y0, std::size_t y1, std::size_t x0, std::size_t x1) {
                    const float share = out_grad[oy * d.out_width + ox] / float((y1 - y0) * (x1 - x0));
                    for (std::size_t iy = y0; iy < y1; ++iy)
                        for (std::size_t ix = x0; ix < x1; ++ix)
                            in_grad[iy * d.in_width + ix] += share;
                });
        }
    });
}

} // namespace vgg::kernels
