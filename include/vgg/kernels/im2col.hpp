#pragma once
#include <algorithm>
#include <cstddef>
#include <cstring>

namespace vgg::kernels {

/// Unfolds one C x H x W image for a 3x3, stride-1, pad-1 convolution into a
/// (C*9) x (H*W) column matrix: row (c*3 + ky)*3 + kx, column y*W + x holds
/// image[c][y + ky - 1][x + kx - 1], or 0 outside the image.
inline void im2col_3x3(const float* image, std::size_t channels, std::size_t height, std::size_t width, float* columns)
{
    for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t ky = 0; ky < 3; ++ky)
            for (std::size_t kx = 0; kx < 3; ++kx) {
                float* row = columns + ((c * 3 + ky) * 3 + kx) * height * width;
                // Columns x whose source x + kx - 1 lies inside the image.
                const std::size_t x_begin = kx == 0 ? 1 : 0;
                const std::size_t x_end = kx == 2 ? width - 1 : width;
                for (std::size_t y = 0; y < height; ++y) {
                    float* out = row + y * width;
                    const std::ptrdiff_t source_y = static_cast<std::ptrdiff_t>(y + ky) - 1;
                    if (source_y < 0 || source_y >= static_cast<std::ptrdiff_t>(height)) {
                        std::fill(out, out + width, 0.f);
                        continue;
                    }
                    const float* in = image + (c * height + static_cast<std::size_t>(source_y)) * width;
                    std::fill(out, out + x_begin, 0.f);
                    std::memcpy(out + x_begin, in + x_begin + kx - 1, (x_end - x_begin) * sizeof(float));
                    std::fill(out + x_end, out + width, 0.f);
                }
            }
}

/// The adjoint of im2col_3x3: adds every column entry back onto the image pixel it came from.
/// `image` is overwritten.
inline void col2im_3x3(const float* columns, std::size_t channels, std::size_t height, std::size_t width, float* image)
{
    std::fill(image, image + channels * height * width, 0.f);
    for (std::size_t c = 0; c < channels; ++c)
        for (std::size_t ky = 0; ky < 3; ++ky)
            for (std::size_t kx = 0; kx < 3; ++kx) {
                const float* row = columns + ((c * 3 + ky) * 3 + kx) * height * width;
                const std::size_t x_begin = kx == 0 ? 1 : 0;
                const std::size_t x_end = kx == 2 ? width - 1 : width;
                for (std::size_t y = 0; y < height; ++y) {
                    const std::ptrdiff_t source_y = static_cast<std::ptrdiff_t>(y + ky) - 1;
                    if (source_y < 0 || source_y >= static_cast<std::ptrdiff_t>(height))
                        continue;
                    float* out = image + (c * height + static_cast<std::size_t>(source_y)) * width;
                    const float* in = row + y * width;
                    for (std::size_t x = x_begin; x < x_end; ++x)
                        out[x + kx - 1] += in[x];
                }
            }
}

} // namespace vgg::kernels
