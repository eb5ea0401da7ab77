#pragma once
// The convolution plan: which back end runs a pass and how its work is split, decided once per
// pass from the sizes, the precision, the batch and the CPU, as oneDNN's implementations accept
// or decline a problem. The back ends (conv/*_backend.hpp) run a plan and decide nothing.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "vgg/core/threads.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/conv3x3_amx.hpp"
#include "vgg/kernels/cpu_features.hpp"
#include "vgg/kernels/winograd.hpp"

namespace vgg::kernels {

/// The back ends of a 3x3 convolution.
enum class conv3x3_algorithm : std::uint8_t {
    none,        ///< the pass is not asked for (a frozen layer's weight gradient, an input's gradient)
    direct,      ///< one input channel, from a padded copy (conv3x3_direct.hpp)
    im2col_gemm, ///< fp32 im2col columns times the weights (gemm.hpp); the input gradient folds back by col2im
    bf16_gemm,   ///< bf16 products read from the image as gemm_bf16 packs it
    winograd_f2, ///< fp32 Winograd F(2x2, 3x3) (winograd.hpp)
    winograd_f4, ///< fp32 Winograd F(4x4, 3x3)
    amx,         ///< bf16 AMX tiles from a channels-last copy (conv3x3_amx.hpp)
};

constexpr std::string_view to_string(conv3x3_algorithm a)
{
    switch (a) {
    case conv3x3_algorithm::none: return "none";
    case conv3x3_algorithm::direct: return "direct";
    case conv3x3_algorithm::im2col_gemm: return "im2col+gemm";
    case conv3x3_algorithm::bf16_gemm: return "bf16 gemm";
    case conv3x3_algorithm::winograd_f2: return "winograd F(2x2)";
    case conv3x3_algorithm::winograd_f4: return "winograd F(4x4)";
    case conv3x3_algorithm::amx: return "amx";
    }
    return "?";
}

/// The Winograd algorithm's output tile side (0 for the others).
constexpr std::size_t winograd_tile_of(conv3x3_algorithm a)
{
    return a == conv3x3_algorithm::winograd_f4 ? 4 : a == conv3x3_algorithm::winograd_f2 ? 2 : 0;
}
constexpr conv3x3_algorithm winograd_algorithm(std::size_t tile)
{
    return tile == 4 ? conv3x3_algorithm::winograd_f4 : conv3x3_algorithm::winograd_f2;
}

/// How a forward pass shares its work between threads.
enum class work_split : std::uint8_t {
    images,         ///< whole images
    channel_groups, ///< fewer images than threads: groups of output channels of each image
    tile_rows,      ///< Winograd: tile rows counted across the batch
    target_panels,  ///< Winograd, fewer images than threads: panels of output channels, each thread
                    ///< transforming its own share of the kernels
};

constexpr std::string_view to_string(work_split s)
{
    switch (s) {
    case work_split::images: return "images";
    case work_split::channel_groups: return "channel groups";
    case work_split::tile_rows: return "tile rows";
    case work_split::target_panels: return "target panels";
    }
    return "?";
}

/// Tiles a forward pass needs (over its whole batch) before it streams transformed kernels larger
/// than winograd_cached_kernel_bytes, one 56x56 image's by F(4x4, 3x3): with fewer, transforming
/// and reading the kernels costs more than the multiplies saved (VGG-16's 28x28 and 14x14 layers
/// at batch 1: 49 tiles).
inline constexpr std::size_t winograd_streaming_min_tiles = 196;

/// Output channels each thread must have before a forward pass of fewer images than threads splits
/// the output channels between threads instead of the tiles (winograd_splits_targets): each thread
/// then transforms and reads only its own share of the kernels, but transforms every input tile
/// itself, which pays only from this many channels a thread.
inline constexpr std::size_t winograd_split_min_targets = 128;
/// Tiles a forward pass needs before it streams transformed kernels of F(2x2, 3x3) when threads
/// split the output channels: each thread's share of them is read once for all the tiles (VGG-16's
/// 512-channel 14x14 layers at batch 1 then beat im2col). Not for F(4x4, 3x3), whose kernels are
/// 2.25 times larger: there F(2x2) wins.
inline constexpr std::size_t winograd_split_streaming_min_tiles = 49;

/// Whether a Winograd forward pass of `batch` images splits the output channels between threads
/// (whole panels of the GEMM each) rather than the tile rows: fewer images than threads, and at
/// least winograd_split_min_targets channels for every thread.
inline bool winograd_splits_targets(const conv3x3_dims& d, std::size_t batch)
{
    const auto threads = static_cast<std::size_t>(vgg::max_threads());
    return batch < threads && d.out_channels >= winograd_split_min_targets * threads;
}

/// Whether Winograd can pay at all: fp32 (its transforms would round in bf16 what fp32 keeps
/// exact), and at least 16 channels on either side (with fewer the transforms cost more than the
/// multiplies they save).
constexpr bool winograd_may_pay(const conv3x3_dims& d)
{
    return d.compute == precision::fp32 && std::min(d.in_channels, d.out_channels) >= 16;
}

/// Bytes of the transformed kernels of F(tile x tile, 3x3): (tile + 2)^2 x in x out floats.
constexpr std::size_t winograd_kernel_bytes(std::size_t tile, const conv3x3_dims& d)
{
    return (tile + 2) * (tile + 2) * d.in_channels * d.out_channels * sizeof(float);
}

/// The output tile side of the Winograd algorithm a forward pass of `batch` images runs by: 4 for
/// F(4x4, 3x3), 2 for F(2x2, 3x3), or 0 for none. The larger tile goes first: 2.25 multiplies per
/// output and channel pair instead of 4. With `kernels_kept` (a winograd_kernel_cache has them) no
/// batch is too small for it: only reading the kernels is left, which pays at one image.
constexpr std::size_t winograd_tile(const conv3x3_dims& d, std::size_t batch, bool kernels_kept = false)
{
    if (!winograd_may_pay(d))
        return 0;
    for (const std::size_t tile : {4, 2}) {
        const std::size_t tiles = batch * d.pixels() / (tile * tile);
        if (winograd_applies(tile, d.height, d.width) &&
            (kernels_kept || winograd_kernel_bytes(tile, d) <= winograd_cached_kernel_bytes ||
             tiles >= winograd_streaming_min_tiles ||
             (tile == 2 && winograd_splits_targets(d, batch) && tiles >= winograd_split_streaming_min_tiles)))
            return tile;
    }
    return 0;
}

/// The output tile side of the Winograd algorithm the weight gradient runs by (0: none):
/// F(4x4, 3x3)'s adjoint (36 products per 16 outputs instead of 16 per 4) where the sides are
/// multiples of 4, else F(2x2, 3x3), wherever Winograd may pay. The products run over the tiles
/// of a group of images (winograd_backward_group) in chunks long enough that sums too large for
/// L2 cost little to stream (winograd_gradient_chunk), so unlike the forward pass it needs no rule
/// for large kernels (F(4x4) beats F(2x2) summed in L2-sized passes over its elements).
constexpr std::size_t winograd_weight_gradient_tile(const conv3x3_dims& d)
{
    if (!winograd_may_pay(d))
        return 0;
    for (const std::size_t tile : {4, 2})
        if (winograd_applies(tile, d.height, d.width))
            return tile;
    return 0;
}

/// The sizes a layer's convolution runs with: `requested` itself, except a bf16 convolution that
/// Winograd can run on a CPU with AVX512_BF16 but no AMX (Zen 4), which runs by fp32 Winograd: it
/// does a quarter of the multiplies of bf16's direct products (F(4x4, 3x3)) at half their rate.
/// Throws, as every bf16 pass does, where no bf16 kernel runs.
inline conv3x3_dims with_fastest_products(const conv3x3_dims& requested)
{
    conv3x3_dims fp32 = requested;
    fp32.compute = precision::fp32;
    const bool winograd_beats_bf16 = requested.compute == precision::bf16 &&
                                     best_bf16_kernel() == bf16_kernel::avx512_bf16 &&
                                     winograd_weight_gradient_tile(fp32) != 0;
    return winograd_beats_bf16 ? fp32 : requested;
}

/// Images a backward pass takes together: their output gradients are kept for one Winograd
/// input-gradient pass, and read by one weight-gradient pass. Enough for
/// winograd_streaming_min_tiles tiles by F(4x4, 3x3) (4 at 28x28, 1 from 56x56), at most 8
/// (VGG-16's 14x14 layers, 392 tiles by F(2x2, 3x3)).
constexpr std::size_t winograd_backward_group(const conv3x3_dims& d)
{
    const std::size_t tiles = std::max<std::size_t>(d.pixels() / 16, 1);
    return std::clamp<std::size_t>((winograd_streaming_min_tiles + tiles - 1) / tiles, 1, 8);
}

/// Pieces each image of a direct, im2col or AMX forward pass is cut into so that every thread has
/// work: 1 when there are at least as many images as threads (threads take whole images),
/// otherwise enough groups of output channels for all threads, so batch-1 inference uses every
/// core. (The Winograd forward pass shares tile rows counted across the batch instead.)
inline std::size_t pieces_per_image(std::size_t batch)
{
    const auto threads = static_cast<std::size_t>(vgg::max_threads());
    return batch == 0 || batch >= threads ? 1 : (threads + batch - 1) / batch;
}

/// Whether a bf16 convolution to `out` channels (the layer's, or its input channels for its input
/// gradient) runs on AMX tiles read from a channels-last copy instead of through gemm_bf16.
inline bool uses_amx_conv3x3(const conv3x3_dims& d, std::size_t out)
{
    return d.compute == precision::bf16 && amx_conv3x3_runs(out);
}

/// A forward pass's plan.
struct conv3x3_forward_plan {
    conv3x3_algorithm algorithm = conv3x3_algorithm::none;
    work_split split = work_split::images;
    std::size_t pieces_per_image = 1; ///< work items of an image (channel_groups)

    std::size_t winograd_tile() const { return winograd_tile_of(algorithm); }
};

/// The plan of a forward pass of `batch` images; `kernels_kept`: a winograd_kernel_cache has the
/// transformed kernels of the current weights.
inline conv3x3_forward_plan plan_conv3x3_forward(const conv3x3_dims& d, std::size_t batch, bool kernels_kept = false)
{
    const std::size_t pieces = pieces_per_image(batch);
    const work_split by_images = pieces > 1 ? work_split::channel_groups : work_split::images;
    if (uses_amx_conv3x3(d, d.out_channels))
        return {conv3x3_algorithm::amx, by_images, pieces};
    if (const std::size_t tile = winograd_tile(d, batch, kernels_kept); tile != 0)
        return {winograd_algorithm(tile),
                winograd_splits_targets(d, batch) ? work_split::target_panels : work_split::tile_rows, 1};
    if (d.in_channels == 1)
        return {conv3x3_algorithm::direct, by_images, pieces};
    return {d.compute == precision::bf16 ? conv3x3_algorithm::bf16_gemm : conv3x3_algorithm::im2col_gemm, by_images,
            pieces};
}

/// A backward pass's plan: how each gradient is computed, over groups of how many images.
struct conv3x3_backward_plan {
    conv3x3_algorithm weight_gradient = conv3x3_algorithm::none; ///< with the bias gradient; none: frozen
    conv3x3_algorithm input_gradient = conv3x3_algorithm::none;  ///< none: not asked for
    /// With a frozen layer, the input gradient runs as this forward pass of the adjoint
    /// convolution (conv3x3_dims::adjoint) over the whole batch.
    conv3x3_forward_plan adjoint_pass;
    /// Images whose output gradients a Winograd pass reads together (1 without Winograd).
    std::size_t group = 1;
    /// The first layer's weight gradient from the pooled gradient, summed over the pooling windows
    /// in registers, no full-resolution gradient built (one input channel, no input gradient).
    bool sums_pooling_windows = false;

    bool weight_gradient_by_winograd() const { return winograd_tile_of(weight_gradient) != 0; }
    bool input_gradient_by_winograd() const { return winograd_tile_of(input_gradient) != 0; }
    /// Whether the per-image passes need the im2col column buffer: the weight gradient by im2col
    /// (or the one-channel direct kernel's padded copy), the input gradient folded back by col2im.
    bool needs_columns() const
    {
        return weight_gradient == conv3x3_algorithm::im2col_gemm || weight_gradient == conv3x3_algorithm::direct ||
               input_gradient == conv3x3_algorithm::im2col_gemm;
    }
};

/// The plan of a backward pass: `weight_gradient` false for a frozen layer, `input_gradient`
/// false for the first layer; `from_pooled`: the gradient is of a relu_pooled output.
inline conv3x3_backward_plan plan_conv3x3_backward(const conv3x3_dims& d, std::size_t batch, bool weight_gradient,
                                                   bool input_gradient, bool from_pooled)
{
    conv3x3_backward_plan plan;
    if (!weight_gradient) {
        if (input_gradient) {
            plan.adjoint_pass = plan_conv3x3_forward(with_fastest_products(d.adjoint()), batch);
            plan.input_gradient = plan.adjoint_pass.algorithm;
        }
        return plan;
    }
    const bool bf16 = d.compute == precision::bf16 && d.in_channels > 1;
    const std::size_t weight_tile = winograd_weight_gradient_tile(d), group = winograd_backward_group(d);
    if (d.compute == precision::bf16 && amx_weight_gradient_runs(d.in_channels, d.out_channels))
        plan.weight_gradient = conv3x3_algorithm::amx;
    else if (weight_tile != 0)
        plan.weight_gradient = winograd_algorithm(weight_tile);
    else if (d.in_channels == 1)
        plan.weight_gradient = conv3x3_algorithm::direct;
    else
        plan.weight_gradient = bf16 ? conv3x3_algorithm::bf16_gemm : conv3x3_algorithm::im2col_gemm;
    plan.sums_pooling_windows = from_pooled && d.in_channels == 1 && !input_gradient;
    if (input_gradient) {
        const std::size_t input_tile = winograd_tile(d, group);
        if (uses_amx_conv3x3(d, d.in_channels))
            plan.input_gradient = conv3x3_algorithm::amx;
        else if (bf16)
            plan.input_gradient = conv3x3_algorithm::bf16_gemm;
        else if (input_tile != 0)
            plan.input_gradient = winograd_algorithm(input_tile);
        else
            plan.input_gradient = conv3x3_algorithm::im2col_gemm;
    }
    plan.group = plan.weight_gradient_by_winograd() || plan.input_gradient_by_winograd() ? group : 1;
    return plan;
}

} // namespace vgg::kernels
