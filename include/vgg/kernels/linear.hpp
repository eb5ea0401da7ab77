#pragma once
#include <algorithm>
#include <cstddef>
#include <utility>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm.hpp"

namespace vgg::kernels {

/// Batches up to this size multiply by dot products along the weight rows instead of gemm():
/// the weights are read once, in memory order, where gemm() would first pack them for a product
/// of at most one register tile's rows. Both run at the memory's speed at batch 8 (VGG-16's first
/// Linear: 23-33 ms on the Xeon); from 16 on gemm() is faster.
inline constexpr std::size_t linear_dot_product_batch = 8;

namespace detail {

/// Features x Samples dot products of linear_dot_products: y[b + s][j + f] += x[b + s] .
/// weight[j + f]. Each weight load serves Samples samples and each input load Features features;
/// every dot product keeps 4 partial sums over interleaved batches (independent chains hide the
/// FMA's latency, and short chains round less), so its result does not depend on the blocking.
template <bool RoundToBf16, std::size_t Features, std::size_t Samples>
void linear_dot_block(std::size_t in, std::size_t out, const float* x, const float* weight, std::size_t j,
                      std::size_t b, float* y)
{
    const auto load = [](const float* from) {
        const auto values = float_batch::load_unaligned(from);
        if constexpr (RoundToBf16)
            return round_to_bf16(values);
        else
            return values;
    };
    const auto value = [](float v) { return RoundToBf16 ? kernels::round_to_bf16(v) : v; };
    constexpr std::size_t lanes = float_batch::size, chains = 4;
    float_batch sums[Features][Samples][chains];
    for (auto& feature : sums)
        for (auto& sample : feature)
            for (auto& sum : sample)
                sum = float_batch(0.f);
    const auto step = [&](std::size_t p, std::size_t chain) {
        float_batch w[Features], v[Samples];
        VGG_UNROLL
        for (std::size_t f = 0; f < Features; ++f)
            w[f] = load(weight + (j + f) * in + p);
        VGG_UNROLL
        for (std::size_t s = 0; s < Samples; ++s)
            v[s] = load(x + (b + s) * in + p);
        VGG_UNROLL
        for (std::size_t f = 0; f < Features; ++f)
            VGG_UNROLL
            for (std::size_t s = 0; s < Samples; ++s)
                sums[f][s][chain] = fused_multiply_add(w[f], v[s], sums[f][s][chain]);
    };
    std::size_t p = 0;
    for (; p + chains * lanes <= in; p += chains * lanes)
        VGG_UNROLL
        for (std::size_t c = 0; c < chains; ++c)
            step(p + c * lanes, c);
    for (; p + lanes <= in; p += lanes)
        step(p, 0);
    VGG_UNROLL
    for (std::size_t f = 0; f < Features; ++f)
        VGG_UNROLL
        for (std::size_t s = 0; s < Samples; ++s) {
            const auto& partial = sums[f][s];
            float total = xsimd::hadd((partial[0] + partial[1]) + (partial[2] + partial[3]));
            for (std::size_t q = p; q < in; ++q)
                total += value(weight[(j + f) * in + q]) * value(x[(b + s) * in + q]);
            y[(b + s) * out + j + f] += total;
        }
}

/// Features of the register block of linear_dot_products, and its most samples: 2 x 2 dot
/// products of 4 partial sums each (16 registers) and 4 loads in AVX-512's 32 registers, 1 x 2
/// in AVX2's or SSE2's 16.
inline constexpr std::size_t linear_block_features = has_32_vector_registers ? 2 : 1;
inline constexpr std::size_t linear_block_samples = 2;

/// Features of the register block for a batch of one, twice as many: each feature is one stream
/// of weights from memory, and a core reads faster from more streams at once (Xeon, the 6272 ->
/// 4096 Linear, 2 threads: 4 rows at a time 25-45% faster than 2).
inline constexpr std::size_t linear_single_sample_block_features = 2 * linear_block_features;

/// linear_dot_block for `samples` (1 to linear_block_samples) samples from b.
template <bool RoundToBf16, std::size_t Features>
void linear_dot_samples(std::size_t samples, std::size_t in, std::size_t out, const float* x, const float* weight,
                        std::size_t j, std::size_t b, float* y)
{
    [&]<std::size_t... S>(std::index_sequence<S...>) {
        ((samples == S + 1 ? linear_dot_block<RoundToBf16, Features, S + 1>(in, out, x, weight, j, b, y) : void()), ...);
    }(std::make_index_sequence<linear_block_samples>{});
}

/// linear_dot_products with blocks of Block features (the last few one at a time).
template <bool RoundToBf16, std::size_t Block>
void linear_dot_feature_blocks(std::size_t batch, std::size_t in, std::size_t out, const float* x,
                               const float* weight, vgg::detail::range features, float* y)
{
    for (std::size_t j = features.begin; j < features.end;) {
        const bool whole = features.end - j >= Block;
        for (std::size_t b = 0; b < batch; b += linear_block_samples) {
            const std::size_t samples = std::min(linear_block_samples, batch - b);
            if (whole)
                linear_dot_samples<RoundToBf16, Block>(samples, in, out, x, weight, j, b, y);
            else
                linear_dot_samples<RoundToBf16, 1>(samples, in, out, x, weight, j, b, y);
        }
        j += whole ? Block : 1;
    }
}

/// y[b][j] += x[b] . weight[j] for every sample b and feature j of `features`; with RoundToBf16,
/// of both rounded to bf16 as they are loaded (a product of two bf16 values is exact in fp32, so
/// this is gemm_bf16's arithmetic without packing the weights). A block of features is read once
/// for up to linear_block_samples samples, and again (from L2) for each further group. Every
/// blocking gives the same sums.
template <bool RoundToBf16>
void linear_dot_products(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                         vgg::detail::range features, float* y)
{
    if (batch == 1)
        linear_dot_feature_blocks<RoundToBf16, linear_single_sample_block_features>(batch, in, out, x, weight,
                                                                                   features, y);
    else
        linear_dot_feature_blocks<RoundToBf16, linear_block_features>(batch, in, out, x, weight, features, y);
}

/// Weight rows linear_input_gradient reads at a time: each is one stream from memory (as
/// linear_single_sample_block_features), and every input-gradient load serves all of them.
inline constexpr std::size_t linear_gradient_rows = 8;

/// dx[b][i] += sum over Rows rows o.. of dy[b][o] weight[o][i], for the inputs i of `inputs` and
/// every sample b: each weight batch is loaded once for all samples, the sums added row by row.
template <std::size_t Rows>
void linear_input_gradient_rows(std::size_t batch, std::size_t in, std::size_t out, const float* dy,
                                const float* weight, std::size_t o, vgg::detail::range inputs, float* dx)
{
    constexpr std::size_t lanes = float_batch::size;
    std::size_t i = inputs.begin;
    for (; i + lanes <= inputs.end; i += lanes) {
        float_batch w[Rows];
        VGG_UNROLL
        for (std::size_t r = 0; r < Rows; ++r)
            w[r] = float_batch::load_unaligned(weight + (o + r) * in + i);
        for (std::size_t b = 0; b < batch; ++b) {
            float_batch sum = float_batch::load_unaligned(dx + b * in + i);
            VGG_UNROLL
            for (std::size_t r = 0; r < Rows; ++r)
                sum = fused_multiply_add(float_batch(dy[b * out + o + r]), w[r], sum);
            sum.store_unaligned(dx + b * in + i);
        }
    }
    for (; i < inputs.end; ++i)
        for (std::size_t b = 0; b < batch; ++b)
            VGG_UNROLL
            for (std::size_t r = 0; r < Rows; ++r)
                dx[b * in + i] = fused_multiply_add(dy[b * out + o + r], weight[(o + r) * in + i], dx[b * in + i]);
}

/// dx = dY W over `inputs` (overwritten) for batches up to linear_dot_product_batch: the weight
/// rows are read in order, linear_gradient_rows at a time, where gemm() would pack them in short
/// strided pieces (a row is 25 KB in the seed's first Linear: 14 ms at batch 1 on the Xeon).
/// Each input's sum runs over the rows in order, so it does not depend on how inputs are split.
inline void linear_input_gradient(std::size_t batch, std::size_t in, std::size_t out, const float* dy,
                                  const float* weight, vgg::detail::range inputs, float* dx)
{
    for (std::size_t b = 0; b < batch; ++b)
        std::fill(dx + b * in + inputs.begin, dx + b * in + inputs.end, 0.f);
    std::size_t o = 0;
    for (; o + linear_gradient_rows <= out; o += linear_gradient_rows)
        linear_input_gradient_rows<linear_gradient_rows>(batch, in, out, dy, weight, o, inputs, dx);
    for (; o < out; ++o)
        linear_input_gradient_rows<1>(batch, in, out, dy, weight, o, inputs, dx);
}

} // namespace detail

/// Output features the threads of a small batch's forward pass take at a time
/// (vgg::detail::parallel_pieces): a multiple of every register block's features, and short
/// enough that the thread last to finish does not keep the other waiting long (Zen 4, the seed's
/// fully connected layers at batch 1: 32 5.6 ms, 128 5.7, halves 5.9).
inline constexpr std::size_t linear_dot_piece_features = 32;

/// Y[batch, out] = X[batch, in] * W[out, in]^T + b. Threads split the output features, so each
/// reads a disjoint slice of the (large) weight matrix once: in pieces taken as they finish the
/// last for small batches (read at the memory's speed), a fixed share each otherwise.
inline void linear_forward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                           const float* bias, float* y, precision compute = precision::fp32)
{
    require_precision(compute);
    const auto start_from_bias = [&](vgg::detail::range features) {
        for (std::size_t b = 0; b < batch; ++b)
            std::copy(bias + features.begin, bias + features.end, y + b * out + features.begin);
    };
    if (batch <= linear_dot_product_batch) {
        vgg::detail::parallel_pieces(out, linear_dot_piece_features, 2 * batch * in, [&](vgg::detail::range features) {
            start_from_bias(features);
            compute == precision::bf16 ? detail::linear_dot_products<true>(batch, in, out, x, weight, features, y)
                                       : detail::linear_dot_products<false>(batch, in, out, x, weight, features, y);
        });
        return;
    }
    vgg::detail::parallel_ranges(out, 2 * batch * in, [&](std::size_t, std::size_t, vgg::detail::range features) {
        if (features.size() == 0)
            return;
        start_from_bias(features);
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
    if (batch <= linear_dot_product_batch && compute == precision::fp32) {
        // Threads split the inputs in whole SIMD batches, so each reads whole cache lines.
        constexpr std::size_t lanes = float_batch::size;
        vgg::detail::parallel_ranges(whole_batches(in) / lanes, 2 * batch * out * lanes,
                                     [&](std::size_t, std::size_t, vgg::detail::range batches) {
                                         const vgg::detail::range inputs{batches.begin * lanes,
                                                                         std::min(batches.end * lanes, in)};
                                         if (inputs.size() > 0)
                                             detail::linear_input_gradient(batch, in, out, dy, weight, inputs, dx);
                                     });
        return;
    }
    vgg::detail::parallel_ranges(in, 2 * batch * out, [&](std::size_t, std::size_t, vgg::detail::range inputs) {
        if (inputs.size() == 0)
            return;
        gemm(batch, inputs.size(), out, row_major(dy, out), row_major(weight + inputs.begin, in), dx + inputs.begin, in,
             gemm_update::overwrite, compute);
    });
}

} // namespace vgg::kernels
