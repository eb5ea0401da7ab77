#pragma once
#include <algorithm>
#include <cstddef>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm_microkernel.hpp"
#include "vgg/kernels/winograd_rows.hpp"
#include "vgg/kernels/winograd_transforms.hpp"

// The drivers of Winograd F(2x2, 3x3) and F(4x4, 3x3) (transforms in winograd_transforms.hpp):
// per image, the input windows are transformed, multiplied by the transformed kernels (one
// product per element of the window, through the shared GEMM micro-kernel) and transformed back.
// The weight gradient runs by F(2x2, 3x3) only.
namespace vgg::kernels {

/// Tiles per chunk of the forward pass, per output tile side: the chunk's transformed windows
/// ((tile + 2)^2 x channels x tiles) and products stay in L2.
template <std::size_t Tile>
inline constexpr std::size_t winograd_forward_chunk_tiles = Tile == 2 ? 128 : 64;
/// Floats per cache line, the step of the prefetches of the next channel's rows.
inline constexpr std::size_t cache_line_floats = 64 / sizeof(float);
/// Tiles per chunk of the weight gradient: the product depth per call.
inline constexpr std::size_t winograd_gradient_chunk_tiles = 64;

namespace detail {

// Copies `channels` planes of height x width to channels-last order: pixel (y, x) of plane c
// goes to target[y * row + x * pixel + c], with pixel >= whole_batches(channels) (the channels
// past the last are written as zero). Squares of a batch of channels by a batch of pixels are
// transposed in registers; a row's last pixels are copied one by one. With `plane_sums`, adds
// each plane's sum to plane_sums[c] on the way (the bias gradient, when the planes are a
// convolution's output gradient).
inline void copy_channels_last(const float* planes, std::size_t channels, std::size_t height, std::size_t width,
                               std::size_t pixel, std::size_t row, float* target, float* plane_sums = nullptr)
{
    constexpr std::size_t lanes = float_batch::size;
    for (std::size_t y = 0; y < height; ++y)
        for (std::size_t c0 = 0; c0 < channels; c0 += lanes) {
            const std::size_t count = std::min(lanes, channels - c0);
            const float* source = planes + (c0 * height + y) * width;
            float* to = target + y * row + c0;
            float_batch sums(0.f);
            std::size_t x = 0;
            for (; x + lanes <= width; x += lanes) {
                float_batch square[lanes];
                for (std::size_t c = 0; c < lanes; ++c)
                    square[c] = c < count ? float_batch::load_unaligned(source + c * height * width + x) : float_batch(0.f);
                transpose(square);
                for (std::size_t p = 0; p < lanes; ++p)
                    square[p].store_unaligned(to + (x + p) * pixel);
                if (plane_sums)
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


/// Transforms 3x3 kernels weight[out][in][3][3] into the (Tile + 2)^2 matrices the Winograd
/// products read, stored u[xi][in][out], for the target channels `targets` (all are
/// out_channels, or in_channels with `adjoint`). With `adjoint`, transforms the kernels of the
/// convolution that maps an output gradient to the input gradient instead: in and out swapped
/// and each 3x3 window turned by 180 degrees (a 3x3, pad-1 convolution's transpose is again one).
template <std::size_t Tile>
void winograd_transform_kernels(const float* weight, std::size_t out_channels, std::size_t in_channels, bool adjoint,
                                vgg::detail::range targets, float* u)
{
    constexpr std::size_t window = Tile + 2;
    const std::size_t to = adjoint ? in_channels : out_channels, from = adjoint ? out_channels : in_channels;
    for (std::size_t o = targets.begin; o < targets.end; ++o)
        for (std::size_t i = 0; i < from; ++i) {
            const float* w = adjoint ? weight + (i * in_channels + o) * 9 : weight + (o * in_channels + i) * 9;
            float g[3][3], transformed[window][window];
            for (std::size_t k = 0; k < 9; ++k)
                g[k / 3][k % 3] = adjoint ? w[8 - k] : w[k];
            detail::transform_2d(g, transformed, detail::winograd_transforms<Tile>::kernel);
            for (std::size_t xi = 0; xi < window * window; ++xi)
                u[(xi * from + i) * to + o] = transformed[xi / window][xi % window];
        }
}

/// Scratch of one thread for the Winograd passes; each buffer grows to its largest request.
struct winograd_workspace {
    aligned_vector<float> windows, tiles, products, outputs, image_last, gradient_last;
};

/// Whether winograd_conv3x3_image<Tile> handles a convolution: it needs whole output tiles.
constexpr bool winograd_applies(std::size_t tile, std::size_t height, std::size_t width)
{
    return height % tile == 0 && width % tile == 0;
}

/// One image's 3x3, stride-1, pad-1 convolution by F(Tile x Tile, 3x3), for the output rows of
/// the tile rows [tile_rows.begin, tile_rows.end) (all are height / Tile): image is in_channels
/// planes of height x width (multiples of Tile), u the winograd_transform_kernels<Tile> of the
/// weights, bias may be null. Tile rows are processed in chunks of about
/// winograd_forward_chunk_tiles tiles so that transformed windows and products stay in L2;
/// within a chunk tiles are numbered row after row, and every transform runs over that flat
/// index in whole SIMD batches (a row of 14 tiles would be all tail). Results leave through
/// epilogue(channel, tile_row, tile_row_outputs).
template <std::size_t Tile, class Epilogue>
void winograd_conv3x3_image(std::size_t in_channels, std::size_t out_channels, std::size_t height, std::size_t width,
                            const float* image, const float* u, const float* bias, winograd_workspace& scratch,
                            vgg::detail::range tile_rows, Epilogue&& epilogue)
{
    constexpr std::size_t lanes = float_batch::size, window = Tile + 2, elements = window * window;
    using transforms = detail::winograd_transforms<Tile>;
    const std::size_t tiles_x = width / Tile, tiles_y = height / Tile;
    const std::size_t chunk_rows = std::clamp<std::size_t>(winograd_forward_chunk_tiles<Tile> / tiles_x, 1, tiles_y);
    // Tiles per chunk, padded: whole batches, and room for the batch the row gathers and stores write past their end.
    const std::size_t stride = whole_batches(chunk_rows * tiles_x) + lanes;
    const float* image_end = image + in_channels * height * width;
    using vgg::detail::reserve;
    float* windows = reserve(scratch.windows, elements * stride);
    float* tiles = reserve(scratch.tiles, elements * in_channels * stride);
    float* products = reserve(scratch.products, elements * out_channels * stride);
    float* outputs = reserve(scratch.outputs, Tile * Tile * stride);

    for (std::size_t ty0 = tile_rows.begin; ty0 < tile_rows.end; ty0 += chunk_rows) {
        const std::size_t ty1 = std::min(ty0 + chunk_rows, tile_rows.end);
        const std::size_t chunk_end = (ty1 - ty0) * tiles_x;
        for (std::size_t c = 0; c < in_channels; ++c) {
            if (c + 1 < in_channels) {
                const float* next = image + ((c + 1) * height + Tile * ty0 - (ty0 > 0)) * width;
                const std::size_t rows = Tile * (ty1 - ty0) + (ty0 > 0) + (ty1 < tiles_y);
                for (std::size_t at = 0; at < rows * width; at += cache_line_floats)
                    __builtin_prefetch(next + at);
            }
            // windows[window * r + j][t]: the input pixel at (r, j) of tile t's window, which
            // starts one pixel up and left of the tile; zero in the padding.
            for (std::size_t ty = ty0; ty < ty1; ++ty)
                for (std::size_t r = 0; r < window; ++r) {
                    float* row = windows + window * r * stride + (ty - ty0) * tiles_x;
                    const std::size_t y = Tile * ty + r; // one more than the image row: padding
                    if (y == 0 || y > height) {
                        for (std::size_t j = 0; j < window; ++j)
                            std::fill(row + j * stride, row + j * stride + tiles_x, 0.f);
                        continue;
                    }
                    gather_window_columns<Tile>(image + (c * height + y - 1) * width, tiles_x, image_end, row, stride);
                }
            float* transformed = tiles + c * stride;
            for (std::size_t t = 0; t < chunk_end; t += lanes) {
                float_batch d[window][window], v[window][window];
                for (std::size_t xi = 0; xi < elements; ++xi)
                    d[xi / window][xi % window] = float_batch::load_aligned(windows + xi * stride + t);
                detail::transform_2d(d, v, transforms::input);
                for (std::size_t xi = 0; xi < elements; ++xi)
                    v[xi / window][xi % window].store_aligned(transformed + xi * in_channels * stride + t);
            }
        }

        for (std::size_t xi = 0; xi < elements; ++xi)
            gemm_unpacked(out_channels, in_channels, whole_batches(chunk_end),
                          {u + xi * in_channels * out_channels, out_channels, tiles + xi * in_channels * stride, stride,
                           products + xi * out_channels * stride, stride, false});

        for (std::size_t k = 0; k < out_channels; ++k) {
            const float* product = products + k * stride;
            const float_batch b(bias ? bias[k] : 0.f);
            for (std::size_t t = 0; t < chunk_end; t += lanes) {
                float_batch m[window][window], y[Tile][Tile];
                for (std::size_t xi = 0; xi < elements; ++xi)
                    m[xi / window][xi % window] = float_batch::load_aligned(product + xi * out_channels * stride + t);
                detail::transform_2d(m, y, transforms::output);
                for (std::size_t p = 0; p < Tile * Tile; ++p)
                    (y[p / Tile][p % Tile] + b).store_aligned(outputs + p * stride + t);
            }
            for (std::size_t ty = ty0; ty < ty1; ++ty)
                epilogue(k, ty, tile_row_outputs{outputs + (ty - ty0) * tiles_x, stride, Tile});
        }
    }
}

/// Size of the sums winograd_accumulate_weight_gradient keeps: 16 x out x in channels, the
/// input channels padded to whole SIMD batches.
inline std::size_t winograd_weight_sums_size(std::size_t in_channels, std::size_t out_channels)
{
    return 16 * out_channels * whole_batches(in_channels);
}

/// Adds one image's weight gradient, still in transformed space, to sums[xi][k][c] (aligned, see
/// winograd_weight_sums_size): F(3x3, 2x2), the adjoint of the forward pass, gives
///     dW[k][c] = G^T (sum over tiles t of (A g_t[k] A^T) * (B^T d_t[c] B)) G
/// with g_t the 2x2 tile of the output gradient and d_t the 4x4 input window, so per xi the
/// sum is a product whose depth is the tile count. The transforms run over channels in SIMD
/// batches, which needs image and gradient copied channels-last first (the image with its
/// zero border, so windows need no bounds checks). With `bias_sums`, the copy of the gradient
/// also adds its per-channel sums there (the bias gradient).
inline void winograd_accumulate_weight_gradient(std::size_t in_channels, std::size_t out_channels, std::size_t height,
                                                std::size_t width, const float* image, const float* gradient,
                                                winograd_workspace& scratch, float* sums, float* bias_sums = nullptr)
{
    constexpr std::size_t lanes = float_batch::size, chunk = winograd_gradient_chunk_tiles;
    const std::size_t in_padded = whole_batches(in_channels), out_padded = whole_batches(out_channels);
    const std::size_t tiles_x = width / 2, tile_count = height * width / 4, row = (width + 2) * in_padded;
    float* image_last = vgg::detail::reserve(scratch.image_last, (height + 2) * row);
    float* gradient_last = vgg::detail::reserve(scratch.gradient_last, height * width * out_padded);
    float* tiles = vgg::detail::reserve(scratch.tiles, 16 * chunk * in_padded);
    float* gradients = vgg::detail::reserve(scratch.products, 16 * chunk * out_padded);

    // The image's zero border is written every time, so a workspace may serve any geometry; the
    // copies write padded channels as zero.
    std::fill(image_last, image_last + row, 0.f);
    std::fill(image_last + (height + 1) * row, image_last + (height + 2) * row, 0.f);
    for (std::size_t y = 1; y <= height; ++y) {
        std::fill(image_last + y * row, image_last + y * row + in_padded, 0.f);
        std::fill(image_last + y * row + (width + 1) * in_padded, image_last + (y + 1) * row, 0.f);
    }
    detail::copy_channels_last(image, in_channels, height, width, in_padded, row, image_last + row + in_padded);
    detail::copy_channels_last(gradient, out_channels, height, width, out_padded, width * out_padded, gradient_last,
                               bias_sums);

    for (std::size_t t0 = 0; t0 < tile_count; t0 += chunk) {
        const std::size_t t1 = std::min(t0 + chunk, tile_count);
        for (std::size_t t = t0; t < t1; ++t) {
            const std::size_t ty = t / tiles_x, tx = t % tiles_x;
            const float* window = image_last + 2 * ty * row + 2 * tx * in_padded;
            for (std::size_t c = 0; c < in_padded; c += lanes) {
                float_batch d[4][4], v[4][4];
                for (std::size_t xi = 0; xi < 16; ++xi)
                    d[xi / 4][xi % 4] = float_batch::load_aligned(window + (xi / 4) * row + (xi % 4) * in_padded + c);
                detail::transform_2d(d, v, detail::winograd_transforms<2>::input);
                for (std::size_t xi = 0; xi < 16; ++xi)
                    v[xi / 4][xi % 4].store_aligned(tiles + (xi * chunk + t - t0) * in_padded + c);
            }
            const float* tile = gradient_last + (2 * ty * width + 2 * tx) * out_padded;
            for (std::size_t k = 0; k < out_padded; k += lanes) {
                float_batch g[2][2], e[4][4];
                for (std::size_t p = 0; p < 4; ++p)
                    g[p / 2][p % 2] = float_batch::load_aligned(tile + ((p / 2) * width + p % 2) * out_padded + k);
                detail::transform_2d(g, e, detail::gradient_transform);
                for (std::size_t xi = 0; xi < 16; ++xi)
                    e[xi / 4][xi % 4].store_aligned(gradients + (xi * chunk + t - t0) * out_padded + k);
            }
        }
        for (std::size_t xi = 0; xi < 16; ++xi)
            gemm_unpacked(out_channels, t1 - t0, in_padded,
                          {gradients + xi * chunk * out_padded, out_padded, tiles + xi * chunk * in_padded, in_padded,
                           sums + xi * out_channels * in_padded, in_padded, true});
    }
}

/// dweight[k][c][3][3] += G^T s G, s the 4x4 sums[.][k][c] of winograd_accumulate_weight_gradient.
inline void winograd_weight_gradient(const float* sums, std::size_t in_channels, std::size_t out_channels,
                                     float* dweight)
{
    const std::size_t in_padded = whole_batches(in_channels);
    for (std::size_t k = 0; k < out_channels; ++k)
        for (std::size_t c = 0; c < in_channels; ++c) {
            float s[4][4], w[3][3];
            for (std::size_t xi = 0; xi < 16; ++xi)
                s[xi / 4][xi % 4] = sums[(xi * out_channels + k) * in_padded + c];
            detail::transform_2d(s, w, detail::weight_gradient_transform);
            for (std::size_t i = 0; i < 9; ++i)
                dweight[(k * in_channels + c) * 9 + i] += w[i / 3][i % 3];
        }
}

} // namespace vgg::kernels
