#pragma once
// What the CPU this process runs on can execute, asked at run time (CPUID, XGETBV and Linux's
// AMX permission), so one binary picks the best bf16 kernel on any x86-64 CPU.
#include <stdexcept>
#include <string>
#include <string_view>

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#if defined(__x86_64__) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace vgg::kernels {

/// The bf16 matrix-product kernels, fastest first.
enum class bf16_kernel {
    amx,         ///< AMX tiles (amx_tile, amx_bf16): 16x32 by 32x16 bf16 tile products
    avx512_bf16, ///< AVX512_BF16's vdpbf16ps: two bf16 products per fp32 lane
};

constexpr std::string_view to_string(bf16_kernel k) { return k == bf16_kernel::amx ? "AMX" : "AVX512_BF16"; }

namespace detail {

struct cpu_report {
    bool avx512_bf16 = false; ///< AVX-512 F/BW/VL and BF16, with the OS saving the ZMM state
    bool amx_bf16 = false;    ///< AMX tiles and bf16, with the OS's permission to use them
    bool avx2_fma = false;    ///< AVX2 and FMA, with the OS saving the YMM state
    bool avx512_vnni = false; ///< AVX-512 F/BW/VL and VNNI, with the OS saving the ZMM state
};

#if defined(__x86_64__)
inline unsigned long long extended_control_register()
{
    unsigned eax = 0, edx = 0;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return (static_cast<unsigned long long>(edx) << 32) | eax;
}

/// Linux hands out the 8 KB AMX tile state only to processes that ask for it
/// (ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA); the first tile instruction without it faults.
inline bool amx_permitted()
{
#if defined(__linux__)
    constexpr long request_permission = 0x1023, tile_data = 18;
    return syscall(SYS_arch_prctl, request_permission, tile_data) == 0;
#else
    return false;
#endif
}

inline cpu_report ask_cpu()
{
    cpu_report report;
    unsigned eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) // no OSXSAVE: no XGETBV
        return report;
    const unsigned long long xcr0 = extended_control_register();
    const bool os_saves_ymm = (xcr0 & 0x6) == 0x6;   // SSE and AVX
    const bool os_saves_zmm = (xcr0 & 0xE6) == 0xE6; // SSE, AVX, opmask and both ZMM halves
    const bool fma = ecx & (1u << 12);
    const bool os_saves_tiles = (xcr0 & 0x60000) == 0x60000; // tile configuration and data
    if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx))
        return report;
    const bool avx512 = (ebx & (1u << 16)) && (ebx & (1u << 30)) && (ebx & (1u << 31)); // F, BW, VL
    const bool amx = (edx & (1u << 22)) && (edx & (1u << 24));                          // AMX-BF16, AMX-TILE
    unsigned leaf1_eax = 0, unused;
    __get_cpuid_count(7, 1, &leaf1_eax, &unused, &unused, &unused);
    report.avx512_bf16 = os_saves_zmm && avx512 && (leaf1_eax & (1u << 5));
    report.avx2_fma = os_saves_ymm && fma && (ebx & (1u << 5));
    report.avx512_vnni = os_saves_zmm && avx512 && (ecx & (1u << 11));
    report.amx_bf16 = report.avx512_bf16 && amx && os_saves_tiles && amx_permitted();
    return report;
}
#else
inline cpu_report ask_cpu() { return {}; }
#endif

inline const cpu_report& this_cpu()
{
    static const cpu_report report = ask_cpu();
    return report;
}

} // namespace detail

/// Whether this CPU (and its operating system) can run kernel k.
inline bool bf16_kernel_runs(bf16_kernel k)
{
    return k == bf16_kernel::amx ? detail::this_cpu().amx_bf16 : detail::this_cpu().avx512_bf16;
}

/// Whether precision::bf16 can run here at all.
inline bool bf16_supported() { return bf16_kernel_runs(bf16_kernel::avx512_bf16); }

/// What is missing for kernel k on this CPU, for error and skip messages.
inline std::string bf16_kernel_missing(bf16_kernel k)
{
    return k == bf16_kernel::amx ? "this CPU or its operating system lacks AMX (amx_tile and amx_bf16)"
                                 : "this CPU or its operating system lacks AVX512_BF16 (with AVX-512 F, BW and VL)";
}

/// Why precision::bf16 cannot run on this CPU (empty where it can).
inline std::string bf16_unsupported_reason()
{
    return bf16_supported() ? std::string()
                            : "bf16 needs AMX or AVX512_BF16, and " + bf16_kernel_missing(bf16_kernel::avx512_bf16);
}

/// The fastest bf16 kernel this CPU runs; throws std::runtime_error where there is none.
inline bf16_kernel best_bf16_kernel()
{
    if (bf16_kernel_runs(bf16_kernel::amx))
        return bf16_kernel::amx;
    if (bf16_kernel_runs(bf16_kernel::avx512_bf16))
        return bf16_kernel::avx512_bf16;
    throw std::runtime_error(bf16_unsupported_reason() + ": use fp32 on this machine");
}

/// The int8 kernels (u8 activations times s8 weights, summed in int32), fastest first. All give
/// the same results: the weights are quantised to 7 bits (int8_weight_levels) so that AVX2's
/// pairwise products cannot saturate.
enum class int8_kernel {
    avx512_vnni, ///< AVX512_VNNI's vpdpbusd: four u8 x s8 products per int32 lane
    avx2,        ///< AVX2's vpmaddubsw + vpmaddwd (with FMA for the requantisation)
    portable,    ///< plain C++ for any x86-64 CPU, several times slower
};

constexpr std::string_view to_string(int8_kernel k)
{
    return k == int8_kernel::avx512_vnni ? "AVX512_VNNI" : k == int8_kernel::avx2 ? "AVX2" : "portable";
}

/// Whether this CPU (and its operating system) can run int8 kernel k.
inline bool int8_kernel_runs(int8_kernel k)
{
    switch (k) {
    case int8_kernel::avx512_vnni: return detail::this_cpu().avx512_vnni;
    case int8_kernel::avx2: return detail::this_cpu().avx2_fma;
    case int8_kernel::portable: return true;
    }
    return false;
}

/// What is missing for int8 kernel k on this CPU, for skip messages.
inline std::string int8_kernel_missing(int8_kernel k)
{
    return k == int8_kernel::avx512_vnni
               ? "this CPU or its operating system lacks AVX512_VNNI (with AVX-512 F, BW and VL)"
               : "this CPU or its operating system lacks AVX2 and FMA";
}

/// How int8 kernel k compares with fp32 on the CPUs that have no faster one, for programs to say
/// when they choose it; empty for AVX512_VNNI.
inline std::string int8_kernel_note(int8_kernel k)
{
    if (k == int8_kernel::avx2)
        return "without AVX512_VNNI, AVX2 does int8 products at twice fp32's FMA rate: faster than fp32 on narrow "
               "layers, no faster on wide ones, where fp32 uses Winograd";
    if (k == int8_kernel::portable)
        return "without AVX2, the portable int8 kernel is several times slower than fp32";
    return {};
}

/// The fastest int8 kernel this CPU runs.
inline int8_kernel best_int8_kernel()
{
    for (const int8_kernel k : {int8_kernel::avx512_vnni, int8_kernel::avx2})
        if (int8_kernel_runs(k))
            return k;
    return int8_kernel::portable;
}

} // namespace vgg::kernels
