#pragma once
// The im2col + GEMM back end, fp32 (im2col_gemm: the columns written out, then gemm) and bf16
// (bf16_gemm: gemm_bf16 reads the columns from the image as it packs them), one image at a time.
#include <algorithm>
#include <cstddef>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/conv/plan.hpp"
#include "vgg/kernels/gemm.hpp"
#include "vgg/kernels/gemm_bf16.hpp"
#include "vgg/kernels/im2col.hpp"

namespace vgg::kernels {

/// im2col_3x3 of image n of x, read from the image as gemm_bf16 packs it.
inline image_columns image_columns_of(const conv3x3_dims& d, const float* x, std::size_t n)
{
    return {x + n * d.in_size(), d.in_channels, d.height, d.width};
}

/// Output channels `channels` of image n: W * im2col(x_n) + b into `result` (the image's output
/// planes). `columns` holds d.columns_size() floats of scratch for im2col_gemm.
inline void gemm_forward_channels(const conv3x3_dims& d, conv3x3_algorithm algorithm, const float* x, std::size_t n,
                                  const float* weight, const float* bias, vgg::detail::range channels, float* columns,
                                  float* result)
{
    float* first = result + channels.begin * d.pixels();
    // Start from the bias and accumulate, which saves a zeroing pass.
    for (std::size_t o = 0; o < channels.size(); ++o)
        std::fill(first + o * d.pixels(), first + (o + 1) * d.pixels(), bias[channels.begin + o]);
    const auto w = row_major(weight + channels.begin * d.patch(), d.patch());
    if (algorithm == conv3x3_algorithm::bf16_gemm) {
        gemm_bf16(best_bf16_kernel(), channels.size(), d.pixels(), d.patch(), w, image_columns_of(d, x, n), first,
                  d.pixels(), gemm_update::accumulate);
    } else {
        im2col_3x3(x + n * d.in_size(), d.in_channels, d.height, d.width, columns);
        gemm(channels.size(), d.pixels(), d.patch(), w, row_major(columns, d.pixels()), first, d.pixels(),
             gemm_update::accumulate);
    }
}

/// Adds image n's weight gradient, g * im2col(x_n)^T, to `dweight`.
inline void gemm_accumulate_weight_gradient(const conv3x3_dims& d, conv3x3_algorithm algorithm, const float* x,
                                            std::size_t n, const float* g, float* columns, float* dweight)
{
    if (algorithm == conv3x3_algorithm::bf16_gemm) {
        gemm_bf16(best_bf16_kernel(), d.out_channels, d.patch(), d.pixels(), row_major(g, d.pixels()),
                  image_columns_of(d, x, n).transposed(), dweight, d.patch(), gemm_update::accumulate);
    } else {
        im2col_3x3(x + n * d.in_size(), d.in_channels, d.height, d.width, columns);
        gemm(d.out_channels, d.patch(), d.pixels(), row_major(g, d.pixels()),
             row_major(columns, d.pixels()).transposed(), dweight, d.patch(), gemm_update::accumulate);
    }
}

/// One image's input gradient dx_n from its output gradient g: in bf16 the convolution of g with
/// the adjoint kernels (`adjoint`, no column matrix to write and fold back); in fp32 the column
/// gradient w^T g in `columns`, folded back by col2im.
inline void gemm_input_gradient(const conv3x3_dims& d, conv3x3_algorithm algorithm, const float* weight,
                                const float* adjoint, const float* g, float* columns, float* dx_n)
{
    if (algorithm == conv3x3_algorithm::bf16_gemm) {
        gemm_bf16(best_bf16_kernel(), d.in_channels, d.pixels(), 9 * d.out_channels,
                  row_major(adjoint, 9 * d.out_channels), image_columns{g, d.out_channels, d.height, d.width}, dx_n,
                  d.pixels(), gemm_update::overwrite);
    } else {
        gemm(d.patch(), d.pixels(), d.out_channels, row_major(weight, d.patch()).transposed(), row_major(g, d.pixels()),
             columns, d.pixels(), gemm_update::overwrite);
        col2im_3x3(columns, d.in_channels, d.height, d.width, dx_n);
    }
}

} // namespace vgg::kernels
