#pragma once
#include <cstddef>

#include <Eigen/Core>

#include "vgg/detail/blas.hpp"

namespace vgg::kernels {

/// Row-major matrix views over tensor memory; every GEMM in the library goes through Eigen.
using row_matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using matrix_view = Eigen::Map<row_matrix>;
using const_matrix_view = Eigen::Map<const row_matrix>;

inline matrix_view view(float* data, std::size_t rows, std::size_t cols)
{
    return {data, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)};
}
inline const_matrix_view view(const float* data, std::size_t rows, std::size_t cols)
{
    return {data, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(cols)};
}

} // namespace vgg::kernels
