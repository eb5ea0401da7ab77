#!/usr/bin/env bash
# The main job: builds vgg (Release) and runs the seed's experiment. Until the trainer lands,
# this is the seed's shape walk through the full VGG-11.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target vgg_shapes
./build/examples/vgg_shapes "$@"
