#pragma once
#include <algorithm>
#include <cstddef>

#include <xsimd/xsimd.hpp>

#include "vgg/core/tensor.hpp"
#include "vgg/kernels/elementwise.hpp"

// Winograd F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): each 2x2 output tile of a 3x3 convolution comes from a 4x4 input tile through 16
// multiplies per channel pair instead of 36. In transformed space the convolution becomes 16
// independent matrix products, one per element xi of the 4x4 tile:
//     M[xi] (out x tiles) = U[xi] (out x in) * V[xi] (in x tiles),
// with U the transformed kernels, V the transformed input tiles; the output transform folds M
// back into 2x2 tiles. Transforms use the points 0, 1, -1, whose coefficients (0, +-1, 1/2)
// keep the rounding error close to that of the direct sum.
namespace vgg::detail {

// The three 1-D transforms; each runs on floats and, unchanged, on SIMD batches of tiles.
// Kernel: u = G g, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
template <class T>
void winograd_kernel_1d(const T g[3], T u[4])
{
    u[0] = g[0];
    u[1] = (g[0] + g[1] + g[2]) * 0.5f;
    u[2] = (g[0] - g[1] + g[2]) * 0.5f;
    u[3] = g[2];
}
// Input: v = B^T d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <class T>
void winograd_input_1d(const T d[4], T v[4])
{
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
}
// Output: y = A^T m, A^T = [1 1 1 0; 0 1 -1 -1].
template <class T>
void winograd_output_1d(const T m[4], T y[2])
{
    y[0] = m[0] + m[1] + m[2];
    y[1] = m[1] - m[2] - m[3];
}

// c (Rows x Vectors batches) = a^T * b over `depth`, where a is stored depth-major (a[p * lda + r])
// so the Rows values broadcast at each step share one cache line.
template <std::size_t Rows, std::size_t Vectors>
void gemm_block(std::size_t depth, const float* a, std::size_t lda, const float* b, std::size_t ldb, float* c,
                std::size_t ldc)
{
    using float_batch = xsimd::batch<float>;
    constexpr std::size_t lanes = float_batch::size;
    float_batch sum[Rows][Vectors];
    for (std::size_t r = 0; r < Rows; ++r)
        for (std::size_t v = 0; v < Vectors; ++v)
            sum[r][v] = float_batch(0.f);
    for (std::size_t p = 0; p < depth; ++p) {
        float_batch row[Vectors];
        for (std::size_t v = 0; v < Vectors; ++v)
            row[v] = float_batch::load_aligned(b + p * ldb + v * lanes);
        for (std::size_t r = 0; r < Rows; ++r) {
            const float_batch weight(a[p * lda + r]);
            for (std::size_t v = 0; v < Vectors; ++v)
                sum[r][v] = xsimd::fma(weight, row[v], sum[r][v]);
        }
    }
    for (std::size_t r = 0; r < Rows; ++r)
        for (std::size_t v = 0; v < Vectors; ++v)
            sum[r][v].store_aligned(c + r * ldc + v * lanes);
}

template <std::size_t Rows>
void gemm_rows(std::size_t depth, std::size_t columns, const float* a, std::size_t lda, const float* b,
               std::size_t ldb, float* c, std::size_t ldc)
{
    constexpr std::size_t lanes = xsimd::batch<float>::size, vectors = 3;
    std::size_t j = 0;
    for (; j + vectors * lanes <= columns; j += vectors * lanes)
        gemm_block<Rows, vectors>(depth, a, lda, b + j, ldb, c + j, ldc);
    if (columns - j == 2 * lanes)
        gemm_block<Rows, 2>(depth, a, lda, b + j, ldb, c + j, ldc);
    else if (columns - j == lanes)
        gemm_block<Rows, 1>(depth, a, lda, b + j, ldb, c + j, ldc);
}

// c (rows x columns) = a^T (rows x depth) * b (depth x columns) with a stored depth x rows. Columns
// are a multiple of the SIMD width and rows of b and c are aligned. The 8 x 3-batch register
// block keeps 24 accumulators in AVX-512's 32 registers. Column panels are the outer loop so a
// panel of b (depth x 48 floats) stays in L1 while every row block passes over it.
inline void winograd_gemm(std::size_t rows, std::size_t depth, std::size_t columns, const float* a, const float* b,
                          float* c)
{
    constexpr std::size_t lanes = xsimd::batch<float>::size, row_block = 8, panel = 3 * lanes;
    for (std::size_t j = 0; j < columns; j += panel) {
        const std::size_t width = std::min(panel, columns - j);
        std::size_t r = 0;
        for (; r + row_block <= rows; r += row_block)
            gemm_rows<row_block>(depth, width, a + r, rows, b + j, columns, c + r * columns + j, columns);
        for (; r < rows; ++r)
            gemm_rows<1>(depth, width, a + r, rows, b + j, columns, c + r * columns + j, columns);
    }
}

} // namespace vgg::detail

namespace vgg::kernels {

/// Transforms 3x3 kernels weight[out][in][3][3] into the 16 matrices the Winograd products
/// read, stored u[xi][in][out]. With `adjoint`, transforms the kernels of the convolution that
/// maps an output gradient to the input gradient instead: in and out swapped and each 3x3
/// window turned by 180 degrees (a 3x3, pad-1 convolution's transpose is again one).
inline void winograd_transform_kernels(const float* weight, std::size_t out_channels, std::size_t in_channels,
                                       bool adjoint, float* u)
{
    const std::size_t to = adjoint ? in_channels : out_channels, from = adjoint ? out_channels : in_channels;
    for (std::size_t o = 0; o < to; ++o)
        for (std::size_t i = 0; i < from; ++i) {
            const float* w = adjoint ? weight + (i * in_channels + o) * 9 : weight + (o * in_channels + i) * 9;
            float g[3][3], rows[4][3], u4[4][4];
            for (std::size_t k = 0; k < 9; ++k)
                g[k / 3][k % 3] = adjoint ? w[8 - k] : w[k];
            for (std::size_t x = 0; x < 3; ++x) {
                const float column[3] = {g[0][x], g[1][x], g[2][x]};
                float transformed[4];
                detail::winograd_kernel_1d(column, transformed);
                for (std::size_t y = 0; y < 4; ++y)
                    rows[y][x] = transformed[y];
            }
            for (std::size_t y = 0; y < 4; ++y)
                detail::winograd_kernel_1d(rows[y], u4[y]);
            for (std::size_t xi = 0; xi < 16; ++xi)
                u[(xi * from + i) * to + o] = u4[xi / 4][xi % 4];
        }
}

/// Scratch of one thread for winograd_conv3x3_image; grows on first use and is then reused.
struct winograd_workspace {
    aligned_vector<float> windows, tiles, products, outputs;
};

/// Whether winograd_conv3x3_image handles a convolution: it needs whole 2x2 output tiles.
constexpr bool winograd_applies(std::size_t height, std::size_t width) { return height % 2 == 0 && width % 2 == 0; }

/// The outputs of one tile row: (i, j, tx) is output pixel (2 tile_row + i, 2 tx + j).
struct tile_row_outputs {
    const float* data;
    std::size_t stride;
    float operator()(std::size_t i, std::size_t j, std::size_t tx) const { return data[(2 * i + j) * stride + tx]; }
};

/// One image's 3x3, stride-1, pad-1 convolution by F(2x2, 3x3): image is in_channels planes of
/// height x width (both even), u the winograd_transform_kernels of the weights, bias may be
/// null. Tile rows are processed in chunks of about 128 tiles so that transformed tiles and
/// products stay in L2; within a chunk tiles are numbered row after row, and every transform
/// runs over that flat index in whole SIMD batches (a row of 14 tiles would be all tail).
/// Results leave through epilogue(channel, tile_row, tile_row_outputs).
template <class Epilogue>
void winograd_conv3x3_image(std::size_t in_channels, std::size_t out_channels, std::size_t height, std::size_t width,
                            const float* image, const float* u, const float* bias, winograd_workspace& scratch,
                            Epilogue&& epilogue)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t tiles_x = width / 2, tiles_y = height / 2;
    const std::size_t chunk_rows = std::clamp<std::size_t>(128 / tiles_x, 1, tiles_y);
    const std::size_t stride = (chunk_rows * tiles_x + lanes - 1) / lanes * lanes; // tiles per chunk, padded
    // Padded tiles must hold finite values: they flow through the products, then are dropped.
    auto reserve = [](aligned_vector<float>& buffer, std::size_t size) {
        if (buffer.size() < size)
            buffer.resize(size, 0.f);
        return buffer.data();
    };
    float* windows = reserve(scratch.windows, 16 * stride);
    float* tiles = reserve(scratch.tiles, 16 * in_channels * stride);
    float* products = reserve(scratch.products, 16 * out_channels * stride);
    float* outputs = reserve(scratch.outputs, 4 * stride);

    for (std::size_t ty0 = 0; ty0 < tiles_y; ty0 += chunk_rows) {
        const std::size_t ty1 = std::min(ty0 + chunk_rows, tiles_y);
        const std::size_t chunk_end = (ty1 - ty0) * tiles_x;
        for (std::size_t c = 0; c < in_channels; ++c) {
            // windows[4 r + j][t]: the input pixel at (r, j) of tile t's 4x4 window, which starts
            // one pixel up and left of the tile; zero in the padding. Stride-2 copies vectorise.
            for (std::size_t ty = ty0; ty < ty1; ++ty)
                for (std::size_t r = 0; r < 4; ++r) {
                    float* window = windows + 4 * r * stride + (ty - ty0) * tiles_x;
                    const std::size_t y = 2 * ty + r; // one more than the image row: padding
                    if (y == 0 || y > height) {
                        for (std::size_t j = 0; j < 4; ++j)
                            std::fill(window + j * stride, window + j * stride + tiles_x, 0.f);
                        continue;
                    }
                    const float* source = image + (c * height + y - 1) * width;
                    window[0] = 0.f;
                    for (std::size_t tx = 1; tx < tiles_x; ++tx)
                        window[tx] = source[2 * tx - 1];
                    for (std::size_t tx = 0; tx < tiles_x; ++tx)
                        window[stride + tx] = source[2 * tx];
                    for (std::size_t tx = 0; tx < tiles_x; ++tx)
                        window[2 * stride + tx] = source[2 * tx + 1];
                    for (std::size_t tx = 0; tx + 1 < tiles_x; ++tx)
                        window[3 * stride + tx] = source[2 * tx + 2];
                    window[3 * stride + tiles_x - 1] = 0.f;
                }
            float* transformed = tiles + c * stride;
            for (std::size_t t = 0; t < chunk_end; t += lanes) {
                float_batch d[4][4], rows[4][4], column[4], v[4];
                for (std::size_t r = 0; r < 4; ++r) {
                    for (std::size_t j = 0; j < 4; ++j)
                        d[r][j] = float_batch::load_aligned(windows + (4 * r + j) * stride + t);
                    detail::winograd_input_1d(d[r], rows[r]);
                }
                for (std::size_t j = 0; j < 4; ++j) {
                    for (std::size_t r = 0; r < 4; ++r)
                        column[r] = rows[r][j];
                    detail::winograd_input_1d(column, v);
                    for (std::size_t i = 0; i < 4; ++i)
                        v[i].store_aligned(transformed + (4 * i + j) * in_channels * stride + t);
                }
            }
        }

        for (std::size_t xi = 0; xi < 16; ++xi)
            detail::winograd_gemm(out_channels, in_channels, stride, u + xi * in_channels * out_channels,
                                  tiles + xi * in_channels * stride, products + xi * out_channels * stride);

        for (std::size_t k = 0; k < out_channels; ++k) {
            const float* product = products + k * stride;
            const float_batch b(bias ? bias[k] : 0.f);
            for (std::size_t t = 0; t < chunk_end; t += lanes) {
                float_batch m[4][4], rows[4][2], column[4], y[2];
                for (std::size_t xi = 0; xi < 16; ++xi)
                    m[xi / 4][xi % 4] = float_batch::load_aligned(product + xi * out_channels * stride + t);
                for (std::size_t r = 0; r < 4; ++r)
                    detail::winograd_output_1d(m[r], rows[r]);
                for (std::size_t j = 0; j < 2; ++j) {
                    for (std::size_t r = 0; r < 4; ++r)
                        column[r] = rows[r][j];
                    detail::winograd_output_1d(column, y);
                    for (std::size_t i = 0; i < 2; ++i)
                        (y[i] + b).store_aligned(outputs + (2 * i + j) * stride + t);
                }
            }
            for (std::size_t ty = ty0; ty < ty1; ++ty)
                epilogue(k, ty, tile_row_outputs{outputs + (ty - ty0) * tiles_x, stride});
        }
    }
}

} // namespace vgg::kernels
