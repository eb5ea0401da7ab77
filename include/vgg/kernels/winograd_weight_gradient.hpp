#pragma once
// The weight gradient of Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions (the adjoint of the
// forward pass in winograd.hpp): over groups of images, copied channels-last a row of tiles at a
// time, summed per transformed element and transformed back once.
#include <algorithm>
#include <cstddef>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm.hpp"
#include "vgg/kernels/simd.hpp"
#include "vgg/kernels/winograd.hpp"
#include "vgg/kernels/winograd_transforms.hpp"

namespace vgg::kernels {

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

/// The channels and sides of a convolution, as the weight gradient's staging reads them.
struct conv_sizes {
    std::size_t in_channels, out_channels, height, width;
};

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
                    square[c] =
                        c < count ? float_batch::load_unaligned(source + c * height * width + x) : float_batch(0.f);
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

/// Copies tile row ty of one image and its output gradient channels-last, as the weight gradient
/// transforms them: the windows' rows into image_band (padded row r of the band is image row
/// Tile * ty + r - 1, zero above and below the image and in the border columns; rows of
/// (width + 2) x whole_batches(in_channels) floats) and the gradient's Tile rows into
/// gradient_band (rows of width x whole_batches(out_channels)), adding their sums to bias_sums.
template <std::size_t Tile>
void stage_band(const conv_sizes& d, const float* image, const float* gradient, std::size_t ty, float* image_band,
                float* gradient_band, float* bias_sums)
{
    const std::size_t in_padded = whole_batches(d.in_channels), out_padded = whole_batches(d.out_channels);
    const std::size_t row = (d.width + 2) * in_padded;
    VGG_UNROLL
    for (std::size_t r = 0; r < Tile + 2; ++r) {
        float* target = image_band + r * row;
        const std::size_t y = Tile * ty + r; // one more than the image row
        if (y == 0 || y > d.height) {
            std::fill(target, target + row, 0.f);
            continue;
        }
        std::fill(target, target + in_padded, 0.f);
        std::fill(target + (d.width + 1) * in_padded, target + row, 0.f);
        copy_channels_last(image, d.in_channels, d.height, d.width, {y - 1, y}, in_padded, row, target + in_padded);
    }
    copy_channels_last(gradient, d.out_channels, d.height, d.width, {Tile * ty, Tile * ty + Tile}, out_padded,
                       d.width * out_padded, gradient_band, bias_sums);
}

} // namespace detail

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
                detail::stage_band<Tile>(
                    {in_channels, out_channels, height, width}, image_planes + n * in_channels * height * width,
                    gradients + n * out_channels * height * width, ty, image_band, gradient_band, bias_sums);
                staged_band = n * tiles_y + ty;
            }
            const float* image_window = image_band + Tile * tx * in_padded;
            const float* tile = gradient_band + Tile * tx * out_padded;
            float* transformed = tiles + (t - t0) * tile_step; // element e at + e * tiles_element
            float* transformed_gradient = gradients_transformed + (t - t0) * gradient_step;
            for (std::size_t c = 0; c < in_padded; c += lanes)
                detail::transform_square<window, window>(
                    [&](std::size_t xi) {
                        return float_batch::load_aligned(image_window + (xi / window) * row +
                                                         (xi % window) * in_padded + c);
                    },
                    transforms::input,
                    [&](std::size_t xi, const float_batch& v) {
                        v.store_aligned(transformed + xi * tiles_element + c);
                    });
            for (std::size_t k = 0; k < out_padded; k += lanes)
                detail::transform_square<Tile, window>(
                    [&](std::size_t p) {
                        return float_batch::load_aligned(tile + (p / Tile) * gradient_row + (p % Tile) * out_padded +
                                                         k);
                    },
                    transforms::gradient,
                    [&](std::size_t xi, const float_batch& e) {
                        e.store_aligned(transformed_gradient + xi * gradients_element + k);
                    });
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
                s[xi / window][xi % window] =
                    float_batch::load_aligned(sums + (xi * out_channels + k) * in_padded + c0);
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
