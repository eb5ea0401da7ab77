#pragma once
// The int8 inner kernels: a tile of Pixels outputs x Blocks blocks of 16 channels, its u8 x s8
// products summed in int32 over taps and 4-channel groups, then requantised (layout.hpp's rule).
// One implementation per instruction set, compiled by target attributes and chosen at run time;
// all give the same bytes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "vgg/kernels/int8/layout.hpp"
#include "vgg/kernels/simd.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#define VGG_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))
#define VGG_TARGET_AVX512_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#endif

namespace vgg::kernels::int8 {

/// Where a tile's products come from.
struct tile_source {
    const std::uint8_t* x;    ///< the tile's first pixel at its first tap
    std::size_t pixel_stride; ///< bytes from one pixel of the tile to the next
    const std::ptrdiff_t* tap_offsets;
    std::size_t taps, groups;   ///< taps, and 4-channel groups per tap
    const std::int8_t* weights; ///< the tile's first block (packed_weights::block)
    std::size_t block_stride;   ///< bytes from one block to the next
};

/// Where a tile's results go: u8 through ReLU (requantised), or fp32 (`f32` set), the first
/// `channels` of its 16 x Blocks.
struct tile_output {
    const float* multiplier; ///< of the tile's first channel
    const float* offset;
    std::uint8_t* u8 = nullptr;
    float* f32 = nullptr;
    std::size_t pixel_stride; ///< elements from one pixel's output to the next
    std::size_t channels;
};

inline std::int32_t load_group(const std::uint8_t* p)
{
    std::int32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

/// Writes one pixel's sums (out.channels of them) as `out` says.
inline void finish_sums(const std::int32_t* sums, const tile_output& out)
{
    for (std::size_t k = 0; k < out.channels; ++k) {
        const float v = std::fma(float(sums[k]), out.multiplier[k], out.offset[k]);
        if (out.f32)
            out.f32[k] = v;
        else
            out.u8[k] = requantize(v);
    }
}

/// Writes sums[p][k] (Pixels x Width int32) as `out` says.
template <std::size_t Pixels, std::size_t Width>
void finish_tile(const std::int32_t (&sums)[Pixels][Width], const tile_output& out)
{
    for (std::size_t p = 0; p < Pixels; ++p) {
        tile_output pixel = out;
        if (out.f32)
            pixel.f32 += p * out.pixel_stride;
        else
            pixel.u8 += p * out.pixel_stride;
        finish_sums(sums[p], pixel);
    }
}

/// Plain C++: for CPUs without AVX2 (and the reference the others are tested against).
struct portable_tiles {
    static constexpr std::size_t pixels = 4, blocks = 1;

    template <std::size_t Pixels, std::size_t Blocks>
    static void tile(const tile_source& s, const tile_output& out)
    {
        std::int32_t sums[Pixels][Blocks * channel_block] = {};
        for (std::size_t t = 0; t < s.taps; ++t)
            for (std::size_t g = 0; g < s.groups; ++g)
                for (std::size_t b = 0; b < Blocks; ++b) {
                    const std::int8_t* w = s.weights + b * s.block_stride + (t * s.groups + g) * 64;
                    for (std::size_t p = 0; p < Pixels; ++p) {
                        const std::uint8_t* x = s.x + p * s.pixel_stride + s.tap_offsets[t] + g * group_size;
                        for (std::size_t j = 0; j < channel_block; ++j)
                            for (std::size_t i = 0; i < group_size; ++i)
                                sums[p][b * channel_block + j] += std::int32_t{x[i]} * w[j * group_size + i];
                    }
                }
        finish_tile(sums, out);
    }
};

#if defined(__x86_64__)
VGG_UNDEFINED_VECTOR_WARNINGS_OFF

/// AVX2: vpmaddubsw multiplies u8 by s8 and adds pairs (in int16: weight_levels keeps them
/// from saturating), vpmaddwd by ones adds the pairs' pairs into int32.
struct avx2_tiles {
    static constexpr std::size_t pixels = 4, blocks = 1;

    template <std::size_t Pixels, std::size_t Blocks>
    VGG_TARGET_AVX2_FMA static void tile(const tile_source& s, const tile_output& out)
    {
        constexpr std::size_t vectors = 2 * Blocks; // 8 channels each
        __m256i sums[Pixels][vectors];
        for (auto& row : sums)
            for (auto& v : row)
                v = _mm256_setzero_si256();
        const __m256i ones = _mm256_set1_epi16(1);
        for (std::size_t t = 0; t < s.taps; ++t) {
            const std::uint8_t* x = s.x + s.tap_offsets[t];
            const std::int8_t* w = s.weights + t * s.groups * 64;
            for (std::size_t g = 0; g < s.groups; ++g, x += group_size, w += 64) {
                __m256i wv[vectors];
                VGG_UNROLL
                for (std::size_t v = 0; v < vectors; ++v)
                    wv[v] = _mm256_load_si256(
                        reinterpret_cast<const __m256i*>(w + (v / 2) * s.block_stride + (v % 2) * 32));
                VGG_UNROLL
                for (std::size_t p = 0; p < Pixels; ++p) {
                    const __m256i xv = _mm256_set1_epi32(load_group(x + p * s.pixel_stride));
                    VGG_UNROLL
                    for (std::size_t v = 0; v < vectors; ++v)
                        sums[p][v] =
                            _mm256_add_epi32(sums[p][v], _mm256_madd_epi16(_mm256_maddubs_epi16(xv, wv[v]), ones));
                }
            }
        }
        finish(sums, out);
    }

private:
    template <std::size_t Pixels, std::size_t Vectors>
    VGG_TARGET_AVX2_FMA static void finish(__m256i (&sums)[Pixels][Vectors], const tile_output& out)
    {
        if (out.f32 || out.channels != Vectors * 8) {
            std::int32_t scalar[Pixels][Vectors * 8];
            VGG_UNROLL
            for (std::size_t p = 0; p < Pixels; ++p) {
                VGG_UNROLL
                for (std::size_t v = 0; v < Vectors; ++v)
                    _mm256_storeu_si256(reinterpret_cast<__m256i*>(&scalar[p][v * 8]), sums[p][v]);
            }
            finish_tile(scalar, out);
            return;
        }
        const __m256 low = _mm256_setzero_ps(), high = _mm256_set1_ps(float(activation_levels));
        VGG_UNROLL
        for (std::size_t p = 0; p < Pixels; ++p) {
            VGG_UNROLL
            for (std::size_t v = 0; v < Vectors; v += 2) {
                __m256i q[2];
                VGG_UNROLL
                for (std::size_t h = 0; h < 2; ++h) {
                    const __m256 r = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums[p][v + h]),
                                                     _mm256_loadu_ps(out.multiplier + (v + h) * 8),
                                                     _mm256_loadu_ps(out.offset + (v + h) * 8));
                    q[h] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, low), high));
                }
                // packs interleaves the 128-bit lanes; the permute puts the 16 values back in order.
                const __m256i words = _mm256_permute4x64_epi64(_mm256_packs_epi32(q[0], q[1]), 0xD8);
                const __m128i bytes =
                    _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(out.u8 + p * out.pixel_stride + v * 8), bytes);
            }
        }
    }
};

/// AVX512_VNNI: vpdpbusd multiplies u8 by s8 and adds four products into each int32 lane.
struct avx512_vnni_tiles {
    static constexpr std::size_t pixels = 6, blocks = 2;

    template <std::size_t Pixels, std::size_t Blocks>
    VGG_TARGET_AVX512_VNNI static void tile(const tile_source& s, const tile_output& out)
    {
        __m512i sums[Pixels][Blocks];
        for (auto& row : sums)
            for (auto& v : row)
                v = _mm512_setzero_si512();
        for (std::size_t t = 0; t < s.taps; ++t) {
            const std::uint8_t* x = s.x + s.tap_offsets[t];
            const std::int8_t* w = s.weights + t * s.groups * 64;
            for (std::size_t g = 0; g < s.groups; ++g, x += group_size, w += 64) {
                __m512i wv[Blocks];
                VGG_UNROLL
                for (std::size_t b = 0; b < Blocks; ++b)
                    wv[b] = _mm512_load_si512(w + b * s.block_stride);
                VGG_UNROLL
                for (std::size_t p = 0; p < Pixels; ++p) {
                    const __m512i xv = _mm512_set1_epi32(load_group(x + p * s.pixel_stride));
                    VGG_UNROLL
                    for (std::size_t b = 0; b < Blocks; ++b)
                        sums[p][b] = _mm512_dpbusd_epi32(sums[p][b], xv, wv[b]);
                }
            }
        }
        finish(sums, out);
    }

private:
    template <std::size_t Pixels, std::size_t Blocks>
    VGG_TARGET_AVX512_VNNI static void finish(__m512i (&sums)[Pixels][Blocks], const tile_output& out)
    {
        if (out.f32 || out.channels != Blocks * channel_block) {
            std::int32_t scalar[Pixels][Blocks * channel_block];
            VGG_UNROLL
            for (std::size_t p = 0; p < Pixels; ++p) {
                VGG_UNROLL
                for (std::size_t b = 0; b < Blocks; ++b)
                    _mm512_storeu_si512(&scalar[p][b * channel_block], sums[p][b]);
            }
            finish_tile(scalar, out);
            return;
        }
        const __m512 low = _mm512_setzero_ps(), high = _mm512_set1_ps(float(activation_levels));
        VGG_UNROLL
        for (std::size_t p = 0; p < Pixels; ++p) {
            VGG_UNROLL
            for (std::size_t b = 0; b < Blocks; ++b) {
                const __m512 r =
                    _mm512_fmadd_ps(_mm512_cvtepi32_ps(sums[p][b]), _mm512_loadu_ps(out.multiplier + b * channel_block),
                                    _mm512_loadu_ps(out.offset + b * channel_block));
                const __m512i q = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, low), high));
                _mm_storeu_si128(reinterpret_cast<__m128i*>(out.u8 + p * out.pixel_stride + b * channel_block),
                                 _mm512_cvtepi32_epi8(q));
            }
        }
    }
};

VGG_UNDEFINED_VECTOR_WARNINGS_ON
#endif

} // namespace vgg::kernels::int8
