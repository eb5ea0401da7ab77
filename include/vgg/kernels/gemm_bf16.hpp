#pragma once
// bf16 matrix products: both operands are rounded to bfloat16 while they are packed and the
// products accumulate in fp32, on AMX tiles or with AVX512_BF16, whichever the CPU has. The
// kernels are compiled for those instruction sets whatever the program is compiled for and run
// only where the CPU reports them (cpu_features.hpp), so one binary serves every x86-64 CPU.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "vgg/core/tensor.hpp"
#include "vgg/kernels/bf16_packing.hpp"
#include "vgg/kernels/cpu_features.hpp"
#include "vgg/kernels/matrix_operand.hpp"
#include "vgg/kernels/simd.hpp"

namespace vgg::kernels {

/// Cache blocking: a depth block of the left operand (up to 512 rows, 512 KB) and of a column
/// block of the right one (256 KB) stay in L2 (2 MiB per core on the Xeons with AMX, 1 MiB on Zen 4).
inline constexpr std::size_t bf16_depth_block = 512;
inline constexpr std::size_t bf16_column_block = 256;
/// Register blocking of the AVX512_BF16 kernel: 8 rows x 3 vectors of 16 columns, 24 of the 32
/// registers accumulating (as the fp32 kernel on AVX-512).
inline constexpr std::size_t dpbf16_rows = 8;
inline constexpr std::size_t dpbf16_vectors = 3;

#if defined(__x86_64__)
namespace detail {

/// Where one 16 x 16 block of c goes: straight into c when it lies wholly inside, otherwise
/// through a scratch tile that holds the part inside.
struct c_block {
    float* c;
    std::size_t ldc, rows, columns;
    bool whole() const { return rows == bf16_panel && columns == bf16_panel; }
};

/// Where AMX's four accumulator tiles are loaded from and stored to, and their row strides in
/// bytes: tile 0 holds rows 0-15 x columns 0-15 of a 32 x 32 block, 1 columns 16-31, 2 rows 16-31,
/// 3 both. Tiles 4-5 then hold two A tiles (rows) and 6-7 two B tiles (columns), so each loaded
/// tile serves two products. Tile numbers are immediates, hence the kernels' TwoRows and
/// TwoColumns template flags (with_tile_flags turns run-time flags into them).
struct accumulator_tiles {
    float* c[4];
    std::size_t stride[4];
};

template <bool TwoRows, bool TwoColumns>
VGG_TARGET_AMX void load_accumulators(const accumulator_tiles& t)
{
    _tile_loadd(0, t.c[0], t.stride[0]);
    if constexpr (TwoColumns)
        _tile_loadd(1, t.c[1], t.stride[1]);
    if constexpr (TwoRows)
        _tile_loadd(2, t.c[2], t.stride[2]);
    if constexpr (TwoRows && TwoColumns)
        _tile_loadd(3, t.c[3], t.stride[3]);
}

template <bool TwoRows, bool TwoColumns>
VGG_TARGET_AMX void store_accumulators(const accumulator_tiles& t)
{
    _tile_stored(0, t.c[0], t.stride[0]);
    if constexpr (TwoColumns)
        _tile_stored(1, t.c[1], t.stride[1]);
    if constexpr (TwoRows)
        _tile_stored(2, t.c[2], t.stride[2]);
    if constexpr (TwoRows && TwoColumns)
        _tile_stored(3, t.c[3], t.stride[3]);
}

VGG_TARGET_AMX inline void zero_accumulators()
{
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
}

/// One depth step of 32: the accumulators += A0 B0, A0 B1, A1 B0, A1 B1 (as far as TwoRows and
/// TwoColumns keep them), the A tiles read from a0 and a1 with rows a_stride bytes apart, the B
/// tiles from b0 and b1 with rows b_stride bytes apart.
template <bool TwoRows, bool TwoColumns>
VGG_TARGET_AMX void multiply_tiles(const void* a0, const void* a1, std::size_t a_stride, const void* b0, const void* b1,
                                   std::size_t b_stride)
{
    _tile_loadd(4, a0, a_stride);
    _tile_loadd(6, b0, b_stride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (TwoColumns) {
        _tile_loadd(7, b1, b_stride);
        _tile_dpbf16ps(1, 4, 7);
    }
    if constexpr (TwoRows) {
        _tile_loadd(5, a1, a_stride);
        _tile_dpbf16ps(2, 5, 6);
    }
    if constexpr (TwoRows && TwoColumns)
        _tile_dpbf16ps(3, 5, 7);
}

/// f.template operator()<TwoRows, TwoColumns>() for flags known at run time.
template <class F>
void with_tile_flags(bool two_rows, bool two_columns, F&& f)
{
    if (two_rows && two_columns)
        f.template operator()<true, true>();
    else if (two_rows)
        f.template operator()<true, false>();
    else if (two_columns)
        f.template operator()<false, true>();
    else
        f.template operator()<false, false>();
}

/// AMX: a (16 or 32) x (16 or 32) block of c over `blocks` depth blocks of packed operands.
template <bool TwoRows, bool TwoColumns>
VGG_TARGET_AMX void amx_tiles(std::size_t blocks, const std::uint16_t* a0, const std::uint16_t* a1,
                              const std::uint16_t* b0, const std::uint16_t* b1, const accumulator_tiles& c,
                              bool accumulate)
{
    if (accumulate)
        load_accumulators<TwoRows, TwoColumns>(c);
    else
        zero_accumulators();
    constexpr std::size_t row_bytes = 64;
    for (std::size_t k = 0; k < blocks; ++k) {
        const std::size_t at = k * bf16_block;
        multiply_tiles<TwoRows, TwoColumns>(a0 + at, a1 + at, row_bytes, b0 + at, b1 + at, row_bytes);
    }
    store_accumulators<TwoRows, TwoColumns>(c);
}

/// Every 16 x 16 block of c (rows x columns) from packed operands, two by two.
VGG_TARGET_AMX inline void amx_multiply(std::size_t rows, std::size_t columns, std::size_t blocks,
                                        const std::uint16_t* a, const std::uint16_t* b, float* c, std::size_t ldc,
                                        bool accumulate)
{
    const std::size_t panel_size = blocks * bf16_block;
    alignas(64) float scratch[4][bf16_panel * bf16_panel];
    for (std::size_t i = 0; i < rows; i += 2 * bf16_panel)
        for (std::size_t j = 0; j < columns; j += 2 * bf16_panel) {
            const bool two_rows = i + bf16_panel < rows, two_columns = j + bf16_panel < columns;
            c_block parts[4];
            accumulator_tiles targets;
            VGG_UNROLL
            for (std::size_t t = 0; t < 4; ++t) {
                const std::size_t r = i + t / 2 * bf16_panel, col = j + t % 2 * bf16_panel;
                parts[t] = {c + r * ldc + col, ldc, r < rows ? std::min(bf16_panel, rows - r) : 0,
                            col < columns ? std::min(bf16_panel, columns - col) : 0};
                targets.c[t] = parts[t].whole() ? parts[t].c : scratch[t];
                targets.stride[t] = parts[t].whole() ? ldc * sizeof(float) : bf16_panel * sizeof(float);
                if (!parts[t].whole() && accumulate)
                    for (std::size_t rr = 0; rr < parts[t].rows; ++rr)
                        std::copy(parts[t].c + rr * ldc, parts[t].c + rr * ldc + parts[t].columns,
                                  scratch[t] + rr * bf16_panel);
            }
            const std::uint16_t* a0 = a + i / bf16_panel * panel_size;
            const std::uint16_t* b0 = b + j / bf16_panel * panel_size;
            const std::uint16_t* a1 = two_rows ? a0 + panel_size : a0;
            const std::uint16_t* b1 = two_columns ? b0 + panel_size : b0;
            with_tile_flags(two_rows, two_columns, [&]<bool TwoRows, bool TwoColumns>() {
                amx_tiles<TwoRows, TwoColumns>(blocks, a0, a1, b0, b1, targets, accumulate);
            });
            VGG_UNROLL
            for (std::size_t t = 0; t < 4; ++t)
                if (!parts[t].whole())
                    for (std::size_t rr = 0; rr < parts[t].rows; ++rr)
                        std::copy(scratch[t] + rr * bf16_panel, scratch[t] + rr * bf16_panel + parts[t].columns,
                                  parts[t].c + rr * ldc);
        }
}

/// AVX512_BF16: one dpbf16_rows x (Vectors x 16) tile of c over `blocks` depth blocks; `a`
/// points at the tile's first row inside its packed panel, `b` at its first right panel.
template <std::size_t Vectors>
VGG_TARGET_AVX512_BF16 void dpbf16_tile(std::size_t blocks, const std::uint16_t* a, const std::uint16_t* b,
                                        std::size_t panel_size, float* c, std::size_t ldc, bool accumulate)
{
    __m512 sum[dpbf16_rows][Vectors];
    VGG_UNROLL
    for (std::size_t r = 0; r < dpbf16_rows; ++r)
        VGG_UNROLL
    for (std::size_t v = 0; v < Vectors; ++v)
        sum[r][v] = _mm512_setzero_ps();
    for (std::size_t k = 0; k < blocks; ++k)
        for (std::size_t q = 0; q < bf16_depth_step / 2; ++q) {
            const std::uint16_t* right_pairs = b + k * bf16_block + q * 2 * bf16_panel;
            const std::uint16_t* left_pairs = a + k * bf16_block + q * 2;
            __m512bh right[Vectors];
            VGG_UNROLL
            for (std::size_t v = 0; v < Vectors; ++v)
                right[v] = (__m512bh)_mm512_load_si512(right_pairs + v * panel_size);
            VGG_UNROLL
            for (std::size_t r = 0; r < dpbf16_rows; ++r) {
                std::int32_t pair;
                std::memcpy(&pair, left_pairs + r * bf16_depth_step, sizeof pair);
                const __m512bh left = (__m512bh)_mm512_set1_epi32(pair);
                VGG_UNROLL
                for (std::size_t v = 0; v < Vectors; ++v)
                    sum[r][v] = _mm512_dpbf16_ps(sum[r][v], left, right[v]);
            }
        }
    VGG_UNROLL
    for (std::size_t r = 0; r < dpbf16_rows; ++r)
        VGG_UNROLL
    for (std::size_t v = 0; v < Vectors; ++v) {
        float* out = c + r * ldc + v * bf16_panel;
        _mm512_storeu_ps(out, accumulate ? _mm512_add_ps(sum[r][v], _mm512_loadu_ps(out)) : sum[r][v]);
    }
}

template <std::size_t Vectors>
VGG_TARGET_AVX512_BF16 void dpbf16_edge_tile(std::size_t blocks, const std::uint16_t* a, const std::uint16_t* b,
                                             std::size_t panel_size, float* c, std::size_t ldc, std::size_t rows,
                                             std::size_t columns, bool accumulate)
{
    constexpr std::size_t width = Vectors * bf16_panel;
    if (rows == dpbf16_rows && columns == width)
        return dpbf16_tile<Vectors>(blocks, a, b, panel_size, c, ldc, accumulate);
    alignas(64) float tile[dpbf16_rows * width];
    dpbf16_tile<Vectors>(blocks, a, b, panel_size, tile, width, false);
    for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t j = 0; j < columns; ++j)
            c[r * ldc + j] = (accumulate ? c[r * ldc + j] : 0.f) + tile[r * width + j];
}

/// Every tile of c (rows x columns) from packed operands.
VGG_TARGET_AVX512_BF16 inline void dpbf16_multiply(std::size_t rows, std::size_t columns, std::size_t blocks,
                                                   const std::uint16_t* a, const std::uint16_t* b, float* c,
                                                   std::size_t ldc, bool accumulate)
{
    const std::size_t panel_size = blocks * bf16_block;
    constexpr std::size_t width = dpbf16_vectors * bf16_panel;
    for (std::size_t i = 0; i < rows; i += dpbf16_rows) {
        const std::uint16_t* a_rows = a + i / bf16_panel * panel_size + i % bf16_panel * bf16_depth_step;
        const std::size_t height = std::min(dpbf16_rows, rows - i);
        for (std::size_t j = 0; j < columns; j += width) {
            const std::uint16_t* b_columns = b + j / bf16_panel * panel_size;
            float* c_tile = c + i * ldc + j;
            const std::size_t count = std::min(width, columns - j);
            if (count > 2 * bf16_panel)
                dpbf16_edge_tile<3>(blocks, a_rows, b_columns, panel_size, c_tile, ldc, height, count, accumulate);
            else if (count > bf16_panel)
                dpbf16_edge_tile<2>(blocks, a_rows, b_columns, panel_size, c_tile, ldc, height, count, accumulate);
            else
                dpbf16_edge_tile<1>(blocks, a_rows, b_columns, panel_size, c_tile, ldc, height, count, accumulate);
        }
    }
}

/// AMX's tile configuration (palette 1): all eight tiles 16 rows of 64 bytes.
struct alignas(64) tile_configuration {
    std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
    std::uint16_t row_bytes[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

template <class Right>
VGG_TARGET_AMX void gemm_bf16_blocks(bf16_kernel kernel, std::size_t rows, std::size_t columns, std::size_t depth,
                                     matrix_operand a, const Right& b, float* c, std::size_t ldc, gemm_update update)
{
    if (kernel == bf16_kernel::amx) {
        const tile_configuration configuration;
        _tile_loadconfig(&configuration);
    }
    const std::size_t padded_rows = round_up(rows, 2 * bf16_panel);
    for (std::size_t p0 = 0; p0 < depth; p0 += bf16_depth_block) {
        const std::size_t steps = std::min(bf16_depth_block, depth - p0);
        const std::size_t padded = round_up(steps, bf16_depth_step);
        const bool accumulate = update == gemm_update::accumulate || p0 > 0;
        std::uint16_t* packed_a = bf16_packing_buffer(0, padded_rows * padded);
        pack_left_bf16(a.block(0, p0), rows, steps, padded, packed_a);
        for (std::size_t j0 = 0; j0 < columns; j0 += bf16_column_block) {
            const std::size_t width = std::min(bf16_column_block, columns - j0);
            std::uint16_t* packed_b = bf16_packing_buffer(1, bf16_column_block * padded);
            pack_right_bf16(b, p0, j0, steps, width, padded, packed_b);
            if (kernel == bf16_kernel::amx)
                amx_multiply(rows, width, padded / bf16_depth_step, packed_a, packed_b, c + j0, ldc, accumulate);
            else
                dpbf16_multiply(rows, width, padded / bf16_depth_step, packed_a, packed_b, c + j0, ldc, accumulate);
        }
    }
    if (kernel == bf16_kernel::amx)
        _tile_release();
}

} // namespace detail
#endif

/// gemm() with bf16 products and fp32 sums on `kernel`: c = a * b or c += a * b, a and b
/// rounded to bf16 on the way; b is a matrix_operand or an image_columns. Single-threaded, like
/// gemm(). Throws std::runtime_error where the kernel cannot run (check bf16_kernel_runs before
/// entering a parallel region).
// clang-format off
template <class Right>
    requires std::same_as<Right, matrix_operand> || std::same_as<Right, image_columns>
void gemm_bf16(bf16_kernel kernel, std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a,
               const Right& b, float* c, std::size_t ldc, gemm_update update)
// clang-format on
{
    if (!bf16_kernel_runs(kernel))
        throw std::runtime_error("the " + std::string(to_string(kernel)) +
                                 " kernel cannot run: " + bf16_kernel_missing(kernel));
    if (depth == 0)
        return empty_product(rows, columns, c, ldc, update);
#if defined(__x86_64__)
    detail::gemm_bf16_blocks(kernel, rows, columns, depth, a, b, c, ldc, update);
#else
    (void)a, (void)b;
#endif
}

} // namespace vgg::kernels
