#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv3x3_amx.hpp"
#include "vgg/kernels/conv3x3_direct.hpp"
#include "vgg/kernels/elementwise.hpp"
#include "vgg/kernels/gemm.hpp"
#include "vgg/kernels/im2col.hpp"
#include "vgg/kernels/maxpool.hpp"
#include "vgg/kernels/winograd.hpp"

namespace vgg::kernels {

/// Sizes of a 3x3, stride-1, pad-1 convolution.
struct conv3x3_dims {
    std::size_t in_channels, out_channels, height, width;
    /// The products' arithmetic. bf16 runs on AMX from channels-last copies where the CPU has AMX
    /// and the output channels come in 16s (the weight gradient: both sides; conv3x3_amx.hpp),
    /// otherwise as im2col + gemm_bf16; never by Winograd, whose transforms would round in bf16
    /// what fp32 keeps exact (layers ask with_fastest_products whether fp32 Winograd is faster).
    vgg::precision compute = vgg::precision::fp32;
    constexpr std::size_t pixels() const { return height * width; }
    constexpr std::size_t patch() const { return in_channels * 9; }
    std::size_t in_size() const { return in_channels * pixels(); }
    std::size_t out_size() const { return out_channels * pixels(); }
    /// Multiplies and adds of one image's forward pass (the backward pass takes about twice as many).
    std::size_t forward_operations() const { return 2 * out_channels * patch() * pixels(); }
    /// Floats of one image's im2col columns, or of its padded copy when it has one channel.
    std::size_t columns_size() const { return std::max(patch() * pixels(), (height + 2) * (width + 2)); }
};

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
/// F(4x4, 3x3), 2 for F(2x2, 3x3), or 0 for im2col + GEMM. The larger tile goes first: 2.25
/// multiplies per output and channel pair instead of 4. With `kernels_kept` (a winograd_kernel_cache
/// has them) no batch is too small for it: only reading the kernels is left, which pays at one
/// image.
constexpr std::size_t winograd_tile(const conv3x3_dims& d, std::size_t batch, bool kernels_kept = false)
{
    if (!winograd_may_pay(d))
        return 0;
    for (const std::size_t tile : {4, 2}) {
        const std::size_t tiles = batch * d.pixels() / (tile * tile);
        if (winograd_applies(tile, d.height, d.width) &&
            (kernels_kept || winograd_kernel_bytes(tile, d) <= winograd_cached_kernel_bytes || tiles >= winograd_streaming_min_tiles ||
             (tile == 2 && winograd_splits_targets(d, batch) && tiles >= winograd_split_streaming_min_tiles)))
            return tile;
    }
    return 0;
}

/// The output tile side of the Winograd algorithm the weight gradient runs by (0: im2col + GEMM):
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

/// im2col_3x3 of image n of x, read from the image as gemm_bf16 packs it.
inline image_columns image_columns_of(const conv3x3_dims& d, const float* x, std::size_t n)
{
    return {x + n * d.in_size(), d.in_channels, d.height, d.width};
}

/// Whether a pass stores im2col columns (bf16 reads them from the image as it packs them; one
/// input channel runs directly and uses the buffer for a padded copy).
inline bool stores_columns(const conv3x3_dims& d) { return d.compute == precision::fp32 || d.in_channels == 1; }

/// Whether a bf16 convolution to `out` channels (the layer's, or its input channels for its input
/// gradient) runs on AMX tiles read from a channels-last copy instead of through gemm_bf16.
inline bool uses_amx_conv3x3(const conv3x3_dims& d, std::size_t out)
{
    return d.compute == precision::bf16 && amx_conv3x3_runs(out);
}

/// The kernels of the input gradient, [in][out][3][3]: weight [out][in][3][3] with the channels
/// swapped and each 3x3 kernel turned by 180 degrees, so that dx = conv3x3(dy) with them.
inline void adjoint_kernels(const float* weight, std::size_t out_channels, std::size_t in_channels, float* adjoint)
{
    for (std::size_t o = 0; o < out_channels; ++o)
        for (std::size_t c = 0; c < in_channels; ++c)
            for (std::size_t tap = 0; tap < 9; ++tap)
                adjoint[(c * out_channels + o) * 9 + 8 - tap] = weight[(o * in_channels + c) * 9 + tap];
}

/// Buffers of one thread that outlive a call, so that layers do not allocate and fault in their
/// workspaces on every batch; each grows to its largest request (over all layers).
struct thread_buffers {
    winograd_workspace winograd;
    aligned_vector<float> kernels, columns, image, accumulators, sums;
    aligned_vector<float> kept_gradients; ///< output gradients of a group of images, for one Winograd input-gradient pass
    aligned_vector<std::uint16_t> packed_weights, staged_image, staged_gradient; ///< the AMX convolution's
    aligned_vector<float> adjoint, output_gradients; ///< of an input gradient computed alone
};
inline thread_buffers& this_thread_buffers()
{
    thread_local thread_buffers buffers;
    return buffers;
}

/// Operations of one kernel's F(Tile x Tile, 3x3) transform (G g G^T: (Tile + 2) x 3 x 3, then
/// (Tile + 2)^2 x 3 multiply-adds).
template <std::size_t Tile>
inline constexpr std::size_t winograd_kernel_transform_operations = 2 * (Tile + 2) * 3 * (Tile + 5);

/// winograd_transform_kernels split over threads by panels of target channels: with a small batch it
/// would otherwise be a serial share of the pass (16,384 kernel pairs for 128 -> 128 channels).
template <std::size_t Tile>
void winograd_transform_kernels_in_parallel(const conv3x3_dims& d, const float* weight, bool adjoint, float* u)
{
    const std::size_t to = adjoint ? d.in_channels : d.out_channels, from = adjoint ? d.out_channels : d.in_channels;
    vgg::detail::parallel_ranges(winograd_panel_rows(to) / micro_rows,
                                 winograd_kernel_transform_operations<Tile> * from * micro_rows,
                                 [&](std::size_t, std::size_t, vgg::detail::range panels) {
                                     winograd_transform_kernels<Tile>(weight, d.out_channels, d.in_channels, adjoint,
                                                                      winograd_panel_targets(panels, to), u);
                                 });
}

/// Floats from which same_bytes and copy_in_parallel split over threads (as many operations as
/// vgg::detail::parallel_min_operations): below it waking the other thread costs more than it
/// saves, and every evaluation pass compares each kept layer's weights (the seed's 128 -> 128
/// layers: 147K floats each).
inline constexpr std::size_t parallel_copy_min_floats = 1 << 17;

/// Whether `count` floats at a and b are the same bytes, the comparison split over threads.
inline bool same_bytes(const float* a, const float* b, std::size_t count)
{
    std::atomic<bool> differ{false};
    vgg::detail::parallel_ranges(count, vgg::detail::parallel_min_operations / parallel_copy_min_floats,
                                 [&](std::size_t, std::size_t, vgg::detail::range part) {
        if (std::memcmp(a + part.begin, b + part.begin, part.size() * sizeof(float)) != 0)
            differ.store(true, std::memory_order_relaxed);
    });
    return !differ.load(std::memory_order_relaxed);
}

/// Copies `count` floats from `from` to `to`, split over threads (one thread streams about half
/// the memory bandwidth of two).
inline void copy_in_parallel(const float* from, std::size_t count, float* to)
{
    vgg::detail::parallel_ranges(count, vgg::detail::parallel_min_operations / parallel_copy_min_floats,
                                 [&](std::size_t, std::size_t, vgg::detail::range part) {
        std::copy(from + part.begin, from + part.end, to + part.begin);
    });
}

/// The transformed kernels of one convolution, kept between its forward passes (the layers keep
/// them in evaluation, when the weights rarely change) with a copy of the weights they are made
/// from, and made again only when the weights differ from it byte for byte, or a pass runs by
/// another tile. A small batch would otherwise transform every kernel for a few tiles, each
/// transform as many operations as the kernel's products with 4.5 tiles (F(4x4, 3x3)) or 5
/// (F(2x2, 3x3)): VGG-16's 28x28 and 14x14 layers have 49 tiles an image.
class winograd_kernel_cache {
public:
    /// Whether it has a copy of `weight` already; if not, it takes one, and makes the kernels of
    /// it when next asked. Called once a pass, before the pass picks its tile (winograd_forward_tile).
    bool keep_weights(const conv3x3_dims& d, const float* weight)
    {
        const std::size_t count = d.out_channels * d.patch();
        if (weights_.size() == count && same_bytes(weights_.data(), weight, count))
            return true;
        tile_ = 0;
        weights_.resize(count);
        copy_in_parallel(weight, count, weights_.data());
        return false;
    }

    /// winograd_transform_kernels<Tile> of the kept weights (all output channels).
    template <std::size_t Tile>
    const float* kernels(const conv3x3_dims& d)
    {
        if (tile_ != Tile) {
            tile_ = 0; // none until they are made
            kernels_.resize(winograd_kernels_size<Tile>(d.in_channels, d.out_channels));
            winograd_transform_kernels_in_parallel<Tile>(d, weights_.data(), false, kernels_.data());
            tile_ = Tile;
        }
        return kernels_.data();
    }

private:
    aligned_vector<float> weights_, kernels_;
    std::size_t tile_ = 0; ///< the tile kernels_ is for; 0: none is made of weights_
};

/// The Winograd tile of a forward pass (winograd_tile; 0: none) with kernels kept in `kept`, if
/// any. Where kept kernels would let Winograd run, `kept` first takes a copy of changed weights;
/// then the pass runs as without it, and only passes with the weights it has copied take the kept
/// kernels' rule: after every training step, the evaluation pass costs what it did without, plus
/// the comparison and the copy.
inline std::size_t winograd_forward_tile(const conv3x3_dims& d, std::size_t batch, const float* weight,
                                         winograd_kernel_cache* kept)
{
    const bool kept_current = kept && winograd_tile(d, batch, true) != 0 && kept->keep_weights(d, weight);
    return winograd_tile(d, batch, kept_current);
}

/// Winograd F(Tile x Tile, 3x3) convolution of every image of a batch, split over threads by
/// tile rows counted across the batch (so a small batch, even one image, uses every thread), or by
/// panels of output channels (winograd_splits_targets), each thread transforming its own kernels
/// (unless `kept` keeps them); epilogue(n, channel, tile_row, outputs) receives image n's results.
template <std::size_t Tile, class Epilogue>
void winograd_forward_images(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                             const float* bias, winograd_kernel_cache* kept, Epilogue&& epilogue)
{
    // The kernels to transform in this pass, unless `kept` has them.
    float* transformed = kept ? nullptr
                              : vgg::detail::reserve(this_thread_buffers().kernels,
                                                     winograd_kernels_size<Tile>(d.in_channels, d.out_channels));
    const float* u = kept ? kept->kernels<Tile>(d) : transformed;
    const std::size_t tile_rows = d.height / Tile;
    if (winograd_splits_targets(d, batch)) {
        const std::size_t panels = winograd_panel_rows(d.out_channels) / micro_rows;
        vgg::detail::parallel_ranges(panels, batch * d.forward_operations() / panels,
                                     [&](std::size_t, std::size_t, vgg::detail::range own) {
            const vgg::detail::range targets = winograd_panel_targets(own, d.out_channels);
            if (transformed)
                winograd_transform_kernels<Tile>(weight, d.out_channels, d.in_channels, false, targets, transformed);
            winograd_conv3x3_rows<Tile>(d.in_channels, d.out_channels, d.height, d.width, x, u, bias,
                                        this_thread_buffers().winograd, {0, batch * tile_rows}, targets, epilogue);
        });
        return;
    }
    if (transformed)
        winograd_transform_kernels_in_parallel<Tile>(d, weight, false, transformed);
    vgg::detail::parallel_ranges(batch * tile_rows, d.forward_operations() / tile_rows,
                                 [&](std::size_t, std::size_t, vgg::detail::range rows) {
                                     winograd_conv3x3_rows<Tile>(d.in_channels, d.out_channels, d.height, d.width, x, u,
                                                                 bias, this_thread_buffers().winograd, rows,
                                                                 {0, d.out_channels}, epilogue);
                                 });
}

/// winograd_forward_images by F(tile x tile, 3x3), the tile winograd_forward_tile chose.
template <class Epilogue>
void winograd_forward_images(std::size_t tile, const conv3x3_dims& d, std::size_t batch, const float* x,
                             const float* weight, const float* bias, winograd_kernel_cache* kept, Epilogue&& epilogue)
{
    with_winograd_tile(tile, [&]<std::size_t Tile>() {
        winograd_forward_images<Tile>(d, batch, x, weight, bias, kept, epilogue);
    });
}

/// The forward pass where Winograd does not apply: W * im2col(x_n) + b for every image n of a
/// batch (directly, without im2col, for one input channel). Threads take whole images, each
/// with its own column buffer (a whole batch of columns would be hundreds of MB) and scratch,
/// or, for small batches, groups of output channels. `output(n, image_buffer)` says where image n's
/// result goes; `finish(n, result, channels)` runs right after a group of channels is written,
/// while it is still in cache.
template <class Output, class Finish>
void conv3x3_forward_images(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                            const float* bias, Output&& output, Finish&& finish)
{
    const std::size_t pieces = pieces_per_image(batch);
    vgg::detail::parallel_ranges(batch * pieces, d.forward_operations() / pieces, [&](std::size_t, std::size_t, vgg::detail::range work) {
        thread_buffers& buffers = this_thread_buffers();
        float* columns = stores_columns(d) ? vgg::detail::reserve(buffers.columns, d.columns_size()) : nullptr;
        for (std::size_t item = work.begin; item < work.end; ++item) {
            const std::size_t n = item / pieces;
            const auto channels = vgg::detail::partition(d.out_channels, pieces, item % pieces);
            float* result = output(n, buffers.image);
            float* first = result + channels.begin * d.pixels();
            if (d.in_channels == 1) {
                conv3x3_single_channel(x + n * d.in_size(), d.height, d.width, weight + channels.begin * 9,
                                       bias + channels.begin, channels.size(), columns, first);
            } else {
                // Start from the bias and accumulate, which saves a zeroing pass.
                for (std::size_t o = 0; o < channels.size(); ++o)
                    std::fill(first + o * d.pixels(), first + (o + 1) * d.pixels(), bias[channels.begin + o]);
                const auto w = row_major(weight + channels.begin * d.patch(), d.patch());
                if (d.compute == precision::bf16) {
                    gemm_bf16(best_bf16_kernel(), channels.size(), d.pixels(), d.patch(), w, image_columns_of(d, x, n),
                              first, d.pixels(), gemm_update::accumulate);
                } else {
                    im2col_3x3(x + n * d.in_size(), d.in_channels, d.height, d.width, columns);
                    gemm(channels.size(), d.pixels(), d.patch(), w, row_major(columns, d.pixels()), first, d.pixels(),
                         gemm_update::accumulate);
                }
            }
            finish(n, result, channels);
        }
    });
}

/// The forward pass of a bf16 convolution on AMX (uses_amx_conv3x3): each image is copied
/// channels-last once and convolved from the copy; `output(n)` says where image n's result goes
/// (an amx_conv3x3_output). Threads take whole images or, for small batches, groups of 16 output
/// channels.
template <class Output>
void amx_conv3x3_forward_images(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                                const float* bias, Output&& output)
{
    const amx_conv3x3_layout layout{d.in_channels, d.out_channels, d.height, d.width};
    std::uint16_t* packed = vgg::detail::reserve(this_thread_buffers().packed_weights, layout.packed_weights_size());
    pack_amx_conv3x3_weights(layout, weight, packed);
    const std::size_t pieces = pieces_per_image(batch);
    vgg::detail::parallel_ranges(batch * pieces, d.forward_operations() / pieces, [&](std::size_t, std::size_t, vgg::detail::range work) {
        thread_buffers& buffers = this_thread_buffers();
        for (std::size_t item = work.begin; item < work.end; ++item) {
            const std::size_t n = item / pieces;
            std::uint16_t* staged = vgg::detail::reserve(buffers.staged_image, layout.staged_size());
            stage_channels_last(layout, x + n * d.in_size(), staged);
            amx_conv3x3_image(layout, staged, packed, bias,
                              vgg::detail::partition(layout.output_groups(), pieces, item % pieces), output(n));
        }
    });
}

/// y = conv(x), optionally followed by ReLU in the same pass; a Winograd pass takes its
/// transformed kernels from `kept` when there is one.
inline void conv3x3_forward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                            const float* bias, float* y, bool fuse_relu, winograd_kernel_cache* kept = nullptr)
{
    require_precision(d.compute);
    if (uses_amx_conv3x3(d, d.out_channels))
        return amx_conv3x3_forward_images(d, batch, x, weight, bias, [&](std::size_t n) {
            return amx_conv3x3_output{.planes = y + n * d.out_size(), .relu = fuse_relu};
        });
    if (const std::size_t tile = winograd_forward_tile(d, batch, weight, kept); tile != 0)
        return winograd_forward_images(tile, d, batch, x, weight, bias, kept,
                                       [&](std::size_t n, std::size_t k, std::size_t ty, const tile_row_outputs& outputs) {
                                           store_tile_row(outputs, d.width,
                                                          y + n * d.out_size() + (k * d.height + outputs.tile * ty) * d.width,
                                                          fuse_relu);
                                       });
    conv3x3_forward_images(
        d, batch, x, weight, bias, [&](std::size_t n, aligned_vector<float>&) { return y + n * d.out_size(); },
        [&](std::size_t, float* result, vgg::detail::range channels) {
            if (fuse_relu)
                relu_inplace(result + channels.begin * d.pixels(), channels.size() * d.pixels());
        });
}

/// pooled = maxpool2x2(relu(conv(x))) with the pool's arg-max, computed per image so the
/// full-resolution output is never stored. ReLU and max commute, so the pool runs first and
/// ReLU touches only a quarter of the values. `kept` as for conv3x3_forward.
inline void conv3x3_relu_pool_forward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                                      const float* bias, float* pooled, std::uint8_t* argmax,
                                      winograd_kernel_cache* kept = nullptr)
{
    require_precision(d.compute);
    const std::size_t pooled_size = d.out_size() / 4;
    if (uses_amx_conv3x3(d, d.out_channels))
        return amx_conv3x3_forward_images(d, batch, x, weight, bias, [&](std::size_t n) {
            return amx_conv3x3_output{.pooled = pooled + n * pooled_size, .argmax = argmax + n * pooled_size};
        });
    if (const std::size_t tile = winograd_forward_tile(d, batch, weight, kept); tile != 0) {
        // A Winograd tile is one pooling window or four whole ones: pool straight from the tile outputs.
        const std::size_t pooled_width = d.width / 2;
        return winograd_forward_images(
            tile, d, batch, x, weight, bias, kept, [&](std::size_t n, std::size_t k, std::size_t ty, const tile_row_outputs& outputs) {
                const std::size_t at = n * pooled_size + (k * d.height + outputs.tile * ty) / 2 * pooled_width;
                pool_tile_row(outputs, d.width, pooled + at, argmax + at);
            });
    }
    if (d.in_channels == 1) { // pooled in registers, straight from the direct convolution
        const std::size_t pieces = pieces_per_image(batch), plane = d.pixels() / 4;
        vgg::detail::parallel_ranges(batch * pieces, d.forward_operations() / pieces, [&](std::size_t, std::size_t, vgg::detail::range work) {
            float* split = vgg::detail::reserve(this_thread_buffers().columns, detail::split_columns_size(d.height, d.width));
            for (std::size_t item = work.begin; item < work.end; ++item) {
                const std::size_t n = item / pieces, at = n * pooled_size;
                const auto channels = vgg::detail::partition(d.out_channels, pieces, item % pieces);
                conv3x3_single_channel_relu_pool(x + n * d.in_size(), d.height, d.width, weight + channels.begin * 9,
                                                 bias + channels.begin, channels.size(), split,
                                                 pooled + at + channels.begin * plane, argmax + at + channels.begin * plane);
            }
        });
        return;
    }
    conv3x3_forward_images(
        d, batch, x, weight, bias,
        [&](std::size_t, aligned_vector<float>& image_buffer) {
            image_buffer.resize(d.out_size());
            return image_buffer.data();
        },
        [&](std::size_t n, float* result, vgg::detail::range channels) {
            maxpool2x2_planes(channels.begin, channels.end, d.height, d.width, result, pooled + n * pooled_size,
                              argmax + n * pooled_size);
            const std::size_t plane = d.pixels() / 4;
            relu_inplace(pooled + n * pooled_size + channels.begin * plane, channels.size() * plane);
        });
}

/// dweight and dbias (overwritten) = the sums of per-thread accumulators: each thread runs
/// accumulate(images, buffers, accumulators) on its share of the batch, with weight size +
/// out_channels zeroed floats of its own (the weight gradient, then the bias gradient), and the
/// sums are taken in thread order, so a given thread count is reproducible. The threads share the
/// weight gradient's summing (VGG-16's 512-channel layers: 9.4 MB a thread).
template <class Accumulate>
void sum_gradients_over_threads(const conv3x3_dims& d, std::size_t batch, std::size_t work_per_image, float* dweight,
                                float* dbias, Accumulate&& accumulate)
{
    const std::size_t weight_size = d.out_channels * d.patch(), size = weight_size + d.out_channels;
    std::vector<const float*> partial(static_cast<std::size_t>(vgg::max_threads()));
    std::size_t used_threads = 1;
    vgg::detail::parallel_ranges(batch, work_per_image, [&](std::size_t thread, std::size_t threads, vgg::detail::range images) {
        if (thread == 0)
            used_threads = threads;
        thread_buffers& buffers = this_thread_buffers();
        buffers.accumulators.assign(size, 0.f);
        partial[thread] = buffers.accumulators.data();
        accumulate(images, buffers, buffers.accumulators.data());
    });
    // Elements [begin, end) of the sums go to target[0, end - begin).
    const auto sum_partials = [&](std::size_t begin, std::size_t end, float* target) {
        std::copy(partial[0] + begin, partial[0] + end, target);
        for (std::size_t t = 1; t < used_threads; ++t)
            for (std::size_t i = begin; i < end; ++i)
                target[i - begin] += partial[t][i];
    };
    vgg::detail::parallel_ranges(weight_size, used_threads, [&](std::size_t, std::size_t, vgg::detail::range part) {
        sum_partials(part.begin, part.end, dweight + part.begin);
    });
    sum_partials(weight_size, size, dbias);
}

/// The input gradient alone, for a frozen layer: dx = conv3x3(g) with the adjoint kernels, by the
/// forward pass's fastest path, where g is the batch's output gradient, image n's as
/// `gradient(n, image_buffer)` gives it (gathered into one batch when built per image).
template <class Gradient>
void conv3x3_input_gradient_images(const conv3x3_dims& d, std::size_t batch, const float* weight, float* dx,
                                   Gradient&& gradient)
{
    thread_buffers& caller = this_thread_buffers();
    float* adjoint = vgg::detail::reserve(caller.adjoint, 9 * d.in_channels * d.out_channels);
    adjoint_kernels(weight, d.out_channels, d.in_channels, adjoint);
    float* gathered = vgg::detail::reserve(caller.output_gradients, batch * d.out_size());
    vgg::detail::parallel_ranges(batch, d.out_size(), [&](std::size_t, std::size_t, vgg::detail::range images) {
        for (std::size_t n = images.begin; n < images.end; ++n) {
            const float* g = gradient(n, this_thread_buffers().image);
            std::copy(g, g + d.out_size(), gathered + n * d.out_size());
        }
    });
    const aligned_vector<float> no_bias(d.in_channels, 0.f);
    conv3x3_forward(with_fastest_products({d.out_channels, d.in_channels, d.height, d.width, d.compute}), batch,
                    gathered, adjoint, no_bias.data(), dx, false);
}

/// Gradients of a batch. `gradient(n, image_buffer)` gives image n's output gradient (out_size
/// floats), possibly built in the thread's image buffer. dweight and dbias are overwritten with
/// the sums over the batch; dx (if not null) with the input gradient. With dweight null (a frozen
/// layer) only dx is computed. Each thread sums its
/// images into its own accumulators, reduced in thread order, so a given thread count is
/// reproducible.
template <class Gradient>
void conv3x3_backward_images(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                             float* dweight, float* dbias, float* dx, Gradient&& gradient)
{
    require_precision(d.compute);
    if (!dweight)
        return dx ? conv3x3_input_gradient_images(d, batch, weight, dx, gradient) : void();
    const std::size_t weight_size = d.out_channels * d.patch();
    // Both run over groups of images: the input gradient by the forward pass's rule, from the
    // group's output gradients (kept), so that large transformed kernels are streamed over enough
    // tiles; the weight gradient by Winograd from the group's images and output gradients.
    const std::size_t dweight_tile = winograd_weight_gradient_tile(d);
    const std::size_t group_size = winograd_backward_group(d);
    const std::size_t dx_tile = dx ? winograd_tile(d, group_size) : 0;
    const std::size_t group = dx_tile || dweight_tile ? group_size : 1;
    const bool bf16 = !stores_columns(d); // products of images with more than one channel in bf16
    const float* u = nullptr;             // Winograd's transformed adjoint kernels, or bf16's adjoint kernels
    if (dx_tile) {
        with_winograd_tile(dx_tile, [&]<std::size_t Tile>() {
            float* adjoint = vgg::detail::reserve(this_thread_buffers().kernels,
                                                  winograd_kernels_size<Tile>(d.out_channels, d.in_channels));
            winograd_transform_kernels_in_parallel<Tile>(d, weight, true, adjoint);
            u = adjoint;
        });
    } else if (bf16 && dx) {
        float* adjoint = vgg::detail::reserve(this_thread_buffers().kernels, 9 * d.in_channels * d.out_channels);
        adjoint_kernels(weight, d.out_channels, d.in_channels, adjoint);
        u = adjoint;
    }
    // The input gradient on AMX: the adjoint convolution, from out_channels to in_channels.
    const bool amx_dx = dx && uses_amx_conv3x3(d, d.in_channels);
    const amx_conv3x3_layout adjoint_layout{d.out_channels, d.in_channels, d.height, d.width};
    const std::uint16_t* packed_adjoint = nullptr;
    if (amx_dx) {
        std::uint16_t* packed = vgg::detail::reserve(this_thread_buffers().packed_weights, adjoint_layout.packed_weights_size());
        pack_amx_conv3x3_weights(adjoint_layout, u, packed);
        packed_adjoint = packed;
    }
    // The weight gradient on AMX, from bf16 copies of the image and the gradient.
    const bool amx_dweight = d.compute == precision::bf16 && amx_weight_gradient_runs(d.in_channels, d.out_channels);
    const amx_weight_gradient_layout weight_layout{d.in_channels, d.out_channels, d.height, d.width};
    // The column buffer, for each of the two gradients that runs through it: the weight gradient by
    // im2col (or the one-channel direct kernel's padded copy), the input gradient by its column
    // gradient folded back (col2im). Each gradient chooses its path on its own, so either may need it.
    const bool columns_for_weight_gradient = !dweight_tile && !amx_dweight && !bf16;
    const bool columns_for_input_gradient = dx && !dx_tile && !amx_dx && !bf16;
    sum_gradients_over_threads(d, batch, 3 * d.forward_operations(), dweight, dbias,
                               [&](vgg::detail::range images, thread_buffers& buffers, float* acc) {
        Eigen::Map<Eigen::VectorXf> db(acc + weight_size, static_cast<Eigen::Index>(d.out_channels));
        float* columns = columns_for_weight_gradient || columns_for_input_gradient
                             ? vgg::detail::reserve(buffers.columns, d.columns_size())
                             : nullptr;
        if (dweight_tile)
            with_winograd_tile(dweight_tile, [&]<std::size_t Tile>() {
                vgg::detail::reserve(buffers.sums, winograd_weight_sums_size<Tile>(d.in_channels, d.out_channels));
            });
        if (amx_dweight)
            buffers.sums.assign(weight_layout.sums_size(), 0.f);
        for (std::size_t n0 = images.begin; n0 < images.end; n0 += group) {
            const std::size_t n1 = std::min(n0 + group, images.end);
            // The group's output gradients for the Winograd passes: one image's is read where it is
            // (in dy or the image buffer, unchanged until the next image), more are copied together.
            const bool keeps = (dx_tile || dweight_tile) && n1 - n0 > 1;
            float* kept = keeps ? vgg::detail::reserve(buffers.kept_gradients, (n1 - n0) * d.out_size()) : nullptr;
            const float* group_gradients = kept;
            for (std::size_t n = n0; n < n1; ++n) {
                const float* g = gradient(n, buffers.image);
                if (keeps)
                    std::copy(g, g + d.out_size(), kept + (n - n0) * d.out_size());
                else
                    group_gradients = g;
                if (amx_dweight) {
                    // One pass over g gives the weight gradient's copy, the input gradient's and the
                    // bias gradient; the image's copy then takes the buffer the input gradient read.
                    std::uint16_t* pairs = vgg::detail::reserve(buffers.staged_gradient, weight_layout.gradient_size());
                    std::uint16_t* staged = vgg::detail::reserve(
                        buffers.staged_image, std::max(weight_layout.image_size(), amx_dx ? adjoint_layout.staged_size() : 0));
                    stage_gradient(weight_layout, g, pairs, amx_dx ? staged : nullptr, acc + weight_size);
                    if (amx_dx)
                        amx_conv3x3_image(adjoint_layout, staged, packed_adjoint, nullptr,
                                          {0, adjoint_layout.output_groups()}, {.planes = dx + n * d.in_size()});
                    stage_image_planes(weight_layout, x + n * d.in_size(), staged);
                    amx_accumulate_weight_gradient(weight_layout, staged, pairs, buffers.sums.data());
                    continue;
                }
                if (!dweight_tile) {
                    if (d.in_channels == 1) {
                        conv3x3_single_channel_weight_gradient(x + n * d.in_size(), d.height, d.width, g,
                                                               d.out_channels, columns, acc);
                    } else if (bf16) {
                        gemm_bf16(best_bf16_kernel(), d.out_channels, d.patch(), d.pixels(), row_major(g, d.pixels()),
                                  image_columns_of(d, x, n).transposed(), acc, d.patch(), gemm_update::accumulate);
                    } else {
                        im2col_3x3(x + n * d.in_size(), d.in_channels, d.height, d.width, columns);
                        gemm(d.out_channels, d.patch(), d.pixels(), row_major(g, d.pixels()),
                             row_major(columns, d.pixels()).transposed(), acc, d.patch(), gemm_update::accumulate);
                    }
                    db += view(g, d.out_channels, d.pixels()).rowwise().sum();
                }
                if (amx_dx) {
                    std::uint16_t* staged = vgg::detail::reserve(buffers.staged_image, adjoint_layout.staged_size());
                    stage_channels_last(adjoint_layout, g, staged);
                    amx_conv3x3_image(adjoint_layout, staged, packed_adjoint, nullptr,
                                      {0, adjoint_layout.output_groups()}, {.planes = dx + n * d.in_size()});
                } else if (dx && bf16) {
                    // The input gradient is the convolution of g with the adjoint kernels: no column
                    // matrix to write and fold back.
                    gemm_bf16(best_bf16_kernel(), d.in_channels, d.pixels(), 9 * d.out_channels,
                              row_major(u, 9 * d.out_channels), image_columns{g, d.out_channels, d.height, d.width},
                              dx + n * d.in_size(), d.pixels(), gemm_update::overwrite);
                } else if (dx && !dx_tile) {
                    // The columns are no longer needed: reuse them for the column gradient w^T g.
                    gemm(d.patch(), d.pixels(), d.out_channels, row_major(weight, d.patch()).transposed(),
                         row_major(g, d.pixels()), columns, d.pixels(), gemm_update::overwrite);
                    col2im_3x3(columns, d.in_channels, d.height, d.width, dx + n * d.in_size());
                }
            }
            if (dweight_tile)
                with_winograd_tile(dweight_tile, [&]<std::size_t Tile>() {
                    const std::size_t tiles = (n1 - n0) * (d.height / Tile) * (d.width / Tile);
                    winograd_accumulate_weight_gradient<Tile>(
                        d.in_channels, d.out_channels, d.height, d.width, n1 - n0, x + n0 * d.in_size(), group_gradients,
                        buffers.winograd, buffers.sums.data(), winograd_gradient_chunk<Tile>(d.in_channels, d.out_channels, tiles),
                        n0 == images.begin ? gemm_update::overwrite : gemm_update::accumulate, acc + weight_size);
                });
            if (dx_tile)
                with_winograd_tile(dx_tile, [&]<std::size_t Tile>() {
                    winograd_conv3x3_rows<Tile>(
                        d.out_channels, d.in_channels, d.height, d.width, group_gradients, u, nullptr, buffers.winograd,
                        {0, (n1 - n0) * d.height / Tile}, {0, d.in_channels},
                        [&](std::size_t n, std::size_t c, std::size_t ty, const tile_row_outputs& outputs) {
                            store_tile_row(outputs, d.width, dx + ((n0 + n) * d.in_channels + c) * d.pixels() + Tile * ty * d.width,
                                           false);
                        });
                });
        }
        if (dweight_tile && images.size() > 0) // a thread without images has no sums
            with_winograd_tile(dweight_tile, [&]<std::size_t Tile>() {
                winograd_weight_gradient<Tile>(buffers.sums.data(), d.in_channels, d.out_channels, acc);
            });
        if (amx_dweight)
            add_weight_gradient_sums(weight_layout, buffers.sums.data(), acc);
    });
}

/// Backward of conv(x) with output gradient dy; with relu_output not null, of relu(conv(x)),
/// the ReLU mask applied per image on the way in.
inline void conv3x3_backward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* dy,
                             const float* weight, float* dweight, float* dbias, float* dx,
                             const float* relu_output = nullptr)
{
    conv3x3_backward_images(d, batch, x, weight, dweight, dbias, dx,
                            [&](std::size_t n, aligned_vector<float>& image_buffer) -> const float* {
                                const float* g = dy + n * d.out_size();
                                if (!relu_output)
                                    return g;
                                image_buffer.assign(g, g + d.out_size());
                                relu_backward_inplace(image_buffer.data(), relu_output + n * d.out_size(), d.out_size());
                                return image_buffer.data();
                            });
}

/// Backward of conv3x3_relu_pool_forward: each pooled gradient goes to its window's arg-max
/// when the pooled value passed the ReLU, built per image in the thread's image buffer.
inline void conv3x3_relu_pool_backward(const conv3x3_dims& d, std::size_t batch, const float* x,
                                       const float* dpooled, const float* pooled, const std::uint8_t* argmax,
                                       const float* weight, float* dweight, float* dbias, float* dx)
{
    const std::size_t pooled_size = d.out_size() / 4;
    if (d.in_channels == 1 && !dx && dweight) // the first layer: sums over pooling windows, no full-resolution gradient
        return sum_gradients_over_threads(d, batch, 2 * d.forward_operations(), dweight, dbias,
                                          [&](vgg::detail::range images, thread_buffers& buffers, float* acc) {
            float* split = vgg::detail::reserve(buffers.columns, detail::split_columns_size(d.height, d.width));
            for (std::size_t n = images.begin; n < images.end; ++n)
                conv3x3_single_channel_relu_pool_weight_gradient(
                    x + n * d.in_size(), d.height, d.width, dpooled + n * pooled_size, pooled + n * pooled_size,
                    argmax + n * pooled_size, d.out_channels, split, acc, acc + d.out_channels * 9);
        });
    conv3x3_backward_images(d, batch, x, weight, dweight, dbias, dx,
                            [&](std::size_t n, aligned_vector<float>& image_buffer) -> const float* {
                                image_buffer.resize(d.out_size() + pooled_size);
                                float* masked = image_buffer.data() + d.out_size();
                                std::copy(dpooled + n * pooled_size, dpooled + (n + 1) * pooled_size, masked);
                                relu_backward_inplace(masked, pooled + n * pooled_size, pooled_size);
                                maxpool2x2_planes_backward(0, d.out_channels, d.height, d.width, masked,
                                                           argmax + n * pooled_size, image_buffer.data());
                                return image_buffer.data();
                            });
}

} // namespace vgg::kernels
