#pragma once
// What a convolution does with its results in the pass that computes them (its epilogue), and
// where its backward pass finds the gradient of what the epilogue wrote. Every back end takes the
// same two descriptions, so a layer says which epilogue it wants and never which kernel runs.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/elementwise.hpp"
#include "vgg/kernels/maxpool.hpp"

namespace vgg::kernels {

/// Where a convolution's results go, bias added: its output planes, through ReLU when `relu`
/// is set; or, with `pooled` set, only relu(maxpool2x2(conv)) and the pool's arg-max as
/// maxpool2x2_planes records them (height and width even), the full-resolution output never
/// stored. The pointers are of the whole batch, or of one image after image().
struct conv_output {
    float* planes = nullptr;
    bool relu = false;
    float* pooled = nullptr;
    std::uint8_t* argmax = nullptr;

    static conv_output stored(float* planes) { return {.planes = planes}; }
    static conv_output stored_through_relu(float* planes) { return {.planes = planes, .relu = true}; }
    static conv_output relu_pooled(float* pooled, std::uint8_t* argmax) { return {.pooled = pooled, .argmax = argmax}; }

    bool pools() const { return pooled != nullptr; }
    /// Image n's part of a batch's output.
    conv_output image(std::size_t n, const conv3x3_dims& d) const
    {
        if (pools())
            return relu_pooled(pooled + n * d.out_size() / 4, argmax + n * d.out_size() / 4);
        return {.planes = planes + n * d.out_size(), .relu = relu};
    }
};

/// The epilogue of output channels `channels` of one image (`out`: image()'s) whose convolution
/// was written to `result` (its output planes, or scratch when the output is pooled), run right
/// after they are written, while they are still in cache. ReLU and max commute, so a pooled output
/// is pooled first and ReLU touches only a quarter of the values.
inline void finish_channels(const conv3x3_dims& d, const conv_output& out, float* result, vgg::detail::range channels)
{
    if (out.pools()) {
        const std::size_t plane = d.pixels() / 4;
        maxpool2x2_planes(channels.begin, channels.end, d.height, d.width, result, out.pooled, out.argmax);
        relu_inplace(out.pooled + channels.begin * plane, channels.size() * plane);
    } else if (out.relu) {
        relu_inplace(result + channels.begin * d.pixels(), channels.size() * d.pixels());
    }
}

/// The gradient a backward pass starts from, of what conv_output wrote: `dy` of the stored
/// output; with `relu_output`, of relu(conv) given that output (its mask applied on the way in);
/// or, with `pooled`, of the pooled output (`dy` then of the pooled values; each goes to its
/// window's arg-max when the pooled value passed the ReLU).
struct conv_output_gradient {
    const float* dy = nullptr;
    const float* relu_output = nullptr;
    const float* pooled = nullptr;
    const std::uint8_t* argmax = nullptr;

    static conv_output_gradient of_stored(const float* dy) { return {.dy = dy}; }
    static conv_output_gradient of_relu(const float* dy, const float* relu_output)
    {
        return {.dy = dy, .relu_output = relu_output};
    }
    static conv_output_gradient of_relu_pooled(const float* dpooled, const float* pooled, const std::uint8_t* argmax)
    {
        return {.dy = dpooled, .pooled = pooled, .argmax = argmax};
    }

    bool pools() const { return pooled != nullptr; }

    /// Image n's gradient of the convolution's output (out_size floats): read where it is, or
    /// built in `buffer`.
    const float* image(std::size_t n, const conv3x3_dims& d, aligned_vector<float>& buffer) const
    {
        if (pools()) {
            const std::size_t pooled_size = d.out_size() / 4;
            buffer.resize(d.out_size() + pooled_size);
            float* masked = buffer.data() + d.out_size();
            std::copy(dy + n * pooled_size, dy + (n + 1) * pooled_size, masked);
            relu_backward_inplace(masked, pooled + n * pooled_size, pooled_size);
            maxpool2x2_planes_backward(0, d.out_channels, d.height, d.width, masked, argmax + n * pooled_size,
                                       buffer.data());
            return buffer.data();
        }
        const float* g = dy + n * d.out_size();
        if (!relu_output)
            return g;
        buffer.assign(g, g + d.out_size());
        relu_backward_inplace(buffer.data(), relu_output + n * d.out_size(), d.out_size());
        return buffer.data();
    }
};

} // namespace vgg::kernels
