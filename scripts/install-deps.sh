#!/usr/bin/env bash
# Installs the Debian 12 packages vgg needs to build, test and train, skipping those already
# present; with the argument "reference", also PyTorch and torchvision for bench/compare.sh and
# tools/. Needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(cmake g++ make libeigen3-dev libxsimd-dev doctest-dev zlib1g-dev nlohmann-json3-dev libcli11-dev
          libstb-dev dataset-fashion-mnist
          clang clang-format libclang-rt-14-dev libomp-dev libopenmpi-dev openmpi-bin
          libturbojpeg0-dev libonnx-dev libprotobuf-dev)
# libtorch recommends an optimised BLAS, which --no-install-recommends would leave out: without it PyTorch
# multiplies matrices with the reference BLAS (3 GFLOPS), and bench/compare.sh would compare against that.
[ "${1:-}" = reference ] && packages+=(python3-torchvision libopenblas0-pthread)
# With "reference", ONNX Runtime from npm too, for the ONNX tests (tests/onnxruntime/package.json).
[ "${1:-}" = reference ] && ! command -v npm >/dev/null && packages+=(npm)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
install_onnxruntime() {
  # Without its post-install script, which would download GPU libraries.
  local folder
  folder="$(dirname "$0")/../tests/onnxruntime"
  if [ "${1:-}" = reference ] && [ ! -d "$folder/node_modules/onnxruntime-node" ]; then
    (cd "$folder" && npm ci --ignore-scripts --no-audit --no-fund)
  fi
}
[ ${#missing[@]} -eq 0 ] && { install_onnxruntime "${1:-}"; exit 0; }

echo "installing: ${missing[*]}"
as_root=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "error: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  as_root=(sudo)
fi
"${as_root[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
install_onnxruntime "${1:-}"
