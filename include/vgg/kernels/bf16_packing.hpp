#pragma once
// bf16 operands of the matrix products (gemm_bf16.hpp): rounding to bfloat16, the packed layout
// AMX's tiles shape, and the packing of left and right operands, including a convolution's
// im2col columns read straight from the image.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

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
VGG_TARGET_AVX512_BF16 inline __m512i to_bf16(__m512 lo, __m512 hi) { return (__m512i)_mm512_cvtne2ps_pbh(hi, lo); }

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
        VGG_TARGET_AVX512_BF16 __m512 load(std::size_t row) const
        {
            return _mm512_maskz_loadu_ps(lanes, m.at(row, first));
        }
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
                values =
                    _mm512_mask_expandloadu_ps(values, stretches[tap][r].lanes, channel + stretches[tap][r].offset);
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
                    const auto lanes =
                        static_cast<__mmask16>(first_lanes(length - skip_first - skip_last) << (lane + skip_first));
                    const std::size_t tap = ky * 3 + kx;
                    result.stretches[tap][result.counts[tap]++] = {lanes,
                                                                   (source_y - 1) * width + x + skip_first + kx - 1};
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
    const __m512i interleave = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22,
                                                6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
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
                pairs[jj] =
                    jj < count ? to_bf16(low.load(j0 + j + jj), high.load(j0 + j + jj)) : _mm512_setzero_si512();
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

} // namespace detail
#endif

} // namespace vgg::kernels
