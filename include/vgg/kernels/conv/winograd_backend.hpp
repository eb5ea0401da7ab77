#pragma once
// The Winograd back end: fp32 F(4x4, 3x3) and F(2x2, 3x3) (winograd.hpp), the forward pass over
// tile rows counted across the batch, the backward pass over groups of images.
#include <cstddef>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/conv/epilogue.hpp"
#include "vgg/kernels/conv/plan.hpp"
#include "vgg/kernels/detail/thread_buffers.hpp"
#include "vgg/kernels/detail/winograd_kernel_cache.hpp"
#include "vgg/kernels/winograd.hpp"
#include "vgg/kernels/winograd_weight_gradient.hpp"

namespace vgg::kernels {

/// A conv_output as the Winograd drivers' epilogue: image n's tile row ty of channel k, stored
/// (through ReLU if asked) or pooled (a tile is one pooling window or four whole ones). One type
/// for every output, so that each driver is compiled once per tile.
struct winograd_epilogue {
    const conv3x3_dims& d;
    conv_output out;

    void operator()(std::size_t n, std::size_t k, std::size_t ty, const tile_row_outputs& outputs) const
    {
        const std::size_t row = k * d.height + outputs.tile * ty;
        if (out.pools()) {
            const std::size_t at = n * d.out_size() / 4 + row / 2 * (d.width / 2);
            pool_tile_row(outputs, d.width, out.pooled + at, out.argmax + at);
        } else {
            store_tile_row(outputs, d.width, out.planes + n * d.out_size() + row * d.width, out.relu);
        }
    }
};

/// The forward pass of a batch by F(Tile x Tile, 3x3), split over threads by tile rows counted
/// across the batch (so a small batch, even one image, uses every thread), or by panels of output
/// channels (work_split::target_panels), each thread transforming its own kernels, unless `kept`
/// keeps them.
template <std::size_t Tile>
void winograd_forward(const conv3x3_dims& d, work_split split, std::size_t batch, const float* x, const float* weight,
                      const float* bias, winograd_kernel_cache* kept, const winograd_epilogue& epilogue)
{
    // The kernels to transform in this pass, unless `kept` has them.
    float* transformed = kept ? nullptr
                              : vgg::detail::reserve(this_thread_buffers().kernels,
                                                     winograd_kernels_size<Tile>(d.in_channels, d.out_channels));
    const float* u = kept ? kept->kernels<Tile>(d) : transformed;
    const std::size_t tile_rows = d.height / Tile;
    if (split == work_split::target_panels) {
        const std::size_t panels = winograd_panel_rows(d.out_channels) / micro_rows;
        vgg::detail::parallel_ranges(
            panels, batch * d.forward_operations() / panels, [&](std::size_t, std::size_t, vgg::detail::range own) {
                const vgg::detail::range targets = winograd_panel_targets(own, d.out_channels);
                if (transformed)
                    winograd_transform_kernels<Tile>(weight, d.out_channels, d.in_channels, false, targets,
                                                     transformed);
                winograd_conv3x3_rows<Tile>(d.in_channels, d.out_channels, d.height, d.width, x, u, bias,
                                            this_thread_buffers().winograd, {0, batch * tile_rows}, targets, epilogue);
            });
        return;
    }
    if (transformed)
        winograd_transform_kernels_in_parallel<Tile>(d, weight, false, transformed);
    vgg::detail::parallel_ranges(
        batch * tile_rows, d.forward_operations() / tile_rows, [&](std::size_t, std::size_t, vgg::detail::range rows) {
            winograd_conv3x3_rows<Tile>(d.in_channels, d.out_channels, d.height, d.width, x, u, bias,
                                        this_thread_buffers().winograd, rows, {0, d.out_channels}, epilogue);
        });
}

/// winograd_forward by the plan's tile.
inline void winograd_forward(const conv3x3_dims& d, const conv3x3_forward_plan& plan, std::size_t batch, const float* x,
                             const float* weight, const float* bias, winograd_kernel_cache* kept,
                             const conv_output& out)
{
    const winograd_epilogue epilogue{d, out};
    with_winograd_tile(plan.winograd_tile(), [&]<std::size_t Tile>() {
        winograd_forward<Tile>(d, plan.split, batch, x, weight, bias, kept, epilogue);
    });
}

/// The transformed adjoint kernels of the input gradient by F(tile x tile, 3x3), made by all
/// threads into the calling thread's kernel buffer.
inline const float* winograd_adjoint_kernels(const conv3x3_dims& d, std::size_t tile, const float* weight)
{
    return with_winograd_tile(tile, [&]<std::size_t Tile>() -> const float* {
        float* adjoint = vgg::detail::reserve(this_thread_buffers().kernels,
                                              winograd_kernels_size<Tile>(d.out_channels, d.in_channels));
        winograd_transform_kernels_in_parallel<Tile>(d, weight, true, adjoint);
        return adjoint;
    });
}

/// The input gradient of a group of `images` images (dx_group: the first one's) from their output
/// gradients (contiguous), by the adjoint convolution with the transformed adjoint kernels `u`.
inline void winograd_input_gradient(const conv3x3_dims& d, std::size_t tile, std::size_t images, const float* gradients,
                                    const float* u, winograd_workspace& scratch, float* dx_group)
{
    const conv3x3_dims adjoint = d.adjoint();
    const winograd_epilogue epilogue{adjoint, conv_output::stored(dx_group)};
    with_winograd_tile(tile, [&]<std::size_t Tile>() {
        winograd_conv3x3_rows<Tile>(adjoint.in_channels, adjoint.out_channels, d.height, d.width, gradients, u, nullptr,
                                    scratch, {0, images * d.height / Tile}, {0, adjoint.out_channels}, epilogue);
    });
}

/// Makes room in buffers.sums for the weight-gradient sums of F(tile x tile, 3x3).
inline void reserve_winograd_weight_sums(const conv3x3_dims& d, std::size_t tile, thread_buffers& buffers)
{
    with_winograd_tile(tile, [&]<std::size_t Tile>() {
        vgg::detail::reserve(buffers.sums, winograd_weight_sums_size<Tile>(d.in_channels, d.out_channels));
    });
}

/// Adds the weight gradient of a group of `images` images (x_group: the first one's) and their
/// output gradients (contiguous) to buffers.sums, still in transformed space (the first group of
/// a thread overwrites them: `update`), and their bias gradient to dbias.
inline void winograd_weight_gradient_of_group(const conv3x3_dims& d, std::size_t tile, std::size_t images,
                                              const float* x_group, const float* gradients, thread_buffers& buffers,
                                              gemm_update update, float* dbias)
{
    with_winograd_tile(tile, [&]<std::size_t Tile>() {
        const std::size_t tiles = images * (d.height / Tile) * (d.width / Tile);
        winograd_accumulate_weight_gradient<Tile>(
            d.in_channels, d.out_channels, d.height, d.width, images, x_group, gradients, buffers.winograd,
            buffers.sums.data(), winograd_gradient_chunk<Tile>(d.in_channels, d.out_channels, tiles), update, dbias);
    });
}

/// Adds the weight gradient summed in buffers.sums to dweight.
inline void finish_winograd_weight_gradient(const conv3x3_dims& d, std::size_t tile, const thread_buffers& buffers,
                                            float* dweight)
{
    with_winograd_tile(tile, [&]<std::size_t Tile>() {
        winograd_weight_gradient<Tile>(buffers.sums.data(), d.in_channels, d.out_channels, dweight);
    });
}

} // namespace vgg::kernels
