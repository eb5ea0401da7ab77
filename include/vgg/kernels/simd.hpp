#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "vgg/detail/xsimd.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

// GCC 12's AVX-512 unpack, shuffle, permute and conversion intrinsics start from an undefined
// vector, which its -Wmaybe-uninitialized (or -Wuninitialized) reports wherever they are
// inlined: a false positive, silenced around the functions that use them.
#if defined(__GNUC__) && !defined(__clang__)
#define VGG_UNDEFINED_VECTOR_WARNINGS_OFF                                                                              \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")                         \
        _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define VGG_UNDEFINED_VECTOR_WARNINGS_ON _Pragma("GCC diagnostic pop")
#else
#define VGG_UNDEFINED_VECTOR_WARNINGS_OFF
#define VGG_UNDEFINED_VECTOR_WARNINGS_ON
#endif

// Put before a loop of a few iterations fixed at compile time (over a register tile, a
// transform's window, a transpose): unrolled whole, its arrays of SIMD batches become registers.
// -O3 does this by itself; -O2 (CMake's RelWithDebInfo, many projects' default) keeps them in
// memory, at well under half the speed. Not
// under AddressSanitizer, which checks what the loops do, not how fast: every unrolled access
// carries its checks, and the tests took twice as long to compile.
#if defined(__SANITIZE_ADDRESS__)
#define VGG_ADDRESS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VGG_ADDRESS_SANITIZER 1
#endif
#endif
#if defined(__GNUC__) && !defined(VGG_ADDRESS_SANITIZER)
#define VGG_UNROLL _Pragma("GCC unroll 64")
#else
#define VGG_UNROLL
#endif

namespace vgg::kernels {

/// One vector register of floats, for the instruction set the including program is compiled for
/// (AVX-512: 16 lanes, AVX2: 8, SSE2: 4).
using float_batch = xsimd::batch<float>;

/// a * b + c with one rounding. xsimd 8's fma has no AVX-512 overload: its generic fallback is a
/// multiply and an add, fused only when the compiler contracts them, so AVX-512 calls the
/// intrinsic itself.
inline float_batch fused_multiply_add(const float_batch& a, const float_batch& b, const float_batch& c)
{
#if defined(__AVX512F__)
    return _mm512_fmadd_ps(a, b, c);
#else
    return xsimd::fma(a, b, c);
#endif
}

/// The a * b + c of fused_multiply_add for one value, for a SIMD loop's scalar tail: fused where
/// the target has FMA, whatever the compiler would contract (GCC 12 under the sanitizers left
/// conv3x3_single_channel's tail unfused on Zen 4, so it no longer matched the SIMD lanes).
inline float fused_multiply_add(float a, float b, float c)
{
#if defined(__FMA__)
    return std::fma(a, b, c);
#else
    return a * b + c;
#endif
}

/// if_true where Pattern::get(lane, lanes) holds, else if_false. xsimd 8's select by a
/// batch_bool_constant has no AVX-512 overload for floats: it builds the mask lane by lane, which
/// a program that does not inline it pays; AVX-512 blends by one constant mask.
template <class Pattern>
float_batch select_lanes(const float_batch& if_true, const float_batch& if_false)
{
#if defined(__AVX512F__)
    constexpr auto mask = [] {
        std::uint32_t bits = 0;
        for (std::size_t lane = 0; lane < float_batch::size; ++lane)
            bits |= static_cast<std::uint32_t>(Pattern::get(lane, float_batch::size)) << lane;
        return static_cast<__mmask16>(bits);
    }();
    return _mm512_mask_blend_ps(mask, if_false, if_true);
#else
    return xsimd::select(xsimd::make_batch_bool_constant<float_batch, Pattern>(), if_true, if_false);
#endif
}

/// Whether the instruction set has 32 vector registers (AVX-512) rather than 16 (AVX2, SSE2).
inline constexpr bool has_32_vector_registers = std::is_base_of_v<xsimd::avx512f, xsimd::default_arch>;

/// Each lane rounded to bf16 and back, exactly as the scalar round_to_bf16 (gemm_bf16.hpp) and
/// the CPU's vcvtne2ps2bf16 do: to nearest even, NaN kept (quiet), subnormals to signed zero.
inline float_batch round_to_bf16(const float_batch& value)
{
    using bits_batch = xsimd::batch<std::int32_t>;
    const auto bits = xsimd::bitwise_cast<bits_batch>(value);
    const auto magnitude = bits & bits_batch(0x7fffffff);
    const bits_batch high_half(static_cast<std::int32_t>(0xffff0000u));
    // The last kept bit by a compare, not a shift: GCC 12's AVX-512 shift intrinsics warn of an
    // uninitialized value in the including program.
    const auto last_kept_bit =
        xsimd::select((bits & bits_batch(0x10000)) != bits_batch(0), bits_batch(1), bits_batch(0));
    const auto rounded = (bits + bits_batch(0x7fff) + last_kept_bit) & high_half;
    auto result =
        xsimd::select(magnitude > bits_batch(0x7f800000), (bits | bits_batch(0x00400000)) & high_half, rounded);
    result = xsimd::select(magnitude < bits_batch(0x00800000),
                           bits & bits_batch(static_cast<std::int32_t>(0x80000000u)), result);
    return xsimd::bitwise_cast<float_batch>(result);
}

VGG_UNDEFINED_VECTOR_WARNINGS_OFF
namespace detail {
// Lane permutations of deinterleave and interleave below. With W ways, a batch of n lanes is W
// blocks of n / W lanes; "spread" batch I puts way (I - b) mod W of its groups into block b,
// so that selecting block b from spread batch (b + R) mod W gathers way R, with its blocks in
// rotated order, which "order" R undoes.
template <std::size_t Ways, std::size_t Batch>
struct spread_ways {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes)
    {
        const std::uint32_t block = lane / (lanes / Ways), group = lane % (lanes / Ways);
        return Ways * group + (Batch + Ways - block) % Ways;
    }
};
template <std::size_t Ways, std::size_t Way>
struct order_blocks {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes)
    {
        const std::uint32_t block = lane / (lanes / Ways), group = lane % (lanes / Ways);
        return (block + Ways - Way) % Ways * (lanes / Ways) + group;
    }
};
// Interleave's: "unorder" W puts block (W - b) mod Ways of way W into block b, so that selecting
// block b from unordered way (b + I) mod Ways gathers batch I's groups, which "gather" I then
// interleaves.
template <std::size_t Ways, std::size_t Way>
struct unorder_blocks {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes)
    {
        const std::uint32_t block = lane / (lanes / Ways), group = lane % (lanes / Ways);
        return (Way + Ways - block) % Ways * (lanes / Ways) + group;
    }
};
template <std::size_t Ways, std::size_t Batch>
struct gather_ways {
    static constexpr std::uint32_t get(std::uint32_t lane, std::uint32_t lanes)
    {
        const std::uint32_t group = lane / Ways, way = lane % Ways;
        return (way + Ways - Batch) % Ways * (lanes / Ways) + group;
    }
};
template <std::size_t Ways, std::size_t Block>
struct in_block {
    static constexpr bool get(std::size_t lane, std::size_t lanes) { return lane / (lanes / Ways) == Block; }
};

// Block b of the result from batches[(b + Shift) mod Ways].
template <std::size_t Ways, std::size_t Shift>
float_batch select_blocks(const float_batch (&batches)[Ways])
{
    float_batch result = batches[Shift % Ways];
    // clang-format off
    [&]<std::size_t... B>(std::index_sequence<B...>) {
        ((result = select_lanes<in_block<Ways, B + 1>>(batches[(B + 1 + Shift) % Ways], result)),
         ...);
    }(std::make_index_sequence<Ways - 1>{});
    // clang-format on
    return result;
}

template <template <std::size_t, std::size_t> class Permutation, std::size_t Ways>
void permute_each(const float_batch (&from)[Ways], float_batch (&to)[Ways])
{
    using index_batch = xsimd::batch<std::uint32_t>;
    // clang-format off
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((to[I] = xsimd::swizzle(from[I], xsimd::make_batch_constant<index_batch, Permutation<Ways, I>>())), ...);
    }(std::make_index_sequence<Ways>{});
    // clang-format on
}

// A permutation of each batch, batch R of the result gathered blockwise by select_blocks<Ways, R>,
// then a permutation of each again: the shape of both deinterleave and interleave.
template <template <std::size_t, std::size_t> class Before, template <std::size_t, std::size_t> class After,
          std::size_t Ways>
void permute_select_permute(const float_batch (&from)[Ways], float_batch (&to)[Ways])
{
    static_assert(float_batch::size % Ways == 0, "(de)interleave: the ways must divide the SIMD width");
    float_batch permuted[Ways], selected[Ways];
    permute_each<Before>(from, permuted);
    // clang-format off
    [&]<std::size_t... R>(std::index_sequence<R...>) {
        ((selected[R] = select_blocks<Ways, R>(permuted)), ...);
    }(std::make_index_sequence<Ways>{});
    // clang-format on
    permute_each<After>(selected, to);
}
} // namespace detail

/// Splits Ways batches of interleaved values (value w of group g at position Ways * g + w,
/// counting across the batches) into one batch per way: ways[w] lane g = value w of group g.
/// The 4-way case turns image columns 4 tx + j into rows j of tile columns tx. In-lane and
/// cross-lane permutes with compile-time indices (xsimd's swizzle and select); Ways divides the
/// lane count.
template <std::size_t Ways>
void deinterleave(const float_batch (&interleaved)[Ways], float_batch (&ways)[Ways])
{
    detail::permute_select_permute<detail::spread_ways, detail::order_blocks>(interleaved, ways);
}

/// The inverse of deinterleave: one batch per way in, the ways' values interleaved out.
template <std::size_t Ways>
void interleave(const float_batch (&ways)[Ways], float_batch (&interleaved)[Ways])
{
    detail::permute_select_permute<detail::unorder_blocks, detail::gather_ways>(ways, interleaved);
}

#if defined(__x86_64__)
namespace detail {
/// Transposes 16 x 16 32-bit values held as 16 AVX-512 vectors: r[i][j] becomes r[j][i], in 64
/// shuffles (the generic transpose below takes twice as many permutes and some blends). Compiled for AVX-512 whatever
/// the program is compiled for: the bf16 kernels call it from their own AVX-512 functions.
__attribute__((target("avx512f"))) inline void transpose_16x16(__m512i r[16])
{
    __m512i t[16];
    VGG_UNROLL
    for (std::size_t i = 0; i < 16; i += 2) { // pairs of rows, interleaved by 32 bits
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    VGG_UNROLL
    for (std::size_t i = 0; i < 16; i += 4) { // now r[i + m]'s 128-bit lane l is column 4l + m of rows i..i+3
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    VGG_UNROLL
    for (std::size_t m = 0; m < 4; ++m) { // gather lane l of r[m], r[4 + m], r[8 + m], r[12 + m]
        const __m512i even_ab = _mm512_shuffle_i32x4(r[m], r[4 + m], 0x88);
        const __m512i odd_ab = _mm512_shuffle_i32x4(r[m], r[4 + m], 0xdd);
        const __m512i even_cd = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0x88);
        const __m512i odd_cd = _mm512_shuffle_i32x4(r[8 + m], r[12 + m], 0xdd);
        t[m] = _mm512_shuffle_i32x4(even_ab, even_cd, 0x88);
        t[4 + m] = _mm512_shuffle_i32x4(odd_ab, odd_cd, 0x88);
        t[8 + m] = _mm512_shuffle_i32x4(even_ab, even_cd, 0xdd);
        t[12 + m] = _mm512_shuffle_i32x4(odd_ab, odd_cd, 0xdd);
    }
    VGG_UNROLL
    for (std::size_t i = 0; i < 16; ++i)
        r[i] = t[i];
}
} // namespace detail
#endif

/// Transposes a square of float_batch::size rows in place: rows[i] lane j <-> rows[j] lane i.
/// log2(lanes) rounds of interleaving row i with row i + lanes / 2 (a perfect shuffle each), or
/// AVX-512's in-lane and 128-bit shuffles.
inline void transpose(float_batch (&rows)[float_batch::size])
{
    constexpr std::size_t lanes = float_batch::size;
#if defined(__AVX512F__)
    __m512i square[lanes];
    VGG_UNROLL
    for (std::size_t i = 0; i < lanes; ++i)
        square[i] = _mm512_castps_si512(rows[i]);
    detail::transpose_16x16(square);
    VGG_UNROLL
    for (std::size_t i = 0; i < lanes; ++i)
        rows[i] = _mm512_castsi512_ps(square[i]);
#else
    VGG_UNROLL
    for (std::size_t round = 1; round < lanes; round *= 2) {
        float_batch shuffled[lanes];
        for (std::size_t i = 0; i < lanes / 2; ++i) {
            const float_batch pair[2] = {rows[i], rows[i + lanes / 2]};
            float_batch interleaved[2];
            interleave(pair, interleaved);
            shuffled[2 * i] = interleaved[0];
            shuffled[2 * i + 1] = interleaved[1];
        }
        std::copy(shuffled, shuffled + lanes, rows);
    }
#endif
}
VGG_UNDEFINED_VECTOR_WARNINGS_ON

/// Stores the first `count` lanes of `values` (all when count >= lanes). AVX-512 masks the
/// store (xsimd 8 has no masked stores); elsewhere the lanes go through scratch.
inline void store_first(const float_batch& values, float* to, std::size_t count)
{
    if (count >= float_batch::size)
        return values.store_unaligned(to);
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(to, static_cast<__mmask16>((1u << count) - 1), values);
#else
    alignas(64) float lanes[float_batch::size];
    values.store_aligned(lanes);
    std::copy(lanes, lanes + count, to);
#endif
}

/// The first `count` values from `from` (a whole batch when count >= lanes); the other lanes 0.
inline float_batch load_first(const float* from, std::size_t count)
{
    if (count >= float_batch::size)
        return float_batch::load_unaligned(from);
#if defined(__AVX512F__)
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << count) - 1), from);
#else
    alignas(64) float lanes[float_batch::size] = {};
    std::copy(from, from + count, lanes);
    return float_batch::load_aligned(lanes);
#endif
}

/// count rounded up to whole SIMD batches.
constexpr std::size_t whole_batches(std::size_t count)
{
    return (count + float_batch::size - 1) / float_batch::size * float_batch::size;
}

} // namespace vgg::kernels
