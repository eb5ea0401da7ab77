#pragma once
#include <cstddef>

#include "vgg/kernels/simd.hpp"

// Winograd F(m x m, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): each m x m output tile of a 3x3 convolution comes from an (m + 2) x (m + 2) input
// window through (m + 2)^2 multiplies per channel pair instead of 9 m^2. In transformed space
// the convolution becomes (m + 2)^2 independent matrix products, one per element xi of the window:
//     M[xi] (out x tiles) = U[xi] (out x in) * V[xi] (in x tiles),
// with U the transformed kernels, V the transformed input windows; the output transform folds M
// back into m x m tiles. F(2x2, 3x3) uses the points 0, 1, -1, whose coefficients (0, +-1, 1/2)
// keep the rounding error close to that of the direct sum; F(4x4, 3x3) adds 2 and -2 (2.25
// multiplies per output instead of 4, at about 6 times F(2x2)'s rounding error: 2.7e-6 relative
// against 4.3e-7 for 256 input channels).
namespace vgg::kernels::detail {

// The 1-D transforms; each runs on floats and, unchanged, on SIMD batches of tiles.
// Kernel: u = G g, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1].
template <class T>
constexpr void winograd_kernel_1d(const T g[3], T u[4])
{
    u[0] = g[0];
    u[1] = (g[0] + g[1] + g[2]) * 0.5f;
    u[2] = (g[0] - g[1] + g[2]) * 0.5f;
    u[3] = g[2];
}
// Input: v = B^T d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1].
template <class T>
constexpr void winograd_input_1d(const T d[4], T v[4])
{
    v[0] = d[0] - d[2];
    v[1] = d[1] + d[2];
    v[2] = d[2] - d[1];
    v[3] = d[1] - d[3];
}
// Output: y = A^T m, A^T = [1 1 1 0; 0 1 -1 -1].
template <class T>
constexpr void winograd_output_1d(const T m[4], T y[2])
{
    y[0] = m[0] + m[1] + m[2];
    y[1] = m[1] - m[2] - m[3];
}

// F(4x4, 3x3). Kernel: u = G g, G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6;
// 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
template <class T>
constexpr void winograd4_kernel_1d(const T g[3], T u[6])
{
    const T even = (g[0] + g[2]) * (-1.f / 6), odd = g[1] * (-1.f / 6);
    const T even_small = g[0] * (1.f / 24) + g[2] * (1.f / 6), odd_small = g[1] * (1.f / 12);
    u[0] = g[0] * 0.25f;
    u[1] = even + odd;
    u[2] = even - odd;
    u[3] = even_small + odd_small;
    u[4] = even_small - odd_small;
    u[5] = g[2];
}
// Input: v = B^T d, B^T = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0;
// 0 2 -1 -2 1 0; 0 4 0 -5 0 1].
template <class T>
constexpr void winograd4_input_1d(const T d[6], T v[6])
{
    const T four = d[4] - d[2] * 4.f, four_odd = d[3] - d[1] * 4.f;
    const T two = d[4] - d[2], two_odd = (d[3] - d[1]) * 2.f;
    v[0] = d[0] * 4.f - d[2] * 5.f + d[4];
    v[1] = four + four_odd;
    v[2] = four - four_odd;
    v[3] = two + two_odd;
    v[4] = two - two_odd;
    v[5] = d[1] * 4.f - d[3] * 5.f + d[5];
}
// Output: y = A^T m, A^T = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1].
template <class T>
constexpr void winograd4_output_1d(const T m[6], T y[4])
{
    const T sum_one = m[1] + m[2], difference_one = m[1] - m[2];
    const T sum_two = m[3] + m[4], difference_two = m[3] - m[4];
    y[0] = m[0] + sum_one + sum_two;
    y[1] = difference_one + difference_two * 2.f;
    y[2] = sum_one + sum_two * 4.f;
    y[3] = difference_one + difference_two * 8.f + m[5];
}

// Gradient tiles: a = A g, A = [1 0; 1 1; 1 -1; 0 -1] (the adjoint of the output transform).
template <class T>
constexpr void winograd_gradient_1d(const T g[2], T a[4])
{
    a[0] = g[0];
    a[1] = g[0] + g[1];
    a[2] = g[0] - g[1];
    a[3] = -g[1];
}
// Weight gradient: w = G^T s (the adjoint of the kernel transform).
template <class T>
constexpr void winograd_weight_gradient_1d(const T s[4], T w[3])
{
    w[0] = s[0] + (s[1] + s[2]) * 0.5f;
    w[1] = (s[1] - s[2]) * 0.5f;
    w[2] = (s[1] + s[2]) * 0.5f + s[3];
}
// F(4x4, 3x3)'s gradient tiles: a = A g, A the transpose of winograd4_output_1d's A^T.
template <class T>
constexpr void winograd4_gradient_1d(const T g[4], T a[6])
{
    const T even = g[0] + g[2], odd = g[1] + g[3];
    const T even_four = g[0] + g[2] * 4.f, odd_eight = g[1] * 2.f + g[3] * 8.f;
    a[0] = g[0];
    a[1] = even + odd;
    a[2] = even - odd;
    a[3] = even_four + odd_eight;
    a[4] = even_four - odd_eight;
    a[5] = g[3];
}
// F(4x4, 3x3)'s weight gradient: w = G^T s, G that of winograd4_kernel_1d.
template <class T>
constexpr void winograd4_weight_gradient_1d(const T s[6], T w[3])
{
    const T sum_one = s[1] + s[2], difference_one = s[1] - s[2];
    const T sum_two = s[3] + s[4], difference_two = s[3] - s[4];
    w[0] = s[0] * 0.25f - sum_one * (1.f / 6) + sum_two * (1.f / 24);
    w[1] = difference_two * (1.f / 12) - difference_one * (1.f / 6);
    w[2] = (sum_two - sum_one) * (1.f / 6) + s[5];
}

// y = F x F^T for a square tile x, F the 1-D transform `f` (In values to Out): f runs along
// every row, then along every column of the result. Always inlined: out of line, its arrays of SIMD
// batches go through memory.
template <std::size_t In, std::size_t Out, class T, class Transform>
[[gnu::always_inline]] inline void transform_2d(const T (&x)[In][In], T (&y)[Out][Out], Transform f)
{
    T rows[In][Out], column[In], result[Out];
    VGG_UNROLL
    for (std::size_t r = 0; r < In; ++r)
        f(x[r], rows[r]);
    VGG_UNROLL
    for (std::size_t j = 0; j < Out; ++j) {
        VGG_UNROLL
        for (std::size_t r = 0; r < In; ++r)
            column[r] = rows[r][j];
        f(column, result);
        VGG_UNROLL
        for (std::size_t i = 0; i < Out; ++i)
            y[i][j] = result[i];
    }
}
/// transform_2d of one square of SIMD batches read by load(i) (element i, row after row) and
/// written by store(o, value): the loops around every transform of the Winograd drivers.
template <std::size_t In, std::size_t Out, class Load, class Transform, class Store>
[[gnu::always_inline]] inline void transform_square(Load&& load, Transform f, Store&& store)
{
    using T = decltype(load(std::size_t{}));
    T x[In][In], y[Out][Out];
    VGG_UNROLL
    for (std::size_t i = 0; i < In * In; ++i)
        x[i / In][i % In] = load(i);
    transform_2d(x, y, f);
    VGG_UNROLL
    for (std::size_t o = 0; o < Out * Out; ++o)
        store(o, y[o / Out][o % Out]);
}

/// The transforms of F(Tile x Tile, 3x3), windows of Tile + 2 values a side: the forward pass's,
/// and the weight gradient's (gradient tiles in, sums out).
template <std::size_t Tile>
struct winograd_transforms;
template <>
struct winograd_transforms<2> {
    static constexpr auto kernel = [](const auto* in, auto* out) { winograd_kernel_1d(in, out); };
    static constexpr auto input = [](const auto* in, auto* out) { winograd_input_1d(in, out); };
    static constexpr auto output = [](const auto* in, auto* out) { winograd_output_1d(in, out); };
    static constexpr auto gradient = [](const auto* in, auto* out) { winograd_gradient_1d(in, out); };
    static constexpr auto weight_gradient = [](const auto* in, auto* out) { winograd_weight_gradient_1d(in, out); };
};
template <>
struct winograd_transforms<4> {
    static constexpr auto kernel = [](const auto* in, auto* out) { winograd4_kernel_1d(in, out); };
    static constexpr auto input = [](const auto* in, auto* out) { winograd4_input_1d(in, out); };
    static constexpr auto output = [](const auto* in, auto* out) { winograd4_output_1d(in, out); };
    static constexpr auto gradient = [](const auto* in, auto* out) { winograd4_gradient_1d(in, out); };
    static constexpr auto weight_gradient = [](const auto* in, auto* out) { winograd4_weight_gradient_1d(in, out); };
};

} // namespace vgg::kernels::detail
