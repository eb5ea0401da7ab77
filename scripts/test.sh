#!/usr/bin/env bash
# The whole test suite, three times over:
#   build/            Release with -march=native: every test, compile-fail demonstration and script;
#   build-sanitize/   the same suite under AddressSanitizer and UndefinedBehaviorSanitizer (GCC);
#   build-fuzz/       the libFuzzer targets (clang), each fuzzing for VGG_FUZZ_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
jobs=$(nproc)

echo "== Release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVGG_SANITIZE=address,undefined -DVGG_BUILD_BENCH=OFF
cmake --build build-sanitize -j"$jobs"
ctest --test-dir build-sanitize --output-on-failure -j"$jobs"

echo "== libFuzzer targets"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVGG_BUILD_FUZZERS=ON \
  -DVGG_BUILD_TESTS=OFF -DVGG_BUILD_EXAMPLES=OFF -DVGG_BUILD_BENCH=OFF -DVGG_FUZZ_SECONDS="${VGG_FUZZ_SECONDS:-20}"
cmake --build build-fuzz -j"$jobs"
ctest --test-dir build-fuzz --output-on-failure -j"$jobs"
