#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <xsimd/xsimd.hpp>

// GCC 12's AVX-512 unpack, shuffle, permute and conversion intrinsics start from an undefined
// vector, which its -Wmaybe-uninitialized (or -Wuninitialized) reports wherever they are
// inlined: a false positive, silenced around the functions that use them.
#if defined(__GNUC__) && !defined(__clang__)
#define VGG_UNDEFINED_VECTOR_WARNINGS_OFF                                                                              \
    _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")                      \
        _Pragma("GCC diagnostic ignored \"-Wuninitialized\"")
#define VGG_UNDEFINED_VECTOR_WARNINGS_ON _Pragma("GCC diagnostic pop")
#else
#define VGG_UNDEFINED_VECTOR_WARNINGS_OFF
#define VGG_UNDEFINED_VECTOR_WARNINGS_ON
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
    const auto last_kept_bit = xsimd::select((bits & bits_batch(0x10000)) != bits_batch(0), bits_batch(1), bits_batch(0));
    const auto rounded = (bits + bits_batch(0x7fff) + last_kept_bit) & high_half;
    auto result = xsimd::select(magnitude > bits_batch(0x7f800000), (bits | bits_batch(0x00400000)) & high_half, rounded);
    result = xsimd::select(magnitude < bits_batch(0x00800000), bits & bits_batch(static_cast<std::int32_t>(0x80000000u)),
                           result);
    return xsimd::bitwise_cast<float_batch>(result);
}

/// count rounded up to whole SIMD batches.
constexpr std::size_t whole_batches(std::size_t count)
{
    return (count + float_batch::size - 1) / float_batch::size * float_batch::size;
}

} // namespace vgg::kernels
