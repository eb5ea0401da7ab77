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
// micro-kernel) and transformed back. The weight gradient runs over groups of images, copied
// channels-last a row of tiles at a time.
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
/// Bytes of the weight gradient's sums (all transformed elements) that stay in L2 between its
/// chunks of tiles (see winograd_gradient_chunk).
inline constexpr std::size_t winograd_gradient_sums_bytes = 1 << 20;
/// Most tiles per chunk of the weight gradient (the depth of its products) whose sums stay in L2.
inline constexpr std::size_t winograd_gradient_chunk_tiles = 64;
/// Most tiles per chunk whose sums do not (VGG-16's layers from 128 channels: 2.4-38 MB by
/// F(4x4, 3x3)): every chunk reads and writes them all, depth / 4 multiply-adds a byte, so the
/// chunks are longer.
inline constexpr std::size_t winograd_streamed_gradient_chunk_tiles = 128;

namespace detail {

// Copies rows `rows` of `channels` planes of height x width to channels-last order: pixel (y, x)
// of plane c goes to target[(y - rows.begin) * row + x * pixel + c], with pixel >=
// whole_batches(channels) (the channels past the last are written as zero). Squares of a batch
// of channels by a batch of pixels are transposed in registers; a row's last pixels are copied
// one by one. With `plane_sums`, adds the rows' sums to plane_sums[c] on the way, row by row
// (the bias gradient, when the planes are a convolution's output gradient).
inline void copy_channels_last(const float* planes, std::size_t channels, std::size_t height, std::size_t width,
                               vgg::detail::range rows, std::size_t pixel, std::size_t row, float* target,
                               float* plane_sums = nullptr)
{
    constexpr std::size_t lanes = float_batch::size;
    for (std::size_t y = rows.begin; y < rows.end; ++y)
        for (std::size_t c0 = 0; c0 < channels; c0 += lanes) {
            const std::size_t count = std::min(lanes, channels - c0);
            const float* source = planes + (c0 * height + y) * width;
            float* to = target + (y - rows.begin) * row + c0;
            float_batch sums(0.f);
            std::size_t x = 0;
            for (; x + lanes <= width; x += lanes) {
                float_batch square[lanes];
                VGG_UNROLL
                for (std::size_t c = 0; c < lanes; ++c)
                    square[c] = c < count ? float_batch::load_unaligned(source + c * height * width + x) : float_batch(0.f);
                transpose(square);
                VGG_UNROLL
                for (std::size_t p = 0; p < lanes; ++p)
                    square[p].store_unaligned(to + (x + p) * pixel);
                if (plane_sums)
                    VGG_UNROLL
                    for (std::size_t p = 0; p < lanes; ++p)
                        sums += square[p];
            }
            for (; x < width; ++x) {
                alignas(64) float values[lanes] = {};
                for (std::size_t c = 0; c < count; ++c)
                    values[c] = source[c * height * width + x];
                const auto column = float_batch::load_aligned(values);
                column.store_unaligned(to + x * pixel);
                sums += column;
            }
            if (plane_sums) {
                alignas(64) float totals[lanes];
                sums.store_aligned(totals);
                for (std::size_t c = 0; c < count; ++c)
                    plane_sums[c0 + c] += totals[c];
            }
        }
}

} // namespace detail


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
    return winograd_kernels_streamed<Tile>(from, to) ? winograd_streaming_chunk_tiles : winograd_forward_chunk_tiles<Tile>;
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
    const std::size_t chunk_rows = std::max<std::size_t>(winograd_chunk_tiles<Tile>(in_channels, out_channels) / tiles_x, 1);
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
            for (std::size_t t = 0; t < chunk_end; t += lanes) {
                float_batch d[window][window], v[window][window];
                VGG_UNROLL
                for (std::size_t xi = 0; xi < elements; ++xi)
                    d[xi / window][xi % window] = float_batch::load_aligned(windows + xi * stride + t);
                detail::transform_2d(d, v, transforms::input);
                VGG_UNROLL
                for (std::size_t xi = 0; xi < elements; ++xi)
                    v[xi / window][xi % window].store_aligned(transformed + xi * tiles_step + t);
            }
        }

        VGG_UNROLL
        for (std::size_t xi = 0; xi < elements; ++xi)
            gemm_panels(rows, in_channels, whole_batches(chunk_end),
                        u + (xi * panel_rows + targets.begin) * in_channels, tiles + xi * tiles_step, stride,
                        products + xi * products_step, stride, order);

        for (std::size_t k = targets.begin; k < targets.end; ++k) {
            const float* product = products + (k - targets.begin) * stride;
            const float_batch b(bias ? bias[k] : 0.f);
            for (std::size_t t = 0; t < chunk_end; t += lanes) {
                float_batch m[window][window], y[Tile][Tile];
                VGG_UNROLL
                for (std::size_t xi = 0; xi < elements; ++xi)
                    m[xi / window][xi % window] = float_batch::load_aligned(product + xi * products_step + t);
                detail::transform_2d(m, y, transforms::output);
                VGG_UNROLL
                for (std::size_t p = 0; p < Tile * Tile; ++p)
                    (y[p / Tile][p % Tile] + b).store_aligned(outputs + p * stride + t);
            }
            for (std::size_t g = g0; g < g1; ++g)
                epilogue(g / tiles_y, k, g % tiles_y, tile_row_outputs{outputs + (g - g0) * tiles_x, stride, Tile});
        }
    }
}

/// Size of the sums winograd_accumulate_weight_gradient<Tile> keeps: (Tile + 2)^2 x out x in
/// channels, the input channels padded to whole SIMD batches.
template <std::size_t Tile>
constexpr std::size_t winograd_weight_sums_size(std::size_t in_channels, std::size_t out_channels)
{
    return (Tile + 2) * (Tile + 2) * out_channels * whole_batches(in_channels);
}

/// Tiles per chunk of winograd_accumulate_weight_gradient<Tile> over `tiles` tiles: chunks of
/// equal length (a short last one would read and write all the sums for a few tiles), at most
/// winograd_gradient_chunk_tiles where the sums fit in winograd_gradient_sums_bytes, else at most
/// winograd_streamed_gradient_chunk_tiles.
template <std::size_t Tile>
constexpr std::size_t winograd_gradient_chunk(std::size_t in_channels, std::size_t out_channels, std::size_t tiles)
{
    const std::size_t sums_bytes = winograd_weight_sums_size<Tile>(in_channels, out_channels) * sizeof(float);
    const std::size_t longest = sums_bytes <= winograd_gradient_sums_bytes ? winograd_gradient_chunk_tiles
                                                                            : winograd_streamed_gradient_chunk_tiles;
    const std::size_t chunks = std::max<std::size_t>((tiles + longest - 1) / longest, 1);
    return (tiles + chunks - 1) / chunks;
}

/// Adds the weight gradient of `images` images (in_channels planes of height x width each,
/// contiguous) and their output gradients (`gradients`, out_channels planes each), still in
/// transformed space, to sums[xi][k][c] (aligned, see winograd_weight_sums_size), or with
/// gemm_update::overwrite writes it there (the sums need no zeroing first: at 512 channels they
/// are 17-38 MB, read and written again by each chunk of tiles). With `bias_sums`, adds each
/// output gradient plane's sum there too (the bias gradient). F(3x3, Tile x Tile), the adjoint
/// of the forward pass, gives
///     dW[k][c] = G^T (sum over tiles t of (A g_t[k] A^T) * (B^T d_t[c] B)) G
/// with g_t the Tile x Tile tile of the output gradient and d_t its (Tile + 2)^2 input window, so
/// per element xi the sum is a product whose depth is the tile count (of all the images, in
/// chunks of `chunk` tiles, winograd_gradient_chunk). Every element is summed in one pass over
/// the tiles, as windows transform whole (per element alone, each pass would read the images
/// again). The transforms run over channels in SIMD batches, from a channels-last copy of one
/// row of tiles at a time (its windows' rows with a zero border, and its gradient rows), made
/// when the tiles reach it, so that it is still in L2 when they are transformed (the two window
/// rows it shares with the next row of tiles are copied again: cheaper than a copy of the whole
/// image, 13 MB at 64 channels and 224x224, going to memory and back).
template <std::size_t Tile>
void winograd_accumulate_weight_gradient(std::size_t in_channels, std::size_t out_channels, std::size_t height,
                                         std::size_t width, std::size_t images, const float* image_planes,
                                         const float* gradients, winograd_workspace& scratch, float* sums,
                                         std::size_t chunk, gemm_update update, float* bias_sums = nullptr)
{
    constexpr std::size_t lanes = float_batch::size, window = Tile + 2, elements = window * window;
    using transforms = detail::winograd_transforms<Tile>;
    const std::size_t in_padded = whole_batches(in_channels), out_padded = whole_batches(out_channels);
    const std::size_t row = (width + 2) * in_padded, gradient_row = width * out_padded;
    const std::size_t tiles_x = width / Tile, tiles_y = height / Tile, image_tiles = tiles_x * tiles_y,
                      tile_count = images * image_tiles;
    // The products' operands have rows a batch longer than their channels, so that at 256 or 512
    // channels a depth step's rows do not all map to a few L1 sets.
    const std::size_t tile_step = in_padded + lanes, gradient_step = out_padded + lanes;
    const std::size_t tiles_element = winograd_element_step(chunk * tile_step),
                      gradients_element = winograd_element_step(chunk * gradient_step);
    float* tiles = vgg::detail::reserve(scratch.tiles, elements * tiles_element);
    float* gradients_transformed = vgg::detail::reserve(scratch.products, elements * gradients_element);
    float* image_band = vgg::detail::reserve(scratch.image_band, window * row);
    float* gradient_band = vgg::detail::reserve(scratch.gradient_band, Tile * gradient_row);
    // Copies tile row ty of image n channels-last: the windows' rows (padded row r of the band is
    // image row Tile * ty + r - 1, zero above and below the image) and the gradient's rows.
    const auto stage_band = [&](std::size_t n, std::size_t ty) {
        const float* image = image_planes + n * in_channels * height * width;
        VGG_UNROLL
        for (std::size_t r = 0; r < window; ++r) {
            float* target = image_band + r * row;
            const std::size_t y = Tile * ty + r; // one more than the image row
            if (y == 0 || y > height) {
                std::fill(target, target + row, 0.f);
                continue;
            }
            std::fill(target, target + in_padded, 0.f);
            std::fill(target + (width + 1) * in_padded, target + row, 0.f);
            detail::copy_channels_last(image, in_channels, height, width, {y - 1, y}, in_padded, row, target + in_padded);
        }
        detail::copy_channels_last(gradients + n * out_channels * height * width, out_channels, height, width,
                                   {Tile * ty, Tile * ty + Tile}, out_padded, gradient_row, gradient_band, bias_sums);
    };
    std::size_t staged_band = tile_count; // n * tiles_y + ty of the band staged, none yet
    for (std::size_t t0 = 0; t0 < tile_count; t0 += chunk) {
        const std::size_t t1 = std::min(t0 + chunk, tile_count);
        // Tile t is (tx, ty) of image n, counted along rather than divided out of t per tile.
        std::size_t n = t0 / image_tiles, ty = t0 % image_tiles / tiles_x, tx = t0 % tiles_x;
        for (std::size_t t = t0; t < t1; ++t, tx = tx + 1 < tiles_x ? tx + 1 : 0) {
            if (t > t0 && tx == 0 && ++ty == tiles_y) {
                ty = 0;
                ++n;
            }
            if (n * tiles_y + ty != staged_band) {
                stage_band(n, ty);
                staged_band = n * tiles_y + ty;
            }
            const float* image_window = image_band + Tile * tx * in_padded;
            const float* tile = gradient_band + Tile * tx * out_padded;
            float* transformed = tiles + (t - t0) * tile_step; // element e at + e * tiles_element
            float* transformed_gradient = gradients_transformed + (t - t0) * gradient_step;
            for (std::size_t c = 0; c < in_padded; c += lanes) {
                float_batch d[window][window], v[window][window];
                VGG_UNROLL
                for (std::size_t xi = 0; xi < elements; ++xi)
                    d[xi / window][xi % window] =
                        float_batch::load_aligned(image_window + (xi / window) * row + (xi % window) * in_padded + c);
                detail::transform_2d(d, v, transforms::input);
                VGG_UNROLL
                for (std::size_t xi = 0; xi < elements; ++xi)
                    v[xi / window][xi % window].store_aligned(transformed + xi * tiles_element + c);
            }
            for (std::size_t k = 0; k < out_padded; k += lanes) {
                float_batch g[Tile][Tile], e[window][window];
                VGG_UNROLL
                for (std::size_t p = 0; p < Tile * Tile; ++p)
                    g[p / Tile][p % Tile] = float_batch::load_aligned(tile + (p / Tile) * gradient_row + (p % Tile) * out_padded + k);
                detail::transform_2d(g, e, transforms::gradient);
                VGG_UNROLL
                for (std::size_t xi = 0; xi < elements; ++xi)
                    e[xi / window][xi % window].store_aligned(transformed_gradient + xi * gradients_element + k);
            }
        }
        VGG_UNROLL
        for (std::size_t xi = 0; xi < elements; ++xi)
            gemm_unpacked(out_channels, t1 - t0, in_padded,
                          {gradients_transformed + xi * gradients_element, gradient_step, tiles + xi * tiles_element,
                           tile_step, sums + xi * out_channels * in_padded, in_padded,
                           t0 > 0 || update == gemm_update::accumulate});
    }
}

/// dweight[k][c][3][3] += G^T s G, s the (Tile + 2)^2 sums[.][k][c] of
/// winograd_accumulate_weight_gradient<Tile>, transformed for a SIMD batch of input channels at a time.
template <std::size_t Tile>
void winograd_weight_gradient(const float* sums, std::size_t in_channels, std::size_t out_channels, float* dweight)
{
    constexpr std::size_t lanes = float_batch::size, window = Tile + 2;
    const std::size_t in_padded = whole_batches(in_channels);
    for (std::size_t k = 0; k < out_channels; ++k)
        for (std::size_t c0 = 0; c0 < in_channels; c0 += lanes) {
            float_batch s[window][window], w[3][3];
            VGG_UNROLL
            for (std::size_t xi = 0; xi < window * window; ++xi)
                s[xi / window][xi % window] = float_batch::load_aligned(sums + (xi * out_channels + k) * in_padded + c0);
            detail::transform_2d(s, w, detail::winograd_transforms<Tile>::weight_gradient);
            alignas(64) float taps[9][lanes];
            VGG_UNROLL
            for (std::size_t i = 0; i < 9; ++i)
                w[i / 3][i % 3].store_aligned(taps[i]);
            float* kernels = dweight + (k * in_channels + c0) * 9;
            for (std::size_t c = 0; c < std::min(lanes, in_channels - c0); ++c)
                VGG_UNROLL
                for (std::size_t i = 0; i < 9; ++i)
                    kernels[c * 9 + i] += taps[i][c];
        }
}

} // namespace vgg::kernels
