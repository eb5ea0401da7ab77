#!/usr/bin/env bash
# vgg_finetune end to end: torchvision's vgg11_bn (tests/torchvision_reference.py's, random weights)
# fine-tuned on a tiny image folder of 3 classes at 64x64. It reports what it kept of the file's
# classifier, trains, and writes model.safetensors whose features are the file's bytes; a file of
# another model, one class, or a wrong flag are refused. Exit 77 (a skip) without torchvision.
set -euo pipefail
finetune=$1 reference_script=$2 reference=$3 work=$4
fail() { echo "FAIL: $*" >&2; exit 1; }
[ -d "$reference" ] || /usr/bin/python3 "$reference_script" "$reference" || exit $?
weights=$reference/vgg11_bn.safetensors
rm -rf "$work" && mkdir -p "$work"

# Random 8x8 colour images, 4 a class, as binary PPM files.
for split in train test; do
  for class in ant bee cat; do
    mkdir -p "$work/$split/$class"
    for i in 1 2 3 4; do { printf 'P6\n8 8\n255\n'; head -c 192 /dev/urandom; } > "$work/$split/$class/$i.ppm"; done
  done
done
mkdir -p "$work/one/ant" && cp "$work/train/ant/1.ppm" "$work/one/ant/"

"$finetune" --model vgg11_bn --weights "$weights" --train "$work/train" --test "$work/test" --size 64 --epochs 1 \
  --batch-size 4 --out "$work/out" > "$work/log.txt" || fail "vgg_finetune failed: $(tail -5 "$work/log.txt")"
for line in "12 training images in 3 classes, 12 test images" \
            "classifier from $weights: loaded 4 tensors; classifier.6.weight is [1000, 4096] in the file, [3, 4096] in the network" \
            "torchvision vgg11_bn at 64x64, its features (9.2 M parameters) frozen; training the classifier for 3 classes" \
            "epoch 1/1: loss" "wrote $work/out/model.safetensors"; do
  grep -qF "$line" "$work/log.txt" || fail "no line \"$line\" in: $(cat "$work/log.txt")"
done
/usr/bin/python3 - "$weights" "$work/out/model.safetensors" <<'PY' || fail "model.safetensors does not hold the file's features"
import json, struct, sys
def read(path):
    data = open(path, "rb").read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    return {k: (v["shape"], data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]]) for k, v in header.items()}
source, written = read(sys.argv[1]), read(sys.argv[2])
features = [k for k in source if k.startswith("features.")]
assert features and all(written[k] == source[k] for k in features), "features differ"
assert written["classifier.6.weight"][0] == [3, 4096], written["classifier.6.weight"][0]
assert sorted(written) == sorted(source), "other tensor names than torchvision's"
print(f"{len(features)} feature tensors byte for byte as in the file; classifier.6 sized [3, 4096]")
PY

refused() { # expected exit code, expected message, arguments...
  local code=$1 message=$2; shift 2
  set +e; "$finetune" "$@" > /dev/null 2> "$work/error.txt"; local got=$?; set -e
  [ "$got" = "$code" ] || fail "exit $got, not $code, for $*: $(cat "$work/error.txt")"
  grep -qF -- "$message" "$work/error.txt" || fail "unclear error for $*: $(cat "$work/error.txt")"
}
refused 1 "does not hold the features of torchvision's vgg16" --model vgg16 --weights "$weights" --train "$work/train" \
  --test "$work/test" --size 64 --out "$work/out-vgg16"
refused 2 "has 1 classes; vgg_finetune is built for 2 to 10" --model vgg11_bn --weights "$weights" --train "$work/one" \
  --test "$work/one" --size 64 --out "$work/out-one"
refused 2 "--size: 100 not in {224,64}" --weights "$weights" --train "$work/train" --test "$work/test" --size 100
echo "1 passed, 0 failed"
