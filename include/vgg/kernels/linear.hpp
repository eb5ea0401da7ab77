#pragma once
#include <cstddef>

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/gemm.hpp"

namespace vgg::kernels {

/// Y[batch, out] = X[batch, in] * W[out, in]^T + b. Threads split the output features, so each
/// reads a disjoint slice of the (large) weight matrix once.
inline void linear_forward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* weight,
                           const float* bias, float* y)
{
    const auto X = view(x, batch, in);
    const auto W = view(weight, out, in);
    auto Y = view(y, batch, out);
    const Eigen::Map<const Eigen::RowVectorXf> b(bias, static_cast<Eigen::Index>(out));
    detail::parallel_ranges(out, [&](std::size_t, std::size_t, detail::range features) {
        if (features.size() == 0)
            return;
        const auto begin = static_cast<Eigen::Index>(features.begin), count = static_cast<Eigen::Index>(features.size());
        auto slice = Y.middleCols(begin, count);
        slice.rowwise() = b.segment(begin, count);
        slice.noalias() += X * W.middleRows(begin, count).transpose();
    });
}

/// dW = dY^T X and db = column sums of dY (both overwritten); dX = dY W when dx is not null.
inline void linear_backward(std::size_t batch, std::size_t in, std::size_t out, const float* x, const float* dy,
                            const float* weight, float* dweight, float* dbias, float* dx)
{
    const auto X = view(x, batch, in);
    const auto G = view(dy, batch, out);
    const auto W = view(weight, out, in);
    auto dW = view(dweight, out, in);
    Eigen::Map<Eigen::RowVectorXf> db(dbias, static_cast<Eigen::Index>(out));
    detail::parallel_ranges(out, [&](std::size_t, std::size_t, detail::range features) {
        if (features.size() == 0)
            return;
        const auto begin = static_cast<Eigen::Index>(features.begin), count = static_cast<Eigen::Index>(features.size());
        dW.middleRows(begin, count).noalias() = G.middleCols(begin, count).transpose() * X;
        db.segment(begin, count) = G.middleCols(begin, count).colwise().sum();
    });
    if (!dx)
        return;
    auto dX = view(dx, batch, in);
    detail::parallel_ranges(in, [&](std::size_t, std::size_t, detail::range inputs) {
        if (inputs.size() == 0)
            return;
        const auto begin = static_cast<Eigen::Index>(inputs.begin), count = static_cast<Eigen::Index>(inputs.size());
        dX.middleCols(begin, count).noalias() = G * W.middleCols(begin, count);
    });
}

} // namespace vgg::kernels
