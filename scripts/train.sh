#!/usr/bin/env bash
# The main job: builds vgg (Release) and runs the seed's experiment, d2l's train_ch6 on
# Fashion-MNIST at 224x224 with the small VGG-11 (10 epochs; about 3 hours on the 2-core Xeon kind,
# measured: docs/results.md). A run that stopped continues with --resume out/checkpoint.safetensors.
# Extra arguments go to vgg_train (--help lists them), e.g. --resize 32 for a quick run, or
# --precision bf16 on a CPU with AMX or AVX512_BF16 (about 1.7 times as fast on the Xeon).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)" --target vgg_train
./build/examples/vgg_train --out out "$@"
