#pragma once
// bf16 matrix products: both operands are rounded to bfloat16 while they are packed and the
// products accumulate in fp32, on AMX tiles or with AVX512_BF16, whichever the CPU has. The
// kernels are compiled for those instruction sets whatever the program is compiled for and run
// only where the CPU reports them (cpu_features.hpp), so one binary serves every x86-64 CPU.
#include <algorithm>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <utility>

#include "vgg/core/tensor.hpp"
#include "vgg/kernels/cpu_features.hpp"
#include "vgg/kernels/matrix_operand.hpp"
#include "vgg/kernels/simd.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define VGG_TARGET_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define VGG_TARGET_AMX __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")))
#endif

namespace vgg::kernels {

/// fp32 -> bf16 rounded to nearest even, as the CPU's vcvtne2ps2bf16 does it: NaN stays NaN and
/// subnormals become zero of the same sign.
inline std::uint16_t to_bf16(float value)
{
    std::uint32_t bits = std::bit_cast<std::uint32_t>(value);
    if ((bits & 0x7fffffffu) > 0x7f800000u) // NaN: keep it, quiet
        return static_cast<std::uint16_t>((bits >> 16) | 0x40u);
    if ((bits & 0x7f800000u) == 0) // zero or subnormal
        bits &= 0x80000000u;
    return static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
inline float from_bf16(std::uint16_t bits) { return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16); }
/// value rounded to bf16, as an fp32 (exact: bf16 is fp32 with a shorter fraction).
inline float round_to_bf16(float value) { return from_bf16(to_bf16(value)); }

/// The packed layout both kernels read, shaped by AMX's tiles (16 rows of 64 bytes). The left
/// operand is stored in panels of bf16_panel rows, each a run of blocks of bf16_panel rows x
/// bf16_depth_step values; the right operand in panels of bf16_panel columns, each a run of
/// blocks of bf16_depth_step / 2 depth pairs x bf16_panel columns x 2, the pairs vdpbf16ps and
/// tdpbf16ps multiply. The depth is padded with zeros to whole blocks.
inline constexpr std::size_t bf16_panel = 16;
inline constexpr std::size_t bf16_depth_step = 32;
inline constexpr std::size_t bf16_block = bf16_panel * bf16_depth_step;
/// Cache blocking: a depth block of the left operand (up to 512 rows, 512 KB) and of a column
/// block of the right one (256 KB) stay in L2 (2 MiB per core on the Xeons with AMX, 1 MiB on Zen 4).
inline constexpr std::size_t bf16_depth_block = 512;
inline constexpr std::size_t bf16_column_block = 256;
/// Register blocking of the AVX512_BF16 kernel: 8 rows x 3 vectors of 16 columns, 24 of the 32
/// registers accumulating (as the fp32 kernel on AVX-512).
inline constexpr std::size_t dpbf16_rows = 8;
inline constexpr std::size_t dpbf16_vectors = 3;

/// im2col_3x3(image) as a right operand of gemm_bf16, read from the image while it is packed: the
/// column matrix, 9x the image, is never stored. Row (c*3 + ky)*3 + kx, column y*W + x holds
/// image[c][y + ky - 1][x + kx - 1], or 0 outside the image; transposed() swaps the two.
struct image_columns {
    const float* image;
    std::size_t channels, height, width;
    bool is_transposed = false;

    image_columns transposed() const { return {image, channels, height, width, !is_transposed}; }
};

#if defined(__x86_64__)
namespace detail {

inline std::uint16_t* bf16_packing_buffer(std::size_t which, std::size_t size)
{
    thread_local aligned_vector<std::uint16_t> buffers[2];
    return vgg::detail::reserve(buffers[which], size);
}

constexpr std::size_t round_up(std::size_t n, std::size_t step) { return (n + step - 1) / step * step; }

/// The first `count` of 16 lanes.
inline __mmask16 first_lanes(std::size_t count)
{
    return static_cast<__mmask16>(count >= 16 ? 0xffffu : (1u << count) - 1u);
}

/// 16 + 16 floats to 32 bf16, lo first.
VGG_TARGET_AVX512_BF16 inline __m512i to_bf16(__m512 lo, __m512 hi)
{
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// The right operand's sources. source.columns(first, count) prepares reading columns first ..
// first + count - 1 (count <= 16); its load(row) returns their values in that row as 16 lanes, the
// lanes past count zero.

/// A matrix whose rows are contiguous.
struct contiguous_rows {
    matrix_operand m;

    struct span {
        matrix_operand m;
        std::size_t first;
        __mmask16 lanes;
        VGG_TARGET_AVX512_BF16 __m512 load(std::size_t row) const { return _mm512_maskz_loadu_ps(lanes, m.at(row, first)); }
    };
    span columns(std::size_t first, std::size_t count) const { return {m, first, first_lanes(count)}; }
};

/// im2col_3x3(image), read from the image. The pixels of a span fall into runs along image
/// rows; for each of the 9 taps (ky, kx) each run reads one stretch of a source row, shifted by
/// kx - 1 and without the lanes that fall outside the image. Those stretches are found once per
/// span, so a row of the column matrix, (c, tap), costs one masked load per run.
struct image_rows {
    const image_columns& source;

    struct span {
        struct stretch {
            __mmask16 lanes;
            std::size_t offset; ///< of its first value inside a channel's plane
        };
        const float* image;
        std::size_t plane;
        stretch stretches[9][16];
        std::uint8_t counts[9] = {};

        VGG_TARGET_AVX512_BF16 __m512 load(std::size_t row) const
        {
            const float* channel = image + row / 9 * plane;
            const std::size_t tap = row % 9;
            __m512 values = _mm512_setzero_ps();
            for (std::size_t r = 0; r < counts[tap]; ++r)
                values = _mm512_mask_expandloadu_ps(values, stretches[tap][r].lanes, channel + stretches[tap][r].offset);
            return values;
        }
    };
    span columns(std::size_t first, std::size_t count) const
    {
        const std::size_t width = source.width;
        span result{source.image, source.height * width, {}, {}};
        std::size_t y = first / width, x = first % width;
        for (std::size_t lane = 0; lane < count; x = 0, ++y) {
            const std::size_t length = std::min(count - lane, width - x);
            VGG_UNROLL
            for (std::size_t ky = 0; ky < 3; ++ky) {
                const std::size_t source_y = y + ky; // one above the real source row, so that it stays unsigned
                if (source_y < 1 || source_y > source.height)
                    continue;
                VGG_UNROLL
                for (std::size_t kx = 0; kx < 3; ++kx) {
                    const std::size_t skip_first = kx == 0 && x == 0, skip_last = kx == 2 && x + length == width;
                    if (length <= skip_first + skip_last)
                        continue;
                    const auto lanes = static_cast<__mmask16>(first_lanes(length - skip_first - skip_last)
                                                              << (lane + skip_first));
                    const std::size_t tap = ky * 3 + kx;
                    result.stretches[tap][result.counts[tap]++] = {lanes, (source_y - 1) * width + x + skip_first + kx - 1};
                }
            }
            lane += length;
        }
        return result;
    }
};

/// even[i] and odd[i] as bf16 pairs, [even[0], odd[0], even[1], odd[1], ...]: the layout of a
/// right operand's depth pairs (tdpbf16ps and vdpbf16ps multiply pairs).
VGG_TARGET_AVX512_BF16 inline __m512i to_bf16_pairs(__m512 even, __m512 odd)
{
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                                22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(interleave, to_bf16(even, odd));
}

/// The two spans that read one depth step, `steps` (<= 32) consecutive columns from `first`.
template <class Source>
auto depth_step_spans(const Source& source, std::size_t first, std::size_t steps)
{
    return std::pair{source.columns(first, std::min<std::size_t>(steps, 16)),
                     source.columns(first + 16, steps > 16 ? steps - 16 : 0)};
}

/// Packs rows x depth of a (depth padded to `padded`) into the left layout.
VGG_TARGET_AVX512_BF16 inline void pack_left_bf16(matrix_operand a, std::size_t rows, std::size_t depth,
                                                  std::size_t padded, std::uint16_t* packed)
{
    for (std::size_t r0 = 0; r0 < rows; r0 += bf16_panel, packed += bf16_panel * padded) {
        const std::size_t count = std::min(bf16_panel, rows - r0);
        std::fill(packed, packed + bf16_panel * padded, std::uint16_t{0});
        for (std::size_t p0 = 0; p0 < depth; p0 += bf16_depth_step) {
            std::uint16_t* block = packed + p0 / bf16_depth_step * bf16_block;
            const std::size_t steps = std::min(bf16_depth_step, depth - p0);
            if (a.column_stride == 1) { // rows contiguous: 32 values of a row at once
                const auto [low, high] = depth_step_spans(contiguous_rows{a}, p0, steps);
                for (std::size_t r = 0; r < count; ++r)
                    _mm512_storeu_si512(block + r * bf16_depth_step, to_bf16(low.load(r0 + r), high.load(r0 + r)));
            } else {
                for (std::size_t r = 0; r < count; ++r)
                    for (std::size_t p = 0; p < steps; ++p)
                        block[r * bf16_depth_step + p] = kernels::to_bf16(a(r0 + r, p0 + p));
            }
        }
    }
}

/// Packs rows p0 .. p0 + depth - 1 and columns j0 .. j0 + columns - 1 of a right operand whose
/// rows `source` reads (depth padded to `padded`).
template <class Source>
VGG_TARGET_AVX512_BF16 void pack_right_rows(const Source& source, std::size_t p0, std::size_t j0, std::size_t depth,
                                            std::size_t columns, std::size_t padded, std::uint16_t* packed)
{
    for (std::size_t j = 0; j < columns; j += bf16_panel, packed += bf16_panel * padded) {
        const auto span = source.columns(j0 + j, std::min(bf16_panel, columns - j));
        for (std::size_t p = 0; p < padded; p += 2) {
            const __m512 even = p < depth ? span.load(p0 + p) : _mm512_setzero_ps();
            const __m512 odd = p + 1 < depth ? span.load(p0 + p + 1) : _mm512_setzero_ps();
            _mm512_storeu_si512(packed + p * bf16_panel, to_bf16_pairs(even, odd));
        }
    }
}

/// pack_right_rows for a right operand whose columns `source` reads as rows: 16 columns of 32
/// depth values become 16 x 16 bf16 pairs, transposed in registers into the pair rows.
template <class Source>
VGG_TARGET_AVX512_BF16 void pack_right_columns(const Source& source, std::size_t p0, std::size_t j0, std::size_t depth,
                                               std::size_t columns, std::size_t padded, std::uint16_t* packed)
{
    for (std::size_t p = 0; p < depth; p += bf16_depth_step) {
        const std::size_t steps = std::min(bf16_depth_step, depth - p);
        const auto [low, high] = depth_step_spans(source, p0 + p, steps);
        for (std::size_t j = 0; j < columns; j += bf16_panel) {
            const std::size_t count = std::min(bf16_panel, columns - j);
            __m512i pairs[16]; // pairs[column][pair], then [pair][column]
            VGG_UNROLL
            for (std::size_t jj = 0; jj < 16; ++jj)
                pairs[jj] = jj < count ? to_bf16(low.load(j0 + j + jj), high.load(j0 + j + jj)) : _mm512_setzero_si512();
            transpose_16x16(pairs);
            std::uint16_t* block = packed + j * padded + p * bf16_panel;
            VGG_UNROLL
            for (std::size_t q = 0; q < 16; ++q)
                _mm512_storeu_si512(block + q * 2 * bf16_panel, pairs[q]);
        }
    }
}

/// Packs rows p0.. and columns j0.. of b (depth padded to `padded`) into the right layout.
VGG_TARGET_AVX512_BF16 inline void pack_right_bf16(matrix_operand b, std::size_t p0, std::size_t j0, std::size_t depth,
                                                   std::size_t columns, std::size_t padded, std::uint16_t* packed)
{
    if (b.column_stride == 1)
        return pack_right_rows(contiguous_rows{b}, p0, j0, depth, columns, padded, packed);
    if (b.row_stride == 1)
        return pack_right_columns(contiguous_rows{b.transposed()}, p0, j0, depth, columns, padded, packed);
    for (std::size_t j = 0; j < columns; j += bf16_panel, packed += bf16_panel * padded) {
        const std::size_t count = std::min(bf16_panel, columns - j);
        std::fill(packed, packed + bf16_panel * padded, std::uint16_t{0});
        for (std::size_t p = 0; p < depth; ++p)
            for (std::size_t jj = 0; jj < count; ++jj)
                packed[(p / 2 * bf16_panel + jj) * 2 + p % 2] = kernels::to_bf16(b(p0 + p, j0 + j + jj));
    }
}

/// Packs rows p0.. and columns j0.. of im2col_3x3(image) or of its transpose.
VGG_TARGET_AVX512_BF16 inline void pack_right_bf16(const image_columns& b, std::size_t p0, std::size_t j0,
                                                   std::size_t depth, std::size_t columns, std::size_t padded,
                                                   std::uint16_t* packed)
{
    if (b.is_transposed)
        pack_right_columns(image_rows{b}, p0, j0, depth, columns, padded, packed);
    else
        pack_right_rows(image_rows{b}, p0, j0, depth, columns, padded, packed);
}

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
template <class Right>
    requires std::same_as<Right, matrix_operand> || std::same_as<Right, image_columns>
void gemm_bf16(bf16_kernel kernel, std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a,
               const Right& b, float* c, std::size_t ldc, gemm_update update)
{
    if (!bf16_kernel_runs(kernel))
        throw std::runtime_error("the " + std::string(to_string(kernel)) + " kernel cannot run: " +
                                 bf16_kernel_missing(kernel));
    if (depth == 0)
        return empty_product(rows, columns, c, ldc, update);
#if defined(__x86_64__)
    detail::gemm_bf16_blocks(kernel, rows, columns, depth, a, b, c, ldc, update);
#else
    (void)a, (void)b;
#endif
}

} // namespace vgg::kernels
