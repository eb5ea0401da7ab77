#pragma once
// Tests of kernels only some CPUs run: where this one lacks the feature, the test case ends with
// ctest's skip code (77, SKIP_RETURN_CODE in CMakeLists.txt) and a line naming what is missing, so
// it shows as skipped, never as passed.
#include <cstdio>
#include <cstdlib>
#include <string>

#include <vgg/kernels/cpu_features.hpp>

namespace vgg::testing {

inline void skip_because(const std::string& missing)
{
    std::printf("SKIPPED: %s\n", missing.c_str());
    std::fflush(stdout);
    std::exit(77);
}

inline void skip_unless_runs(kernels::bf16_kernel kernel)
{
    if (!kernels::bf16_kernel_runs(kernel))
        skip_because("the " + std::string(to_string(kernel)) +
                     " kernel cannot run here: " + kernels::bf16_kernel_missing(kernel));
}

inline void skip_unless_runs(kernels::int8_kernel kernel)
{
    if (!kernels::int8_kernel_runs(kernel))
        skip_because("the " + std::string(to_string(kernel)) +
                     " int8 kernel cannot run here: " + kernels::int8_kernel_missing(kernel));
}

inline void skip_unless_bf16()
{
    if (!kernels::bf16_supported())
        skip_because(kernels::bf16_unsupported_reason());
}

} // namespace vgg::testing
