#!/usr/bin/env bash
# vgg_convert and vgg_predict with ONNX end to end: the seed's network at 32x32 exported by
# torch.onnx.export (tests/onnx_reference.py) converted to safetensors, to ONNX and back, with the
# weights byte-identical; vgg_predict gives the same logits from either file; files of another
# network, a damaged model and wrong names are refused and leave nothing written; vgg_predict
# --save-int8 writes an int8 network as ONNX QDQ, which vgg_predict runs with --precision int8 (the
# same classes) and vgg_convert turns into vgg's int8 safetensors and back (the same logits).
# Exit 77 (a skip) without torch.
set -euo pipefail
convert=$1 predict=$2 reference_script=$3 reference=$4 image=$5 work=$6
calibration=/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
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

# An int8 network in ONNX's QDQ form: written, run, converted both ways, refused as fp32 weights.
"$predict" "${seed[@]}" --weights "$work/from-torch.safetensors" --precision int8 --calibration "$calibration" \
  --calibration-count 32 --save-int8 "$work/int8.onnx" "$image" > "$work/int8.classes" 2> "$work/int8.err"
grep -q "^int8: saved the network to $work/int8.onnx$" "$work/int8.err" || fail "no line for --save-int8 FILE.onnx"
"$predict" "${seed[@]}" --weights "$work/int8.onnx" --precision int8 "$image" > "$work/int8-onnx.classes" 2> "$work/int8.err"
grep -Eq "^int8: the network of $work/int8.onnx, (AVX512_VNNI|AVX2|portable) kernels$" "$work/int8.err" ||
  fail "no line for the QDQ file: $(cat "$work/int8.err")"
[ "$(cut -d' ' -f2 "$work/int8.classes")" = "$(cut -d' ' -f2 "$work/int8-onnx.classes")" ] ||
  fail "the QDQ file classifies otherwise than the int8 network it came from"
"$convert" "${seed[@]}" "$work/int8.onnx" "$work/int8.safetensors" > /dev/null
"$convert" "${seed[@]}" "$work/int8.safetensors" "$work/int8-again.onnx" > /dev/null
for file in int8.safetensors int8-again.onnx; do
  "$predict" "${seed[@]}" --weights "$work/$file" --precision int8 --logits "$image" 2> /dev/null |
    sed 's/^[^ ]* //' > "$work/$file.logits"
done
cmp "$work/int8.safetensors.logits" "$work/int8-again.onnx.logits" || fail "int8 .onnx -> .safetensors -> .onnx changed the logits"
expect_error "int8.onnx is an int8 network: run it with --precision int8" \
  "$predict" "${seed[@]}" --weights "$work/int8.onnx" "$image"

expect_error "graph input \"input\" has shape [-1, 1, 32, 32], but the network takes [batch, 1, 64, 64]" \
  "$convert" --model seed --resize 64 --ratio 4 "$work/vgg.onnx" "$work/refused.safetensors"
expect_error "has 16 output channels, but layer 0 (VGGBlock<1, 1, 64>) convolution 0 has 64" \
  "$convert" --model seed --resize 32 --ratio 1 "$work/vgg.onnx" "$work/refused.safetensors"
[ ! -e "$work/refused.safetensors" ] || fail "a refused conversion wrote its output"
head -c 100000 "$work/vgg.onnx" > "$work/truncated.onnx"
expect_error "truncated.onnx: is not an ONNX model" "$predict" "${seed[@]}" --weights "$work/truncated.onnx" "$image"
expect_error "name a .safetensors or an .onnx file" "$convert" "${seed[@]}" "$work/vgg.onnx" "$work/model.pt"
echo "vgg_convert and vgg_predict with ONNX: round trip byte-identical, same logits, errors clear"
