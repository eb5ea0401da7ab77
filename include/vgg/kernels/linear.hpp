#pragma once
#include <algorithm>
#include <cstddef>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm.hpp"

namespace vgg::kernels {

/// Batches up to this size multiply by dot products along the weight rows instead of gemm():
/// the weights are read once, in memory order, where gemm() would first pack them for a product
/// of at most one register tile's rows (VGG-16's first Linear at batch 8 on the Xeon: 37 ms
/// instead of 58-73).
inline constexpr std::size_t linear_dot_product_batch = 8;

namespace detail {

/// y[b][j] += x[b] . weight[j] for every sample b and feature j of `features`; with RoundToBf16,
/// of both rounded to bf16 as they are loaded (a product of two bf16 values is exact in fp32, so
/// this is gemm_bf16's arithmetic without packing the weights).
template <bool RoundToBf16>
void linear_dot_products(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                         vgg::detail::range features, float* y)
{
    const auto load = [](const float* from) {
        const auto values = float_batch::load_unaligned(from);
        if constexpr (RoundToBf16)
            return round_to_bf16(values);
        else
            return values;
    };
    const auto value = [](float v) { return RoundToBf16 ? kernels::round_to_bf16(v) : v; };
    constexpr std::size_t lanes = float_batch::size, chains = 4; // independent sums hide the FMA latency
    for (std::size_t j = features.begin; j < features.end; ++j) {
        const float* w = weight + j * in;
        for (std::size_t b = 0; b < batch; ++b) {
            const float* sample = x + b * in;
            float_batch sums[chains] = {float_batch(0.f), float_batch(0.f), float_batch(0.f), float_batch(0.f)};
            std::size_t p = 0;
            for (; p + chains * lanes <= in; p += chains * lanes)
                for (std::size_t c = 0; c < chains; ++c)
                    sums[c] = fused_multiply_add(load(w + p + c * lanes), load(sample + p + c * lanes), sums[c]);
            for (; p + lanes <= in; p += lanes)
                sums[0] = fused_multiply_add(load(w + p), load(sample + p), sums[0]);
            float total = xsimd::hadd((sums[0] + sums[1]) + (sums[2] + sums[3]));
            for (; p < in; ++p)
                total += value(w[p]) * value(sample[p]);
            y[b * out + j] += total;
        }
    }
}

} // namespace detail

/// Y[batch, out] = X[batch, in] * W[out, in]^T + b. Threads split the output features, so each
/// reads a disjoint slice of the (large) weight matrix once.
inline void linear_forward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                           const float* bias, float* y, precision compute = precision::fp32)
{
    require_precision(compute);
    vgg::detail::parallel_ranges(out, 2 * batch * in, [&](std::size_t, std::size_t, vgg::detail::range features) {
        if (features.size() == 0)
            return;
        for (std::size_t b = 0; b < batch; ++b)
            std::copy(bias + features.begin, bias + features.end, y + b * out + features.begin);
        if (batch <= linear_dot_product_batch)
            return compute == precision::bf16 ? detail::linear_dot_products<true>(batch, in, out, x, weight, features, y)
                                              : detail::linear_dot_products<false>(batch, in, out, x, weight, features, y);
        gemm(batch, features.size(), in, row_major(x, in), row_major(weight + features.begin * in, in).transposed(),
             y + features.begin, out, gemm_update::accumulate, compute);
    });
}

/// dW = dY^T X and db = column sums of dY (both overwritten); dX = dY W when dx is not null.
inline void linear_backward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* dy,
                            const float* weight, float* dweight, float* dbias, float* dx,
                            precision compute = precision::fp32)
{
    require_precision(compute);
    const auto G = view(dy, batch, out);
    Eigen::Map<Eigen::RowVectorXf> db(dbias, static_cast<Eigen::Index>(out));
    vgg::detail::parallel_ranges(out, 2 * batch * in, [&](std::size_t, std::size_t, vgg::detail::range features) {
        if (features.size() == 0)
            return;
        gemm(features.size(), in, batch, row_major(dy + features.begin, out).transposed(), row_major(x, in),
             dweight + features.begin * in, in, gemm_update::overwrite, compute);
        const auto begin = static_cast<Eigen::Index>(features.begin), count = static_cast<Eigen::Index>(features.size());
        db.segment(begin, count) = G.middleCols(begin, count).colwise().sum();
    });
    if (!dx)
        return;
    vgg::detail::parallel_ranges(in, 2 * batch * out, [&](std::size_t, std::size_t, vgg::detail::range inputs) {
        if (inputs.size() == 0)
            return;
        gemm(batch, inputs.size(), out, row_major(dy, out), row_major(weight + inputs.begin, in), dx + inputs.begin, in,
             gemm_update::overwrite, compute);
    });
}

} // namespace vgg::kernels
