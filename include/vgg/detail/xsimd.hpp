#pragma once
// xsimd, as every vgg header includes it. Without optimisation GCC 12 defines two AVX-512BW
// intrinsics as macros that cast their arguments straight to vector types, which xsimd's batches
// cannot take (xsimd 8.1 then fails to compile at -O0 with -march=native on an AVX-512BW CPU).
// Redefined here with the cast through __m512i that GCC's own other macros make.
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#if defined(_mm512_mask_blend_epi8)
#undef _mm512_mask_blend_epi8
#define _mm512_mask_blend_epi8(U, A, W)                                                                                \
    ((__m512i)__builtin_ia32_blendmb_512_mask((__v64qi)(__m512i)(A), (__v64qi)(__m512i)(W), (__mmask64)(U)))
#endif
#if defined(_mm512_mask_blend_epi16)
#undef _mm512_mask_blend_epi16
#define _mm512_mask_blend_epi16(U, A, W)                                                                               \
    ((__m512i)__builtin_ia32_blendmw_512_mask((__v32hi)(__m512i)(A), (__v32hi)(__m512i)(W), (__mmask32)(U)))
#endif

#include <xsimd/xsimd.hpp>
