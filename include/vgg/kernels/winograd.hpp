#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm.hpp"
#include "vgg/kernels/winograd_rows.hpp"
#include "vgg/kernels/winograd_transforms.hpp"

// The drivers of Winograd F(2x2, 3x3) and F(4x4, 3x3) (transforms in winograd_transforms.hpp):
// for a chunk of tiles (of one image or several), the input windows are transformed, multiplied
// by the transformed kernels (one product per element of the window, through the shared GEMM
// micro-kernel) and transformed back. The weight gradient is in winograd_weight_gradient.hpp.
namespace vgg::kernels {

/// Transformed Winograd kernels up to this size stay in L2 (half of Zen 4's 1 MiB per core).
inline constexpr std::size_t winograd_cached_kernel_bytes = 1 << 20;
/// Transformed Winograd kernels up to this size are read again from L3 by every chunk of tiles at
/// little cost, so their chunks stay short (winograd_forward_chunk_tiles): a chunk's transformed
/// tiles and products, (Tile + 2)^2 x (in + out channels) floats a tile, would not stay in a core's
/// share of L3 at 256 tiles (9.4 MB at 128 -> 128 channels).
inline constexpr std::size_t winograd_l3_kernel_bytes = 4 << 20;
/// Tiles per chunk of a convolution (a forward pass or an input gradient), per output tile side,
/// when the transformed kernels stay in L2 or L3. F(4x4, 3x3) takes 112, a whole number of SIMD
/// batches and of rows of 7, 14, 28 or 56 tiles (sides 28-224), so no product column is padding:
/// 64 padded the 56 tiles of two rows at 112x112 or four at 56x56 to 64.
template <std::size_t Tile>
inline constexpr std::size_t winograd_forward_chunk_tiles = Tile == 2 ? 128 : 112;
/// Tiles per chunk when they do not (VGG-16's layers from 256 channels: 4.7-38 MB of kernels).
/// They are read again from memory for every chunk, so chunks are longer, and span images where
/// an image has fewer tiles (49 at 28x28 by F(4x4, 3x3)).
inline constexpr std::size_t winograd_streaming_chunk_tiles = 256;
/// Floats per cache line, the step of the prefetches of the next channel's rows.
inline constexpr std::size_t cache_line_floats = 64 / sizeof(float);
/// Floats from one transformed element's matrix of `matrix` floats to the next in a chunk's
/// buffers: a cache line more, so that the (Tile + 2)^2 values of a tile, which the transforms
/// store or load together, fall in as many L1 sets (matrices of a multiple of 4 KB put all 36 in
/// one 8-way set).
inline constexpr std::size_t winograd_element_step(std::size_t matrix) { return matrix + cache_line_floats; }
/// Source channels whose transformed kernels are computed before they are packed into panels
/// (a buffer of (Tile + 2)^2 x micro_rows x this many floats: 288 KB by F(4x4, 3x3) with
/// AVX-512's 8-row panels).
inline constexpr std::size_t winograd_kernel_source_block = 256;

/// Target channels of the transformed kernels, padded to whole panels of the micro-kernel.
inline std::size_t winograd_panel_rows(std::size_t to) { return (to + micro_rows - 1) / micro_rows * micro_rows; }

/// The target channels of panels `panels` of `to` targets (the last panel may hold fewer than
/// micro_rows): the ranges winograd_transform_kernels and winograd_conv3x3_rows take.
inline vgg::detail::range winograd_panel_targets(vgg::detail::range panels, std::size_t to)
{
    return {panels.begin * micro_rows, std::min(panels.end * micro_rows, to)};
}

/// Floats of winograd_transform_kernels<Tile>'s result for `from` -> `to` channels.
template <std::size_t Tile>
std::size_t winograd_kernels_size(std::size_t from, std::size_t to)
{
    return (Tile + 2) * (Tile + 2) * from * winograd_panel_rows(to);
}

/// Whether the transformed kernels of a convolution from `from` to `to` channels are read from
/// memory by every chunk of tiles: larger than winograd_l3_kernel_bytes.
template <std::size_t Tile>
bool winograd_kernels_streamed(std::size_t from, std::size_t to)
{
    return winograd_kernels_size<Tile>(from, to) * sizeof(float) > winograd_l3_kernel_bytes;
}

/// Tiles per chunk of a convolution from `from` to `to` channels (see winograd_forward_chunk_tiles).
template <std::size_t Tile>
std::size_t winograd_chunk_tiles(std::size_t from, std::size_t to)
{
    return winograd_kernels_streamed<Tile>(from, to) ? winograd_streaming_chunk_tiles
                                                     : winograd_forward_chunk_tiles<Tile>;
}

/// Transforms 3x3 kernels weight[out][in][3][3] into the (Tile + 2)^2 matrices the Winograd
/// products multiply by, for the target channels `targets` (all are out_channels, or in_channels
/// with `adjoint`; the range starts at a whole panel, a multiple of micro_rows). Each matrix
/// (target x source channels) is stored as gemm_panels reads it: panels of micro_rows targets,
/// each source x micro_rows, the padding targets of the last panel zero. With `adjoint`,
/// transforms the kernels of the convolution that maps an output gradient to the input gradient
/// instead: in and out swapped and each 3x3 window turned by 180 degrees (a 3x3, pad-1
/// convolution's transpose is again one).
template <std::size_t Tile>
void winograd_transform_kernels(const float* weight, std::size_t out_channels, std::size_t in_channels, bool adjoint,
                                vgg::detail::range targets, float* u)
{
    constexpr std::size_t window = Tile + 2, elements = window * window, lanes = float_batch::size;
    using index_batch = xsimd::batch<std::int32_t>;
    const std::size_t to = adjoint ? in_channels : out_channels, from = adjoint ? out_channels : in_channels;
    const std::size_t matrix = from * winograd_panel_rows(to);
    // Tap k of the kernel from source i to target o is weight[o * target_step + i * source_step + k]
    // (8 - k with `adjoint`).
    const std::size_t target_step = adjoint ? 9 : 9 * in_channels, source_step = adjoint ? 9 * in_channels : 9;
    // A batch of sources of one target at a time: their taps are gathered into lanes and
    // transformed in SIMD into rows of a block of sources, which are then packed into the panels by
    // the GEMM's register transposes (copying 16 targets' taps lane by lane and scattering the
    // results in runs of 8 took 1.5-2x as long with the kernels in cache).
    constexpr std::size_t block = winograd_kernel_source_block;
    thread_local aligned_vector<float> buffer;
    float* rows = vgg::detail::reserve(buffer, elements * micro_rows * block); // [xi][target in panel][source]
    alignas(64) std::int32_t offsets[lanes];
    for (std::size_t o0 = targets.begin; o0 < targets.end; o0 += micro_rows) {
        const std::size_t count = std::min(micro_rows, to - o0);
        for (std::size_t i0 = 0; i0 < from; i0 += block) {
            const std::size_t sources = std::min(block, from - i0);
            for (std::size_t s0 = 0; s0 < sources; s0 += lanes) {
                // Lanes past the last source read the last one again; their results are not packed.
                VGG_UNROLL
                for (std::size_t lane = 0; lane < lanes; ++lane)
                    offsets[lane] = static_cast<std::int32_t>(std::min(s0 + lane, sources - 1) * source_step);
                const auto offset = index_batch::load_aligned(offsets);
                for (std::size_t j = 0; j < count; ++j) {
                    const float* taps = weight + (o0 + j) * target_step + i0 * source_step;
                    float_batch g[3][3], transformed[window][window];
                    VGG_UNROLL
                    for (std::size_t k = 0; k < 9; ++k)
                        g[k / 3][k % 3] = float_batch::gather(taps + (adjoint ? 8 - k : k), offset);
                    detail::transform_2d(g, transformed, detail::winograd_transforms<Tile>::kernel);
                    VGG_UNROLL
                    for (std::size_t xi = 0; xi < elements; ++xi)
                        transformed[xi / window][xi % window].store_aligned(rows + (xi * micro_rows + j) * block + s0);
                }
            }
            VGG_UNROLL
            for (std::size_t xi = 0; xi < elements; ++xi)
                detail::pack_left(row_major(rows + xi * micro_rows * block, block), count, sources,
                                  u + xi * matrix + o0 * from + i0 * micro_rows);
        }
    }
}

/// Scratch of one thread for the Winograd passes; each buffer grows to its largest request.
struct winograd_workspace {
    aligned_vector<float> windows, tiles, products, outputs, image_band, gradient_band;
};

/// Whether winograd_conv3x3_image<Tile> handles a convolution: it needs whole output tiles.
constexpr bool winograd_applies(std::size_t tile, std::size_t height, std::size_t width)
{
    return height % tile == 0 && width % tile == 0;
}

/// 3x3, stride-1, pad-1 convolutions by F(Tile x Tile, 3x3) of the tile rows `tile_rows` of a
/// batch of images, counted across the batch (row g is tile row g % (height / Tile) of image
/// g / (height / Tile)): images are in_channels planes of height x width (multiples of Tile)
/// each, u the winograd_transform_kernels<Tile> of the weights, bias may be null. Tile rows are
/// processed in chunks of about winograd_chunk_tiles tiles, which may span images; within a
/// chunk tiles are numbered row after row, and every transform runs over that flat index in
/// whole SIMD batches (a row of 14 tiles would be all tail). Only the output channels `targets`
/// are computed (a range from a whole panel of u on, as winograd_transform_kernels takes).
/// Results leave through epilogue(image, channel, tile_row, tile_row_outputs).
template <std::size_t Tile, class Epilogue>
void winograd_conv3x3_rows(std::size_t in_channels, std::size_t out_channels, std::size_t height, std::size_t width,
                           const float* images, const float* u, const float* bias, winograd_workspace& scratch,
                           vgg::detail::range tile_rows, vgg::detail::range targets, Epilogue&& epilogue)
{
    constexpr std::size_t lanes = float_batch::size, window = Tile + 2, elements = window * window;
    using transforms = detail::winograd_transforms<Tile>;
    const std::size_t tiles_x = width / Tile, tiles_y = height / Tile, image_size = in_channels * height * width;
    const std::size_t panel_rows = winograd_panel_rows(out_channels), rows = winograd_panel_rows(targets.size());
    const std::size_t chunk_rows =
        std::max<std::size_t>(winograd_chunk_tiles<Tile>(in_channels, out_channels) / tiles_x, 1);
    const panel_order order = winograd_kernels_streamed<Tile>(in_channels, out_channels) ? panel_order::whole_panels
                                                                                         : panel_order::depth_blocks;
    // Tiles per chunk (of this call's rows: one image's 49 tiles must not take a 112-tile
    // stride, whose 512-byte rows, touched in two of every eight cache lines, would use a quarter
    // of L1's and L2's sets), padded: whole batches, and room for the batch the row gathers and
    // stores write past their end.
    const std::size_t stride = whole_batches(std::min(chunk_rows, tile_rows.size()) * tiles_x) + lanes;
    const std::size_t tiles_step = winograd_element_step(in_channels * stride),
                      products_step = winograd_element_step(rows * stride);
    using vgg::detail::reserve;
    float* windows = reserve(scratch.windows, elements * stride);
    float* tiles = reserve(scratch.tiles, elements * tiles_step);
    float* products = reserve(scratch.products, elements * products_step);
    float* outputs = reserve(scratch.outputs, Tile * Tile * stride);

    for (std::size_t g0 = tile_rows.begin; g0 < tile_rows.end; g0 += chunk_rows) {
        const std::size_t g1 = std::min(g0 + chunk_rows, tile_rows.end);
        const std::size_t chunk_end = (g1 - g0) * tiles_x;
        for (std::size_t c = 0; c < in_channels; ++c) {
            for (std::size_t g = g0; g < g1; ++g) {
                const float* image = images + g / tiles_y * image_size;
                const std::size_t ty = g % tiles_y;
                if (c + 1 < in_channels) {
                    const float* next = image + ((c + 1) * height + Tile * ty) * width;
                    for (std::size_t at = 0; at < Tile * width; at += cache_line_floats)
                        __builtin_prefetch(next + at);
                }
                // windows[window * r + j][t]: the input pixel at (r, j) of tile t's window, which
                // starts one pixel up and left of the tile; zero in the padding.
                VGG_UNROLL
                for (std::size_t r = 0; r < window; ++r) {
                    float* row = windows + window * r * stride + (g - g0) * tiles_x;
                    const std::size_t y = Tile * ty + r; // one more than the image row: padding
                    if (y == 0 || y > height) {
                        VGG_UNROLL
                        for (std::size_t j = 0; j < window; ++j)
                            std::fill(row + j * stride, row + j * stride + tiles_x, 0.f);
                        continue;
                    }
                    gather_window_columns<Tile>(image + (c * height + y - 1) * width, tiles_x, image + image_size, row,
                                                stride);
                }
            }
            float* transformed = tiles + c * stride;
            for (std::size_t t = 0; t < chunk_end; t += lanes)
                detail::transform_square<window, window>(
                    [&](std::size_t xi) { return float_batch::load_aligned(windows + xi * stride + t); },
                    transforms::input,
                    [&](std::size_t xi, const float_batch& v) { v.store_aligned(transformed + xi * tiles_step + t); });
        }

        VGG_UNROLL
        for (std::size_t xi = 0; xi < elements; ++xi)
            gemm_panels(rows, in_channels, whole_batches(chunk_end),
                        u + (xi * panel_rows + targets.begin) * in_channels, tiles + xi * tiles_step, stride,
                        products + xi * products_step, stride, order);

        for (std::size_t k = targets.begin; k < targets.end; ++k) {
            const float* product = products + (k - targets.begin) * stride;
            const float_batch b(bias ? bias[k] : 0.f);
            for (std::size_t t = 0; t < chunk_end; t += lanes)
                detail::transform_square<window, Tile>(
                    [&](std::size_t xi) { return float_batch::load_aligned(product + xi * products_step + t); },
                    transforms::output,
                    [&](std::size_t p, const float_batch& y) { (y + b).store_aligned(outputs + p * stride + t); });
            for (std::size_t g = g0; g < g1; ++g)
                epilogue(g / tiles_y, k, g % tiles_y, tile_row_outputs{outputs + (g - g0) * tiles_x, stride, Tile});
        }
    }
}

} // namespace vgg::kernels
