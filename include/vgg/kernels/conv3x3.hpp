#pragma once
#include <cstddef>
#include <vector>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/elementwise.hpp"
#include "vgg/kernels/gemm.hpp"
#include "vgg/kernels/im2col.hpp"

namespace vgg::kernels {

/// Sizes of a 3x3, stride-1, pad-1 convolution.
struct conv3x3_dims {
    std::size_t in_channels, out_channels, height, width;
    std::size_t pixels() const { return height * width; }
    std::size_t patch() const { return in_channels * 9; }
};

/// y = W * im2col(x) + b for a batch, optionally followed by ReLU. Weights are
/// [out][in][3][3] as in PyTorch. Images are split over threads, one column buffer per thread
/// (a whole batch of columns would be hundreds of MB).
inline void conv3x3_forward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                            const float* bias, float* y, bool fuse_relu)
{
    const std::size_t in_size = d.in_channels * d.pixels(), out_size = d.out_channels * d.pixels();
    const auto w = view(weight, d.out_channels, d.patch());
    const Eigen::Map<const Eigen::VectorXf> b(bias, static_cast<Eigen::Index>(d.out_channels));
    detail::parallel_ranges(batch, [&](std::size_t, std::size_t, detail::range images) {
        aligned_vector<float> columns(d.patch() * d.pixels());
        for (std::size_t n = images.begin; n < images.end; ++n) {
            im2col_3x3(x + n * in_size, d.in_channels, d.height, d.width, columns.data());
            auto out = view(y + n * out_size, d.out_channels, d.pixels());
            // Start from the bias and accumulate, which saves Eigen's zeroing pass.
            out.colwise() = b;
            out.noalias() += w * view(columns.data(), d.patch(), d.pixels());
            if (fuse_relu)
                relu_inplace(out.data(), out_size);
        }
    });
}

/// Gradients of a batch: dweight and dbias are overwritten with the sums over the batch;
/// dx (if not null) is overwritten with the input gradient. Each thread sums its images into
/// its own accumulators, reduced in thread order so a given thread count is reproducible.
inline void conv3x3_backward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* dy,
                             const float* weight, float* dweight, float* dbias, float* dx)
{
    const std::size_t in_size = d.in_channels * d.pixels(), out_size = d.out_channels * d.pixels();
    const std::size_t weight_size = d.out_channels * d.patch();
    const auto w = view(weight, d.out_channels, d.patch());
    const int max_threads = detail::max_threads();
    std::vector<aligned_vector<float>> partial(static_cast<std::size_t>(max_threads));
    std::size_t used_threads = 1;
    detail::parallel_ranges(batch, [&](std::size_t thread, std::size_t threads, detail::range images) {
        if (thread == 0)
            used_threads = threads;
        auto& acc = partial[thread];
        acc.assign(weight_size + d.out_channels, 0.f);
        auto dw = view(acc.data(), d.out_channels, d.patch());
        Eigen::Map<Eigen::VectorXf> db(acc.data() + weight_size, static_cast<Eigen::Index>(d.out_channels));
        aligned_vector<float> columns(d.patch() * d.pixels());
        for (std::size_t n = images.begin; n < images.end; ++n) {
            const auto g = view(dy + n * out_size, d.out_channels, d.pixels());
            im2col_3x3(x + n * in_size, d.in_channels, d.height, d.width, columns.data());
            const auto cols = view(columns.data(), d.patch(), d.pixels());
            dw.noalias() += g * cols.transpose();
            db += g.rowwise().sum();
            if (dx) {
                // The columns are no longer needed: reuse them for the column gradient.
                auto dcols = view(columns.data(), d.patch(), d.pixels());
                dcols.noalias() = w.transpose() * g;
                col2im_3x3(columns.data(), d.in_channels, d.height, d.width, dx + n * in_size);
            }
        }
    });
    std::fill(dweight, dweight + weight_size, 0.f);
    std::fill(dbias, dbias + d.out_channels, 0.f);
    for (std::size_t t = 0; t < used_threads; ++t) {
        const float* acc = partial[t].data();
        for (std::size_t i = 0; i < weight_size; ++i)
            dweight[i] += acc[i];
        for (std::size_t o = 0; o < d.out_channels; ++o)
            dbias[o] += acc[weight_size + o];
    }
}

} // namespace vgg::kernels
