#!/usr/bin/env bash
# vgg_convert and vgg_predict with ONNX end to end: the seed's network at 32x32 exported by
# torch.onnx.export (tests/onnx_reference.py) converted to safetensors, to ONNX and back, with the
# weights byte-identical; vgg_predict gives the same logits from either file; files of another
# network, a damaged model and wrong names are refused and leave nothing written. Exit 77 (a skip)
# without torch.
set -euo pipefail
convert=$1 predict=$2 reference_script=$3 reference=$4 image=$5 work=$6
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -d "$reference" ] || /usr/bin/python3 "$reference_script" "$reference" || exit $?
rm -rf "$work" && mkdir -p "$work"
seed=(--model seed --resize 32 --ratio 4)

"$convert" "${seed[@]}" "$reference/seed32-opset11.onnx" "$work/from-torch.safetensors" > /dev/null
"$convert" "${seed[@]}" "$work/from-torch.safetensors" "$work/vgg.onnx" > /dev/null
"$convert" "${seed[@]}" "$work/vgg.onnx" "$work/round-trip.safetensors" > /dev/null
cmp "$work/from-torch.safetensors" "$work/round-trip.safetensors" || fail "safetensors -> onnx -> safetensors changed the file"
"$convert" "${seed[@]}" --opset 13 "$work/round-trip.safetensors" "$work/opset13.onnx" > /dev/null

for file in "$reference/seed32-opset11.onnx" "$work/vgg.onnx" "$work/from-torch.safetensors"; do
  "$predict" "${seed[@]}" --weights "$file" --logits "$image" | sed 's/^[^ ]* //' > "$work/$(basename "$file").logits"
done
cmp "$work/seed32-opset11.onnx.logits" "$work/from-torch.safetensors.logits" || fail "vgg_predict: torch's .onnx and its conversion differ"
cmp "$work/vgg.onnx.logits" "$work/from-torch.safetensors.logits" || fail "vgg_predict: vgg's .onnx and the .safetensors differ"

expect_error() { # expected-text command...
  local expected=$1; shift
  if "$@" > "$work/error.log" 2>&1; then fail "succeeded: $*"; fi
  grep -qF -- "$expected" "$work/error.log" || { cat "$work/error.log"; fail "expected '$expected' from: $*"; }
}
expect_error "graph input \"input\" has shape [-1, 1, 32, 32], but the network takes [batch, 1, 64, 64]" \
  "$convert" --model seed --resize 64 --ratio 4 "$work/vgg.onnx" "$work/refused.safetensors"
expect_error "has 16 output channels, but layer 0 (VGGBlock<1, 1, 64>) convolution 0 has 64" \
  "$convert" --model seed --resize 32 --ratio 1 "$work/vgg.onnx" "$work/refused.safetensors"
[ ! -e "$work/refused.safetensors" ] || fail "a refused conversion wrote its output"
head -c 100000 "$work/vgg.onnx" > "$work/truncated.onnx"
expect_error "truncated.onnx: is not an ONNX model" "$predict" "${seed[@]}" --weights "$work/truncated.onnx" "$image"
expect_error "name a .safetensors or an .onnx file" "$convert" "${seed[@]}" "$work/vgg.onnx" "$work/model.pt"
echo "vgg_convert and vgg_predict with ONNX: round trip byte-identical, same logits, errors clear"
