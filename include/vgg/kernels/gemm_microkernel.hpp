#pragma once
#include <algorithm>
#include <cstddef>

#include "vgg/kernels/simd.hpp"

namespace vgg::kernels {

/// Register blocking of every matrix product: a tile of micro_rows rows x micro_vectors SIMD
/// batches of the result stays in registers while the depth runs. Each step broadcasts one
/// value per row and loads micro_vectors batches of the right operand, so it needs
/// micro_rows * micro_vectors accumulators + micro_vectors + 1 registers:
/// - AVX-512 (32 registers): 8 x 3 = 24 accumulators, 11 loads per 24 FMAs;
/// - AVX2 and SSE2 (16 registers): 6 x 2 = 12 accumulators (the shape BLIS uses on Haswell).
inline constexpr std::size_t micro_rows = has_32_vector_registers ? 8 : 6;
inline constexpr std::size_t micro_vectors = has_32_vector_registers ? 3 : 2;
/// Columns of one register tile.
inline constexpr std::size_t micro_columns = micro_vectors * float_batch::size;

/// Operands of c (rows x columns) (+)= a^T b: a stored depth x rows (a[p * a_step + r], so the
/// values broadcast at one step share a cache line), b depth x columns (rows aligned), c
/// row-major with leading dimension ldc (any alignment).
struct gemm_operands {
    const float* a;
    std::size_t a_step;
    const float* b;
    std::size_t b_step;
    float* c;
    std::size_t ldc;
    bool accumulate;

    gemm_operands at(std::size_t row, std::size_t column) const
    {
        return {a + row, a_step, b + column, b_step, c + row * ldc + column, ldc, accumulate};
    }
};

namespace detail {

/// The micro-kernel: one Rows x Vectors-batch tile of c over the whole depth.
template <std::size_t Rows, std::size_t Vectors>
void gemm_tile(std::size_t depth, const gemm_operands& m)
{
    constexpr std::size_t lanes = float_batch::size;
    // The sums start from zero and c is added at the end: loading c first would keep all the
    // accumulators live across a branch, which the compiler spills to the stack.
    float_batch sum[Rows][Vectors];
    VGG_UNROLL
    for (std::size_t r = 0; r < Rows; ++r)
        VGG_UNROLL
    for (std::size_t v = 0; v < Vectors; ++v)
        sum[r][v] = float_batch(0.f);
    for (std::size_t p = 0; p < depth; ++p) {
        float_batch row[Vectors];
        VGG_UNROLL
        for (std::size_t v = 0; v < Vectors; ++v)
            row[v] = float_batch::load_aligned(m.b + p * m.b_step + v * lanes);
        VGG_UNROLL
        for (std::size_t r = 0; r < Rows; ++r) {
            const float_batch broadcast(m.a[p * m.a_step + r]);
            VGG_UNROLL
            for (std::size_t v = 0; v < Vectors; ++v)
                sum[r][v] = fused_multiply_add(broadcast, row[v], sum[r][v]);
        }
    }
    VGG_UNROLL
    for (std::size_t r = 0; r < Rows; ++r)
        VGG_UNROLL
    for (std::size_t v = 0; v < Vectors; ++v) {
        float* c = m.c + r * m.ldc + v * lanes;
        (m.accumulate ? sum[r][v] + float_batch::load_unaligned(c) : sum[r][v]).store_unaligned(c);
    }
}

/// Rows rows of c, columns a multiple of the SIMD width: whole register tiles, then one
/// narrower tile for the rest.
template <std::size_t Rows, std::size_t Vectors = micro_vectors>
void gemm_row_block(std::size_t depth, std::size_t columns, const gemm_operands& m)
{
    constexpr std::size_t width = Vectors * float_batch::size;
    std::size_t j = 0;
    for (; j + width <= columns; j += width)
        gemm_tile<Rows, Vectors>(depth, m.at(0, j));
    if constexpr (Vectors > 1)
        if (j < columns)
            gemm_row_block<Rows, Vectors - 1>(depth, columns - j, m.at(0, j));
}

} // namespace detail

/// Bytes of c above which gemm_unpacked runs row blocks outermost. A smaller c stays in L2
/// while column panels, the outer loop, keep a panel of b (depth x micro_columns) in L1 as every
/// row block passes over it; a larger one (the Winograd weight gradient's 1 MB sums per element
/// at 512 channels) would come from L3 at every panel, tile by tile at rows ldc apart, which the
/// hardware prefetches poorly. Row blocks outermost read each row of c in sequence instead, b
/// from L2; for a small c that order is the slower one.
inline constexpr std::size_t unpacked_rows_outer_bytes = 512 << 10;

/// c (rows x columns) (+)= a^T b for operands already laid out for the micro-kernel (see
/// gemm_operands); columns must be a multiple of the SIMD width.
inline void gemm_unpacked(std::size_t rows, std::size_t depth, std::size_t columns, const gemm_operands& m)
{
    const auto row_blocks = [&](std::size_t j, std::size_t width) {
        std::size_t r = 0;
        for (; r + micro_rows <= rows; r += micro_rows)
            detail::gemm_row_block<micro_rows>(depth, width, m.at(r, j));
        for (; r < rows; ++r)
            detail::gemm_row_block<1>(depth, width, m.at(r, j));
    };
    if (rows * columns * sizeof(float) > unpacked_rows_outer_bytes)
        return row_blocks(0, columns);
    for (std::size_t j = 0; j < columns; j += micro_columns)
        row_blocks(j, std::min(micro_columns, columns - j));
}

/// Depth steps per pass of gemm_panels: a panel of b (depth block x micro_columns, 24 KB with
/// AVX-512) stays in L1 while every row panel of a passes over it.
inline constexpr std::size_t panel_depth_block = 128;

/// The order gemm_panels reads a in.
enum class panel_order {
    /// Depth blocks outermost (panel_depth_block), so that a panel of b stays in L1: for an a in cache.
    depth_blocks,
    /// One row panel at a time over the whole depth: a is read once, in memory order, which the
    /// hardware prefetches well, for an a streamed from memory. Depth blocks would read it in
    /// pieces of 4 KB, 16 KB apart at 512 channels.
    whole_panels,
};

/// c (rows x columns) = a b for an a packed in panels of micro_rows rows (panel q at
/// a + q * micro_rows * depth, stored depth x micro_rows; rows a multiple of micro_rows), b depth
/// x columns with rows b_step apart (aligned) and columns a multiple of the SIMD width, c's rows
/// ldc apart. The Winograd products, whose transformed kernels are packed once per pass.
inline void gemm_panels(std::size_t rows, std::size_t depth, std::size_t columns, const float* a, const float* b,
                        std::size_t b_step, float* c, std::size_t ldc, panel_order order = panel_order::depth_blocks)
{
    if (order == panel_order::whole_panels) {
        for (std::size_t r = 0; r < rows; r += micro_rows)
            detail::gemm_row_block<micro_rows>(depth, columns,
                                               {a + r * depth, micro_rows, b, b_step, c + r * ldc, ldc, false});
        return;
    }
    for (std::size_t p0 = 0; p0 < depth; p0 += panel_depth_block) {
        const std::size_t steps = std::min(panel_depth_block, depth - p0);
        for (std::size_t j = 0; j < columns; j += micro_columns) {
            const std::size_t width = std::min(micro_columns, columns - j);
            for (std::size_t r = 0; r < rows; r += micro_rows)
                detail::gemm_row_block<micro_rows>(steps, width,
                                                   {a + r * depth + p0 * micro_rows, micro_rows, b + p0 * b_step + j,
                                                    b_step, c + r * ldc + j, ldc, p0 > 0});
        }
    }
}

} // namespace vgg::kernels
