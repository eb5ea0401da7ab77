#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm.hpp"

namespace vgg::kernels {

/// Batches up to this size multiply without gemm(): the weights are read once, in memory order,
/// where gemm() would first pack them for a product of at most one register tile's rows. Both run
/// at the memory's speed at batch 8; from 16 on gemm() is faster.
inline constexpr std::size_t linear_small_batch = 8;

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
/// of weights from memory, and a core reads faster from more streams at once.
inline constexpr std::size_t linear_single_sample_block_features = 2 * linear_block_features;

/// linear_dot_block for `samples` (1 to linear_block_samples) samples from b.
template <bool RoundToBf16, std::size_t Features>
void linear_dot_samples(std::size_t samples, std::size_t in, std::size_t out, const float* x, const float* weight,
                        std::size_t j, std::size_t b, float* y)
{
    // clang-format off
    [&]<std::size_t... S>(std::index_sequence<S...>) {
        ((samples == S + 1 ? linear_dot_block<RoundToBf16, Features, S + 1>(in, out, x, weight, j, b, y) : void()), ...);
    }(std::make_index_sequence<linear_block_samples>{});
    // clang-format on
}

/// linear_dot_products with blocks of Block features (the last few one at a time).
template <bool RoundToBf16, std::size_t Block>
void linear_dot_feature_blocks(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                               vgg::detail::range features, float* y)
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

/// y[b][j] += x[b] . weight[j] for every sample b and feature j of `features` (weight `out` rows
/// of `in`); with RoundToBf16, of both rounded to bf16 as they are loaded (a product of two bf16
/// values is exact in fp32, so this is gemm_bf16's arithmetic without packing the weights). A
/// block of features is read once for up to linear_block_samples samples, and again (from L2) for
/// each further group. Every blocking gives the same sums.
template <bool RoundToBf16>
void linear_dot_products(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                         vgg::detail::range features, float* y)
{
    if (batch == 1)
        linear_dot_feature_blocks<RoundToBf16, linear_single_sample_block_features>(batch, in, out, x, weight, features,
                                                                                    y);
    else
        linear_dot_feature_blocks<RoundToBf16, linear_block_features>(batch, in, out, x, weight, features, y);
}

/// The inputs whose weights a small batch's forward pass reads: those where some sample is not
/// zero. A zero input adds nothing (0 times a finite weight), and a ReLU before a Linear zeroes
/// about half of them, each a row of Out weights left in memory.
inline std::vector<std::uint32_t> nonzero_inputs(std::size_t batch, std::size_t in, const float* x)
{
    std::vector<std::uint32_t> inputs;
    inputs.reserve(in);
    for (std::size_t k = 0; k < in; ++k) {
        bool nonzero = false;
        for (std::size_t b = 0; b < batch; ++b)
            nonzero = nonzero || x[b * in + k] != 0.f;
        if (nonzero)
            inputs.push_back(static_cast<std::uint32_t>(k));
    }
    return inputs;
}

/// Weight rows linear_rows_forward reads at a time: each is one stream from memory (a core reads
/// faster from more streams at once), and every output load serves all of them.
inline constexpr std::size_t linear_rows_at_a_time = 8;

/// y[b][j] += x[b][k] weight[k][j] for the Rows inputs k of `rows`, in order, for the features j
/// of `features` and every sample b (weight: `in` rows of `out`, the transposed [In, Out] layout).
/// Each weight batch is loaded once for all samples. `next_rows` (null for the last block) are
/// prefetched at the same features, so their streams are under way when the next block reads them.
template <bool RoundToBf16, std::size_t Rows>
void linear_rows_block(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                       const std::uint32_t* rows, const std::uint32_t* next_rows, vgg::detail::range features, float* y)
{
    const auto value = [](float v) { return RoundToBf16 ? kernels::round_to_bf16(v) : v; };
    constexpr std::size_t lanes = float_batch::size;
    std::size_t j = features.begin;
    for (; j + lanes <= features.end; j += lanes) {
        float_batch w[Rows];
        VGG_UNROLL
        for (std::size_t r = 0; r < Rows; ++r) {
            w[r] = float_batch::load_unaligned(weight + rows[r] * out + j);
            if constexpr (RoundToBf16)
                w[r] = round_to_bf16(w[r]);
        }
        if (next_rows) {
            VGG_UNROLL
            for (std::size_t r = 0; r < Rows; ++r)
                __builtin_prefetch(weight + next_rows[r] * out + j, 0, 1); // to L2 (prefetcht2)
        }
        for (std::size_t b = 0; b < batch; ++b) {
            float_batch sum = float_batch::load_unaligned(y + b * out + j);
            VGG_UNROLL
            for (std::size_t r = 0; r < Rows; ++r)
                sum = fused_multiply_add(float_batch(value(x[b * in + rows[r]])), w[r], sum);
            sum.store_unaligned(y + b * out + j);
        }
    }
    // The last features, row by row: the features' sums are independent chains, not one.
    for (std::size_t b = 0; b < batch; ++b)
        for (std::size_t r = 0; r < Rows; ++r) {
            const float input = value(x[b * in + rows[r]]);
            for (std::size_t f = j; f < features.end; ++f)
                y[b * out + f] = fused_multiply_add(input, value(weight[rows[r] * out + f]), y[b * out + f]);
        }
}

/// y[b][j] += sum over the inputs k of `rows` of x[b][k] weight[k][j] for the features j of
/// `features` (weight [In, Out]): the rows are read in order, linear_rows_at_a_time at a time, and
/// each sum runs over them in order, so it depends neither on how the features are split nor on
/// which other samples share the batch (the rows where they alone are not zero add zero).
template <bool RoundToBf16>
void linear_rows_forward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                         const std::vector<std::uint32_t>& rows, vgg::detail::range features, float* y)
{
    constexpr std::size_t block = linear_rows_at_a_time;
    std::size_t r = 0;
    for (; r + block <= rows.size(); r += block)
        linear_rows_block<RoundToBf16, block>(batch, in, out, x, weight, rows.data() + r,
                                              r + 2 * block <= rows.size() ? rows.data() + r + block : nullptr,
                                              features, y);
    for (; r < rows.size(); ++r)
        linear_rows_block<RoundToBf16, 1>(batch, in, out, x, weight, rows.data() + r, nullptr, features, y);
}

} // namespace detail

/// Inputs the threads of a small batch's input gradient take at a time: a multiple of every
/// register block's features, and short enough that the thread last to finish does not keep the
/// other waiting long.
inline constexpr std::size_t linear_dot_piece_features = 32;

/// Y[batch, out] = X[batch, in] * W[in, out] + b (W is PyTorch's weight transposed). Threads split
/// the output features, a fixed share each, so each reads its columns of the (large) weight matrix
/// once; small batches skip the rows of inputs that are zero in every sample.
inline void linear_forward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                           const float* bias, float* y, precision compute = precision::fp32)
{
    require_precision(compute);
    const auto start_from_bias = [&](vgg::detail::range features) {
        for (std::size_t b = 0; b < batch; ++b)
            std::copy(bias + features.begin, bias + features.end, y + b * out + features.begin);
    };
    if (batch <= linear_small_batch) {
        const auto rows = detail::nonzero_inputs(batch, in, x);
        // Fixed shares of whole SIMD batches: a row's share is long enough to stream from memory,
        // and fixed halves beat pieces taken as threads finish.
        constexpr std::size_t lanes = float_batch::size;
        vgg::detail::parallel_ranges(
            whole_batches(out) / lanes, 2 * batch * rows.size() * lanes,
            [&](std::size_t, std::size_t, vgg::detail::range batches) {
                const vgg::detail::range features{batches.begin * lanes, std::min(batches.end * lanes, out)};
                if (features.size() == 0)
                    return;
                start_from_bias(features);
                compute == precision::bf16
                    ? detail::linear_rows_forward<true>(batch, in, out, x, weight, rows, features, y)
                    : detail::linear_rows_forward<false>(batch, in, out, x, weight, rows, features, y);
            });
        return;
    }
    vgg::detail::parallel_ranges(out, 2 * batch * in, [&](std::size_t, std::size_t, vgg::detail::range features) {
        if (features.size() == 0)
            return;
        start_from_bias(features);
        gemm(batch, features.size(), in, row_major(x, in), row_major(weight + features.begin, out), y + features.begin,
             out, gemm_update::accumulate, compute);
    });
}

/// dW = X^T dY [in, out] and db = column sums of dY (both overwritten) when dweight is not null
/// (null: a frozen layer); dX = dY W^T when dx is not null.
inline void linear_backward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* dy,
                            const float* weight, float* dweight, float* dbias, float* dx,
                            precision compute = precision::fp32)
{
    require_precision(compute);
    const auto G = view(dy, batch, out);
    Eigen::Map<Eigen::RowVectorXf> db(dbias, dweight ? static_cast<Eigen::Index>(out) : 0);
    if (dweight)
        vgg::detail::parallel_ranges(out, 2 * batch * in, [&](std::size_t, std::size_t, vgg::detail::range features) {
            if (features.size() == 0)
                return;
            gemm(in, features.size(), batch, row_major(x, in).transposed(), row_major(dy + features.begin, out),
                 dweight + features.begin, out, gemm_update::overwrite, compute);
            const auto begin = static_cast<Eigen::Index>(features.begin),
                       count = static_cast<Eigen::Index>(features.size());
            db.segment(begin, count) = G.middleCols(begin, count).colwise().sum();
        });
    if (!dx)
        return;
    if (batch <= linear_small_batch && compute == precision::fp32) {
        // dx[b][i] = dy[b] . weight[i]: dot products along the rows of [In, Out], read once in order.
        vgg::detail::parallel_pieces(in, linear_dot_piece_features, 2 * batch * out, [&](vgg::detail::range inputs) {
            for (std::size_t b = 0; b < batch; ++b)
                std::fill(dx + b * in + inputs.begin, dx + b * in + inputs.end, 0.f);
            detail::linear_dot_products<false>(batch, out, in, dy, weight, inputs, dx);
        });
        return;
    }
    vgg::detail::parallel_ranges(in, 2 * batch * out, [&](std::size_t, std::size_t, vgg::detail::range inputs) {
        if (inputs.size() == 0)
            return;
        gemm(batch, inputs.size(), out, row_major(dy, out), row_major(weight + inputs.begin * out, out).transposed(),
             dx + inputs.begin, in, gemm_update::overwrite, compute);
    });
}

} // namespace vgg::kernels
