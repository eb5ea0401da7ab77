#!/usr/bin/env bash
# The test suite. Without arguments, the library's tests in a Release build with -march=native in
# build/: the kernels (the convolution plan, every convolution dispatch in a sample of the sweep,
# bf16, int8), the layers, training, files, and the seed's network against PyTorch. With --all, as
# CI runs it, the whole Release build and every test, compile-fail demonstration and program script
# in it (the full sweeps, the network sweep, torchvision, fine-tuning and ONNX against PyTorch,
# torchvision and ONNX Runtime), then more builds (each stage prints the minutes so far):
#   (first)           clang-format --dry-run --Werror over the C++ files (.clang-format);
#   build-sanitize/   the library's tests, MPI runs and fuzz replays under AddressSanitizer and
#                     UndefinedBehaviorSanitizer (GCC);
#   build-debug/      -O0: each public header alone, the README's example and the shape walk;
#   build-clang/      the compile-only tests (shape errors, installed package) under clang;
#   build-fuzz/       the libFuzzer targets (clang), each fuzzing for VGG_FUZZ_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") all=false ;;
  --all) all=true ;;
  *) echo "usage: bash scripts/test.sh [--all]" >&2; exit 2 ;;
esac
# The convolution sweep (tests/test_conv_sweep.cpp) runs a sample (every dispatch and layer shape
# once), and with --all every configuration in Release, as the network sweep (tests/test_network_sweep.cpp)
# does; the sanitizer build, 20-30 times as slow, runs their small size.
$all && export VGG_SWEEP=full
started=$SECONDS
stage() { echo "== $1 ($(( (SECONDS - started) / 60 )) min so far)"; }
stage "installing what is missing"
bash scripts/install-deps.sh
jobs=$(nproc)

if $all; then
  stage "clang-format: the C++ files keep .clang-format's layout"
  find include tests examples bench -path tests/onnxruntime -prune -o \( -name '*.hpp' -o -name '*.cpp' \) -print |
    xargs clang-format --dry-run --Werror
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
if ! $all; then
  stage "Release build and the library's tests"
  cmake --build build --target vgg_library_tests -j"$jobs"
  ctest --test-dir build --output-on-failure -j"$jobs" --label-regex library
  stage "done (bash scripts/test.sh --all adds the programs, the shape errors, MPI, sanitizers, Debug, clang, fuzzing)"
  exit 0
fi
stage "Release build and tests"
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

# The sanitizer and fuzzing builds keep only line tables of debug information (-g1): their reports
# still name files and lines, and a heavy test program compiles in 3/4 of the time of -g.
line_tables_only="-O2 -g1 -DNDEBUG"

# Compile-only tests (the shape-error demonstrations, the installed-package consumer) check the
# compiler's verdict, which the sanitizers do not change: they run in the Release build only. So
# do the example programs' scripts: the programs are thin over the library, whose tests, MPI runs
# and fuzz replays run here, and compiling their networks under the sanitizers took a third of
# the stage (the programs' file and argument handling is fuzzed by the libFuzzer stage's targets
# where it is the library's).
# AddressSanitizer checks every access to the heap, globals and the stack, but not a local used
# after its scope ends: that check poisons and unpoisons each register tile's accumulators and
# rows at every step and so keeps them on the stack instead of in registers.
stage "AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$line_tables_only -fno-sanitize-address-use-after-scope" \
  -DVGG_SANITIZE=address,undefined -DVGG_BUILD_BENCH=OFF -DVGG_BUILD_EXAMPLES=OFF
cmake --build build-sanitize -j"$jobs"
VGG_SWEEP=small ctest --test-dir build-sanitize --output-on-failure -j"$jobs" --label-exclude compile-only

# A debugger's build, as a user makes one: -O0 with -march=native (where Debian's xsimd 8.1 under
# GCC 12 once failed to compile on AVX-512BW CPUs), each public header compiled alone, and the
# README's example and the shape walk built and run.
stage "Debug build (-O0): each public header alone, the README's example, the shape walk"
cmake -S . -B build-debug -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS=-march=native -DCMAKE_VERIFY_INTERFACE_HEADER_SETS=ON \
  -DVGG_BUILD_BENCH=OFF
cmake --build build-debug --target all_verify_interface_header_sets readme_example vgg_shapes -j"$jobs"
ctest --test-dir build-debug --output-on-failure -R '^(readme_example|shape_walk)$'

# The compile-time shape errors must read the same under clang, and the installed package must
# compile warning-free with it: their compile-only tests, in a clang configuration.
stage "clang: the shape errors and the installed package"
cmake -S . -B build-clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=Release -DVGG_BUILD_EXAMPLES=OFF -DVGG_BUILD_BENCH=OFF
ctest --test-dir build-clang --output-on-failure -j"$jobs" --label-regex compile-only

stage "libFuzzer targets"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=$line_tables_only" -DVGG_BUILD_FUZZERS=ON \
  -DVGG_BUILD_TESTS=OFF -DVGG_BUILD_EXAMPLES=OFF -DVGG_BUILD_BENCH=OFF -DVGG_FUZZ_SECONDS="${VGG_FUZZ_SECONDS:-20}"
cmake --build build-fuzz -j"$jobs"
ctest --test-dir build-fuzz --output-on-failure -j"$jobs"
stage "done"
