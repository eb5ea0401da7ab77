#!/usr/bin/env bash
# The test suite. Without arguments, the Release build with -march=native in build/ and every
# test, compile-fail demonstration and script in it (8 min 46 s measured on 2 cores from a fresh
# clone). With --all, as CI runs it, two more builds follow (41 minutes measured before the
# torchvision tests came; about 55 now, an estimate):
#   build-sanitize/   the same suite under AddressSanitizer and UndefinedBehaviorSanitizer (GCC);
#   build-fuzz/       the libFuzzer targets (clang), each fuzzing for VGG_FUZZ_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-}" in
  "") all=false ;;
  --all) all=true ;;
  *) echo "usage: bash scripts/test.sh [--all]" >&2; exit 2 ;;
esac
bash scripts/install-deps.sh
jobs=$(nproc)

echo "== Release build and tests"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$jobs"
ctest --test-dir build --output-on-failure -j"$jobs"
$all || exit 0

echo "== AddressSanitizer + UndefinedBehaviorSanitizer build and tests"
cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVGG_SANITIZE=address,undefined -DVGG_BUILD_BENCH=OFF
cmake --build build-sanitize -j"$jobs"
ctest --test-dir build-sanitize --output-on-failure -j"$jobs"

echo "== libFuzzer targets"
cmake -S . -B build-fuzz -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVGG_BUILD_FUZZERS=ON \
  -DVGG_BUILD_TESTS=OFF -DVGG_BUILD_EXAMPLES=OFF -DVGG_BUILD_BENCH=OFF -DVGG_FUZZ_SECONDS="${VGG_FUZZ_SECONDS:-20}"
cmake --build build-fuzz -j"$jobs"
ctest --test-dir build-fuzz --output-on-failure -j"$jobs"
