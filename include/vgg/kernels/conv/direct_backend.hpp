#pragma once
// The direct back end: convolutions of one input channel (a grey image's first layer), where
// im2col + GEMM would have a depth of only 9 (conv3x3_direct.hpp).
#include <cstddef>
#include <cstdint>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/conv/epilogue.hpp"
#include "vgg/kernels/conv3x3_direct.hpp"

namespace vgg::kernels {

/// Floats of scratch direct_forward_channels needs.
inline std::size_t direct_scratch_size(const conv3x3_dims& d, const conv_output& out)
{
    return out.pools() ? detail::split_columns_size(d.height, d.width) : d.columns_size();
}

/// Output channels `channels` of image n, written to `out` (image n's): stored into `result`
/// (its planes, or a scratch image the caller pools), or relu(maxpool2x2) pooled in registers.
inline void direct_forward_channels(const conv3x3_dims& d, const float* x, std::size_t n, const float* weight,
                                    const float* bias, vgg::detail::range channels, const conv_output& out,
                                    float* scratch, float* result)
{
    const float* image = x + n * d.in_size();
    if (out.pools()) {
        const std::size_t plane = d.pixels() / 4;
        conv3x3_single_channel_relu_pool(image, d.height, d.width, weight + channels.begin * 9, bias + channels.begin,
                                         channels.size(), scratch, out.pooled + channels.begin * plane,
                                         out.argmax + channels.begin * plane);
        return;
    }
    conv3x3_single_channel(image, d.height, d.width, weight + channels.begin * 9, bias + channels.begin,
                           channels.size(), scratch, result + channels.begin * d.pixels());
}

/// Adds image n's weight gradient from its output gradient g to `dweight`.
inline void direct_accumulate_weight_gradient(const conv3x3_dims& d, const float* x, std::size_t n, const float* g,
                                              float* scratch, float* dweight)
{
    conv3x3_single_channel_weight_gradient(x + n * d.in_size(), d.height, d.width, g, d.out_channels, scratch, dweight);
}

/// Adds the weight and bias gradients of images `images` to `dweight` and `dbias` straight from
/// the gradient of a relu_pooled output, summed over the pooling windows (no full-resolution
/// gradient built).
inline void direct_accumulate_pooled_gradients(const conv3x3_dims& d, const float* x,
                                               const conv_output_gradient& gradient, vgg::detail::range images,
                                               float* scratch, float* dweight, float* dbias)
{
    const std::size_t pooled_size = d.out_size() / 4;
    for (std::size_t n = images.begin; n < images.end; ++n)
        conv3x3_single_channel_relu_pool_weight_gradient(
            x + n * d.in_size(), d.height, d.width, gradient.dy + n * pooled_size, gradient.pooled + n * pooled_size,
            gradient.argmax + n * pooled_size, d.out_channels, scratch, dweight, dbias);
}

} // namespace vgg::kernels
