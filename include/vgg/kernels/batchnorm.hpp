#pragma once
#include <cstddef>

#include "vgg/detail/xsimd.hpp"

#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/simd.hpp"

namespace vgg::kernels {

/// A batch of NCHW images as batch norm sees it: `channels` statistics, each over `batch`
/// planes of `plane` values.
struct batchnorm_dims {
    std::size_t batch, channels, plane;
    std::size_t count() const { return batch * plane; } ///< values per channel
};

namespace detail {

/// Sum over one plane of (a[i] - a_centre) * (b[i] - b_centre): in float lanes, returned in
/// double so that sums over many planes keep their precision.
inline double centred_dot(const float* a, float a_centre, const float* b, float b_centre, std::size_t n)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t vector_end = n - n % lanes;
    const float_batch ca(a_centre), cb(b_centre);
    float_batch sum(0.f);
    for (std::size_t i = 0; i < vector_end; i += lanes)
        sum = xsimd::fma(float_batch::load_unaligned(a + i) - ca, float_batch::load_unaligned(b + i) - cb, sum);
    double total = xsimd::hadd(sum);
    for (std::size_t i = vector_end; i < n; ++i)
        total += double(a[i] - a_centre) * double(b[i] - b_centre);
    return total;
}

/// Sum over one plane of a[i] - centre.
inline double centred_sum(const float* a, float centre, std::size_t n)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t vector_end = n - n % lanes;
    const float_batch c(centre);
    float_batch sum(0.f);
    for (std::size_t i = 0; i < vector_end; i += lanes)
        sum += float_batch::load_unaligned(a + i) - c;
    double total = xsimd::hadd(sum);
    for (std::size_t i = vector_end; i < n; ++i)
        total += double(a[i] - centre);
    return total;
}

/// out[i] = a_scale * a[i] + b_scale * (b[i] - b_centre) + shift over one plane; a or b may be
/// null (the term is left out). Centring b before scaling keeps precision where its values sit
/// far from zero.
inline void combine_plane(const float* a, float a_scale, const float* b, float b_centre, float b_scale, float shift,
                          float* out, std::size_t n)
{
    constexpr std::size_t lanes = float_batch::size;
    const std::size_t vector_end = n - n % lanes;
    const float_batch as(a_scale), bc(b_centre), bs(b_scale), t(shift);
    for (std::size_t i = 0; i < vector_end; i += lanes) {
        auto v = t;
        if (a)
            v = xsimd::fma(float_batch::load_unaligned(a + i), as, v);
        if (b)
            v = xsimd::fma(float_batch::load_unaligned(b + i) - bc, bs, v);
        v.store_unaligned(out + i);
    }
    for (std::size_t i = vector_end; i < n; ++i)
        out[i] = (a ? a[i] * a_scale : 0.f) + (b ? (b[i] - b_centre) * b_scale : 0.f) + shift;
}

/// Runs body(c) for every channel, the channels split between threads.
template <class Body>
void for_each_channel(const batchnorm_dims& d, std::size_t operations_per_value, Body&& body)
{
    vgg::detail::parallel_ranges(d.channels, d.count() * operations_per_value,
                                 [&](std::size_t, std::size_t, auto mine) {
                                     for (std::size_t c = mine.begin; c < mine.end; ++c)
                                         body(c);
                                 });
}

} // namespace detail

/// Per-channel mean and biased variance (divided by the count, as batch norm normalises with).
/// Two passes, the second about the first's mean, so a large mean costs no precision.
inline void batchnorm_statistics(const batchnorm_dims& d, const float* x, float* mean, float* variance)
{
    detail::for_each_channel(d, 3, [&](std::size_t c) {
        double sum = 0;
        for (std::size_t n = 0; n < d.batch; ++n)
            sum += detail::centred_sum(x + (n * d.channels + c) * d.plane, 0.f, d.plane);
        const float m = float(sum / double(d.count()));
        double squares = 0;
        for (std::size_t n = 0; n < d.batch; ++n) {
            const float* plane = x + (n * d.channels + c) * d.plane;
            squares += detail::centred_dot(plane, m, plane, m, d.plane);
        }
        mean[c] = m;
        variance[c] = float(squares / double(d.count()));
    });
}

/// y = (x - mean[c]) * scale[c] + shift[c], channel by channel: batch norm once its statistics are known.
inline void batchnorm_apply(const batchnorm_dims& d, const float* x, const float* mean, const float* scale,
                            const float* shift, float* y)
{
    detail::for_each_channel(d, 3, [&](std::size_t c) {
        for (std::size_t n = 0; n < d.batch; ++n) {
            const std::size_t offset = (n * d.channels + c) * d.plane;
            detail::combine_plane(nullptr, 0.f, x + offset, mean[c], scale[c], shift[c], y + offset, d.plane);
        }
    });
}

/// Backward of y = gamma * (x - mean) * inv_std + beta. With `batch_statistics` the mean and
/// inv_std were the batch's own (training), so they depend on x too; otherwise they were
/// constants (the running statistics, evaluation). Writes dgamma and dbeta unless dgamma is null
/// (a frozen layer), and dx when it is not null.
inline void batchnorm_backward(const batchnorm_dims& d, const float* x, const float* dy, const float* mean,
                               const float* inv_std, const float* gamma, bool batch_statistics, float* dgamma,
                               float* dbeta, float* dx)
{
    detail::for_each_channel(d, 6, [&](std::size_t c) {
        double dy_sum = 0, dy_centred_x = 0;
        for (std::size_t n = 0; n < d.batch; ++n) {
            const std::size_t offset = (n * d.channels + c) * d.plane;
            dy_sum += detail::centred_sum(dy + offset, 0.f, d.plane);
            dy_centred_x += detail::centred_dot(dy + offset, 0.f, x + offset, mean[c], d.plane);
        }
        if (dgamma) { // not null unless the layer is frozen
            dbeta[c] = float(dy_sum);
            dgamma[c] = float(dy_centred_x * inv_std[c]);
        }
        if (!dx)
            return;
        // dx = a * dy + b * (x - mean) + shift, with a = gamma * inv_std; in training the mean of dy
        // and the projection of dy on the normalised x (both over the count) are taken off too.
        const double a = double(gamma[c]) * inv_std[c], count = double(d.count());
        const double b = batch_statistics ? -a * double(inv_std[c]) * double(inv_std[c]) * dy_centred_x / count : 0.0;
        const double shift = batch_statistics ? -a * dy_sum / count : 0.0;
        for (std::size_t n = 0; n < d.batch; ++n) {
            const std::size_t offset = (n * d.channels + c) * d.plane;
            detail::combine_plane(dy + offset, float(a), batch_statistics ? x + offset : nullptr, mean[c], float(b),
                                  float(shift), dx + offset, d.plane);
        }
    });
}

} // namespace vgg::kernels
