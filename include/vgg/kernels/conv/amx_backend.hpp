#pragma once
// The AMX back end: bf16 tile products read from a channels-last copy of each image
// (conv3x3_amx.hpp), on CPUs with AMX, for output channels in 16s.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/conv/epilogue.hpp"
#include "vgg/kernels/conv/plan.hpp"
#include "vgg/kernels/conv3x3_amx.hpp"
#include "vgg/kernels/detail/thread_buffers.hpp"

namespace vgg::kernels {

/// The forward pass of a batch: each image is copied channels-last once and convolved from the
/// copy. Threads take whole images or, for small batches, groups of 16 output channels.
inline void amx_forward(const conv3x3_dims& d, const conv3x3_forward_plan& plan, std::size_t batch, const float* x,
                        const float* weight, const float* bias, const conv_output& out)
{
    const amx_conv3x3_layout layout{d.in_channels, d.out_channels, d.height, d.width};
    std::uint16_t* packed = vgg::detail::reserve(this_thread_buffers().packed_weights, layout.packed_weights_size());
    pack_amx_conv3x3_weights(layout, weight, packed);
    const std::size_t pieces = plan.pieces_per_image;
    vgg::detail::parallel_ranges(
        batch * pieces, d.forward_operations() / pieces, [&](std::size_t, std::size_t, vgg::detail::range work) {
            thread_buffers& buffers = this_thread_buffers();
            for (std::size_t item = work.begin; item < work.end; ++item) {
                const std::size_t n = item / pieces;
                std::uint16_t* staged = vgg::detail::reserve(buffers.staged_image, layout.staged_size());
                stage_channels_last(layout, x + n * d.in_size(), staged);
                amx_conv3x3_image(layout, staged, packed, bias,
                                  vgg::detail::partition(layout.output_groups(), pieces, item % pieces),
                                  out.image(n, d));
            }
        });
}

/// The input gradient's adjoint convolution (from out_channels to in_channels) with its kernels
/// packed once for a backward pass (`adjoint`: adjoint_kernels of the weights).
struct amx_adjoint_convolution {
    amx_conv3x3_layout layout;
    const std::uint16_t* packed = nullptr;

    amx_adjoint_convolution(const conv3x3_dims& d, const float* adjoint)
        : layout{d.out_channels, d.in_channels, d.height, d.width}
    {
        std::uint16_t* buffer =
            vgg::detail::reserve(this_thread_buffers().packed_weights, layout.packed_weights_size());
        pack_amx_conv3x3_weights(layout, adjoint, buffer);
        packed = buffer;
    }

    /// dx_n from an output gradient already copied channels-last into `staged`.
    void run(const std::uint16_t* staged, float* dx_n) const
    {
        amx_conv3x3_image(layout, staged, packed, nullptr, {0, layout.output_groups()}, conv_output::stored(dx_n));
    }
    /// dx_n from the output gradient g.
    void run_from(const float* g, thread_buffers& buffers, float* dx_n) const
    {
        std::uint16_t* staged = vgg::detail::reserve(buffers.staged_image, layout.staged_size());
        stage_channels_last(layout, g, staged);
        run(staged, dx_n);
    }
};

/// Image n's backward step on AMX: one pass over its output gradient g gives the weight
/// gradient's copy, the input gradient's (when `adjoint` is given: dx_n from it) and the bias
/// gradient (added to `dbias`); the image's copy then takes the buffer the input gradient read,
/// and the weight gradient's products are added to buffers.sums (add_weight_gradient_sums).
inline void amx_backward_image(const conv3x3_dims& d, const float* x_n, const float* g,
                               const amx_adjoint_convolution* adjoint, float* dx_n, thread_buffers& buffers,
                               float* dbias)
{
    const amx_weight_gradient_layout layout{d.in_channels, d.out_channels, d.height, d.width};
    std::uint16_t* pairs = vgg::detail::reserve(buffers.staged_gradient, layout.gradient_size());
    std::uint16_t* staged = vgg::detail::reserve(
        buffers.staged_image, std::max(layout.image_size(), adjoint ? adjoint->layout.staged_size() : 0));
    stage_gradient(layout, g, pairs, adjoint ? staged : nullptr, dbias);
    if (adjoint)
        adjoint->run(staged, dx_n);
    stage_image_planes(layout, x_n, staged);
    amx_accumulate_weight_gradient(layout, staged, pairs, buffers.sums.data());
}

} // namespace vgg::kernels
