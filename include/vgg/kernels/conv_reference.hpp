#pragma once
#include <cstddef>

namespace vgg::kernels {

/// The definition of a 3x3, stride-1, pad-1 convolution as seven nested loops, accumulated in
/// double. Slow on purpose: the tests hold the fast kernels against it.
inline void conv3x3_reference(std::size_t batch, std::size_t in_channels, std::size_t out_channels, std::size_t height,
                              std::size_t width, const float* x, const float* weight, const float* bias, float* y)
{
    const auto h = static_cast<std::ptrdiff_t>(height), w = static_cast<std::ptrdiff_t>(width);
    for (std::size_t n = 0; n < batch; ++n)
        for (std::size_t o = 0; o < out_channels; ++o)
            for (std::ptrdiff_t i = 0; i < h; ++i)
                for (std::ptrdiff_t j = 0; j < w; ++j) {
                    double sum = bias[o];
                    for (std::size_t c = 0; c < in_channels; ++c)
                        for (std::ptrdiff_t ky = 0; ky < 3; ++ky)
                            for (std::ptrdiff_t kx = 0; kx < 3; ++kx) {
                                const std::ptrdiff_t yy = i + ky - 1, xx = j + kx - 1;
                                if (yy < 0 || yy >= h || xx < 0 || xx >= w)
                                    continue;
                                sum += double(x[((n * in_channels + c) * height + std::size_t(yy)) * width +
                                                std::size_t(xx)]) *
                                       weight[((o * in_channels + c) * 3 + std::size_t(ky)) * 3 + std::size_t(kx)];
                            }
                    y[((n * out_channels + o) * height + std::size_t(i)) * width + std::size_t(j)] = float(sum);
                }
}

} // namespace vgg::kernels
