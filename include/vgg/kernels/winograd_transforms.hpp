#pragma once
#include <cstddef>

// Winograd F(2x2, 3x3) (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks",
// 2016): each 2x2 output tile of a 3x3 convolution comes from a 4x4 input tile through 16
// multiplies per channel pair instead of 36. In transformed space the convolution becomes 16
// independent matrix products, one per element xi of the 4x4 tile:
//     M[xi] (out x tiles) = U[xi] (out x in) * V[xi] (in x tiles),
// with U the transformed kernels, V the transformed input tiles; the output transform folds M
// back into 2x2 tiles. Transforms use the points 0, 1, -1, whose coefficients (0, +-1, 1/2)
// keep the rounding error close to that of the direct sum.
namespace vgg::kernels::detail {

// The 1-D transforms; each runs on floats and, unchanged, on SIMD batches of tiles.
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

// Gradient tiles: a = A g, A = [1 0; 1 1; 1 -1; 0 -1] (the adjoint of the output transform).
template <class T>
void winograd_gradient_1d(const T g[2], T a[4])
{
    a[0] = g[0];
    a[1] = g[0] + g[1];
    a[2] = g[0] - g[1];
    a[3] = -g[1];
}
// Weight gradient: w = G^T s (the adjoint of the kernel transform).
template <class T>
void winograd_weight_gradient_1d(const T s[4], T w[3])
{
    w[0] = s[0] + (s[1] + s[2]) * 0.5f;
    w[1] = (s[1] - s[2]) * 0.5f;
    w[2] = (s[1] + s[2]) * 0.5f + s[3];
}

// y = F x F^T for a square tile x, F the 1-D transform `f` (In values to Out): f runs along
// every row, then along every column of the result.
template <std::size_t In, std::size_t Out, class T, class Transform>
void transform_2d(const T (&x)[In][In], T (&y)[Out][Out], Transform f)
{
    T rows[In][Out], column[In], result[Out];
    for (std::size_t r = 0; r < In; ++r)
        f(x[r], rows[r]);
    for (std::size_t j = 0; j < Out; ++j) {
        for (std::size_t r = 0; r < In; ++r)
            column[r] = rows[r][j];
        f(column, result);
        for (std::size_t i = 0; i < Out; ++i)
            y[i][j] = result[i];
    }
}
constexpr auto kernel_transform = [](const auto* in, auto* out) { winograd_kernel_1d(in, out); };
constexpr auto input_transform = [](const auto* in, auto* out) { winograd_input_1d(in, out); };
constexpr auto output_transform = [](const auto* in, auto* out) { winograd_output_1d(in, out); };
constexpr auto gradient_transform = [](const auto* in, auto* out) { winograd_gradient_1d(in, out); };
constexpr auto weight_gradient_transform = [](const auto* in, auto* out) { winograd_weight_gradient_1d(in, out); };

} // namespace vgg::kernels::detail
