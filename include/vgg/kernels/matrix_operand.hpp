#pragma once
#include <algorithm>
#include <cstddef>

namespace vgg::kernels {

/// A read-only operand of gemm(): element (i, j) is data[i * row_stride + j * column_stride],
/// so a transposed matrix is the same memory with the strides swapped.
struct matrix_operand {
    const float* data;
    std::size_t row_stride, column_stride;

    const float* at(std::size_t i, std::size_t j) const { return data + i * row_stride + j * column_stride; }
    float operator()(std::size_t i, std::size_t j) const { return *at(i, j); }
    matrix_operand transposed() const { return {data, column_stride, row_stride}; }
    matrix_operand block(std::size_t i, std::size_t j) const { return {at(i, j), row_stride, column_stride}; }
};
/// A row-major rows x columns matrix as a gemm() operand.
inline matrix_operand row_major(const float* data, std::size_t columns) { return {data, columns, 1}; }

/// Whether gemm() overwrites c or adds to it.
enum class gemm_update { overwrite, accumulate };

/// A product of depth 0 (rows x columns of c): zeros, or c left as it is.
inline void empty_product(std::size_t rows, std::size_t columns, float* c, std::size_t ldc, gemm_update update)
{
    if (update == gemm_update::overwrite)
        for (std::size_t r = 0; r < rows; ++r)
            std::fill(c + r * ldc, c + r * ldc + columns, 0.f);
}

} // namespace vgg::kernels
