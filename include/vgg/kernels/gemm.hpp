#pragma once
#include <algorithm>
#include <cstddef>

#include <Eigen/Core>

#include "vgg/core/precision.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/kernels/gemm_bf16.hpp"
#include "vgg/kernels/gemm_microkernel.hpp"
#include "vgg/kernels/matrix_operand.hpp"

namespace vgg::kernels {

/// Row-major matrix views over tensor memory, for the small reductions (bias gradients) that
/// go through Eigen; the products on the hot path go through gemm() below.
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

/// Cache blocking of gemm() (Goto and van de Geijn's scheme). A depth block of one register
/// tile's left operand (gemm_depth_block x micro_rows, 8 KB) stays in L1; the packed right
/// operand block (gemm_depth_block x gemm_column_block, at most 512 KB) in L2, which is 1 MiB
/// per core on Zen 4 and 2 MiB on Intel's recent server cores.
inline constexpr std::size_t gemm_depth_block = 256;
inline constexpr std::size_t gemm_column_block =
    (512 * 1024 / sizeof(float) / gemm_depth_block) / micro_columns * micro_columns;
inline constexpr std::size_t gemm_row_block = 16 * micro_rows;

namespace detail {

/// Per-thread packing buffers, grown to the largest request and then reused.
inline float* packing_buffer(std::size_t which, std::size_t size)
{
    thread_local aligned_vector<float> buffers[2];
    return vgg::detail::reserve(buffers[which], size);
}

/// One panel (depth x micro_rows, `count` of them inside a) of a row-major a: up to lanes rows
/// at a time are loaded lanes steps at a time as a square (the rest of it zero) and transposed
/// in registers.
inline void pack_left_panel_from_rows(matrix_operand a, std::size_t depth, std::size_t count, float* panel)
{
    constexpr std::size_t lanes = float_batch::size;
    VGG_UNROLL
    for (std::size_t r0 = 0; r0 < micro_rows; r0 += lanes) {
        const std::size_t group = std::min(lanes, micro_rows - r0);
        for (std::size_t p0 = 0; p0 < depth; p0 += lanes) {
            const std::size_t steps = std::min(lanes, depth - p0);
            float_batch square[lanes];
            VGG_UNROLL
            for (std::size_t r = 0; r < lanes; ++r)
                square[r] = r0 + r < count ? load_first(a.at(r0 + r, p0), steps) : float_batch(0.f);
            transpose(square);
            for (std::size_t p = 0; p < steps; ++p)
                store_first(square[p], panel + (p0 + p) * micro_rows + r0, group);
        }
    }
}

/// Packs rows x depth of a into panels of micro_rows rows, each stored depth x micro_rows
/// (the layout gemm_tile reads); rows past the end are zero.
inline void pack_left(matrix_operand a, std::size_t rows, std::size_t depth, float* packed)
{
    for (std::size_t r0 = 0; r0 < rows; r0 += micro_rows, packed += micro_rows * depth) {
        const std::size_t count = std::min(micro_rows, rows - r0);
        if (a.column_stride == 1) // rows of a are contiguous
            pack_left_panel_from_rows(a.block(r0, 0), depth, count, packed);
        else
            for (std::size_t p = 0; p < depth; ++p)
                VGG_UNROLL
        for (std::size_t r = 0; r < micro_rows; ++r)
            packed[p * micro_rows + r] = r < count ? a(r0 + r, p) : 0.f;
    }
}

/// One panel (depth x micro_columns, `count` of them inside b) of a b whose columns are
/// contiguous (a transposed row-major matrix, as a Linear layer's weights in its forward pass):
/// squares of lanes columns x lanes steps are loaded as rows and transposed in registers.
inline void pack_right_panel_from_columns(matrix_operand b, std::size_t depth, std::size_t count, float* panel)
{
    constexpr std::size_t lanes = float_batch::size;
    for (std::size_t first = 0; first < micro_columns; first += lanes) {
        const std::size_t columns = first < count ? std::min(lanes, count - first) : 0;
        for (std::size_t p0 = 0; p0 < depth; p0 += lanes) {
            const std::size_t steps = std::min(lanes, depth - p0);
            float_batch square[lanes];
            VGG_UNROLL
            for (std::size_t j = 0; j < lanes; ++j)
                square[j] = j < columns ? load_first(b.at(p0, first + j), steps) : float_batch(0.f);
            transpose(square);
            for (std::size_t p = 0; p < steps; ++p)
                square[p].store_aligned(panel + (p0 + p) * micro_columns + first);
        }
    }
}

/// Packs depth x columns of b into panels of micro_columns columns, each stored depth x
/// micro_columns (aligned); columns past the end are zero.
inline void pack_right(matrix_operand b, std::size_t depth, std::size_t columns, float* packed)
{
    for (std::size_t j0 = 0; j0 < columns; j0 += micro_columns, packed += micro_columns * depth) {
        const std::size_t count = std::min(micro_columns, columns - j0);
        if (b.column_stride == 1) // rows of b are contiguous
            for (std::size_t p = 0; p < depth; ++p) {
                float* row = packed + p * micro_columns;
                const float* source = b.at(p, j0);
                std::copy(source, source + count, row);
                std::fill(row + count, row + micro_columns, 0.f);
            }
        else if (b.row_stride == 1)
            pack_right_panel_from_columns(b.block(0, j0), depth, count, packed);
        else {
            for (std::size_t j = 0; j < count; ++j)
                for (std::size_t p = 0; p < depth; ++p)
                    packed[p * micro_columns + j] = b(p, j0 + j);
            for (std::size_t p = 0; p < depth; ++p)
                std::fill(packed + p * micro_columns + count, packed + (p + 1) * micro_columns, 0.f);
        }
    }
}

/// One register tile of packed operands into c, of which only rows x columns are inside c:
/// a whole tile directly, an edge tile through a scratch tile, computed only as many SIMD batches
/// wide as its columns need (the last of VGG-16's 196-column products at 14x14, batch 1, holds 4).
inline void gemm_packed_tile(std::size_t depth, const float* a, const float* b, float* c, std::size_t ldc,
                             std::size_t rows, std::size_t columns, bool accumulate)
{
    if (rows == micro_rows && columns == micro_columns)
        return gemm_tile<micro_rows, micro_vectors>(depth, {a, micro_rows, b, micro_columns, c, ldc, accumulate});
    alignas(64) float tile[micro_rows * micro_columns];
    gemm_row_block<micro_rows>(depth, whole_batches(columns),
                               {a, micro_rows, b, micro_columns, tile, micro_columns, false});
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t j = 0; j < columns; ++j)
            c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0.f) + tile[r * micro_columns + j];
}

} // namespace detail

/// Throws std::runtime_error where `compute` cannot run on this CPU. Kernels call it before their
/// parallel regions, which an exception must not leave.
inline void require_precision(precision compute)
{
    if (compute == precision::bf16)
        (void)best_bf16_kernel();
}

/// c (rows x columns, row-major with leading dimension ldc) = a (rows x depth) * b (depth x
/// columns), or c += a * b, in fp32 or with bf16 products (gemm_bf16 on the best kernel).
/// Single-threaded: callers split the work between threads. Operands are packed per cache block
/// into per-thread buffers, so any strides run at the micro-kernel's speed.
inline void gemm(std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a, matrix_operand b, float* c,
                 std::size_t ldc, gemm_update update, precision compute = precision::fp32)
{
    if (compute == precision::bf16)
        return gemm_bf16(best_bf16_kernel(), rows, columns, depth, a, b, c, ldc, update);
    if (depth == 0)
        return empty_product(rows, columns, c, ldc, update);
    for (std::size_t j0 = 0; j0 < columns; j0 += gemm_column_block) {
        const std::size_t width = std::min(gemm_column_block, columns - j0);
        for (std::size_t p0 = 0; p0 < depth; p0 += gemm_depth_block) {
            const std::size_t steps = std::min(gemm_depth_block, depth - p0);
            const bool accumulate = update == gemm_update::accumulate || p0 > 0;
            float* packed_b = detail::packing_buffer(0, gemm_depth_block * gemm_column_block);
            detail::pack_right(b.block(p0, j0), steps, width, packed_b);
            for (std::size_t i0 = 0; i0 < rows; i0 += gemm_row_block) {
                const std::size_t height = std::min(gemm_row_block, rows - i0);
                float* packed_a = detail::packing_buffer(1, gemm_depth_block * gemm_row_block);
                detail::pack_left(a.block(i0, p0), height, steps, packed_a);
                for (std::size_t i = 0; i < height; i += micro_rows)
                    for (std::size_t j = 0; j < width; j += micro_columns)
                        detail::gemm_packed_tile(steps, packed_a + i * steps, packed_b + j * steps,
                                                 c + (i0 + i) * ldc + j0 + j, ldc, std::min(micro_rows, height - i),
                                                 std::min(micro_columns, width - j), accumulate);
            }
        }
    }
}

} // namespace vgg::kernels
