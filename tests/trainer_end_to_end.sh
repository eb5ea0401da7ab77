#!/usr/bin/env bash
# End to end: vgg_train on a few hundred real Fashion-MNIST images at the smallest preset. Checks
# the printed lines, the SVG, the CSV and the checkpoint; that a run resumed from a checkpoint
# ends with exactly the weights of an uninterrupted one; and that bad input gives a clear error.
# Then classifies with vgg_predict from the weights it wrote.
# Usage: trainer_end_to_end.sh VGG_TRAIN VGG_PREDICT WORK_DIR
set -euo pipefail
train=$1
predict=$2
work=$3
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
common=(--resize 32 --limit-train 384 --limit-test 128 --batch-size 64 --seed 5)
quick=(--resize 32 --limit-train 64 --limit-test 64 --batch-size 64 --seed 5)

echo "== two epochs in one run"
"$train" "${common[@]}" --epochs 2 --out "$work/whole" > "$work/whole.log"
cat "$work/whole.log"
grep -Eq '^epoch 1/2: loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+, [0-9.]+ examples/sec on cpu \([0-9]+ threads, fp32\)$' "$work/whole.log" || fail "no epoch 1 line"
grep -Eq '^epoch 2/2: loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+, ' "$work/whole.log" || fail "no epoch 2 line"
grep -Eq '^loss [0-9.]+, train acc [0-9.]+, test acc [0-9.]+$' "$work/whole.log" || fail "no final d2l line"
grep -Eq '^[0-9.]+ examples/sec on cpu \([0-9]+ threads, fp32\)$' "$work/whole.log" || fail "no final examples/sec line"
grep -Eq '^epoch 1/2: 6/6 batches, [0-9.]+ examples/sec, loss [0-9.]+, ETA 0:00$' "$work/whole.log" || fail "no progress line"

svg="$work/whole/curves.svg"
head -c 4 "$svg" | grep -q '<svg' || fail "curves.svg is not SVG"
for label in "train loss" "train acc" "test acc" "epoch"; do grep -q "$label" "$svg" || fail "curves.svg lacks '$label'"; done
[ "$(grep -c '<polyline' "$svg")" -eq 3 ] || fail "curves.svg should have 3 curves"
csv="$work/whole/metrics.csv"
[ "$(head -1 "$csv")" = "epoch,train_loss,train_acc,test_acc" ] || fail "metrics.csv header"
[ "$(grep -c ",$" "$csv")" -eq 12 ] || fail "metrics.csv should have a train point per batch (6 batches: d2l plots every 6 // 5 = 1)"
[ "$(grep -Ec '^[12],,,[0-9.]+$' "$csv")" -eq 2 ] || fail "metrics.csv should have one test point per epoch"
[ -s "$work/whole/checkpoint.safetensors" ] && [ -s "$work/whole/model.safetensors" ] || fail "missing weights"
grep -aq '"epoch":"2"' "$work/whole/checkpoint.safetensors" || fail "checkpoint does not record epoch 2"
grep -qx "wrote $work/whole/model.safetensors, $work/whole/checkpoint.safetensors, $work/whole/metrics.csv, $work/whole/curves.svg" \
  "$work/whole.log" || fail "no wrote line naming the four files"

echo "== bf16 precision: trains where the CPU has AMX or AVX512_BF16, a clear refusal elsewhere"
if "$train" "${common[@]}" --epochs 1 --precision bf16 --out "$work/bf16" > "$work/bf16.log" 2>&1; then
  cat "$work/bf16.log"
  grep -Eq '^epoch 1/1: loss [0-9.]+, .* \([0-9]+ threads, bf16 on (AMX|AVX512_BF16)\)$' "$work/bf16.log" || fail "no bf16 epoch line"
  grep -aq '"precision":"bf16"' "$work/bf16/checkpoint.safetensors" || fail "checkpoint does not record bf16"
else
  status=$?
  cat "$work/bf16.log"
  [ "$status" -eq 2 ] || fail "--precision bf16 on a CPU without it should exit 2, not $status"
  grep -q "bf16 needs AMX or AVX512_BF16, and this CPU or its operating system lacks AVX512_BF16" "$work/bf16.log" ||
    fail "no clear message for bf16 on a CPU without it"
  echo "SKIPPED the bf16 training run: this CPU lacks AVX512_BF16 (the refusal was checked instead)"
fi

echo "== one epoch, then resume for the second"
"$train" "${common[@]}" --epochs 1 --out "$work/resumed" > /dev/null
cp "$work/resumed/checkpoint.safetensors" "$work/epoch1.safetensors"
"$train" "${common[@]}" --epochs 2 --out "$work/resumed" --resume "$work/epoch1.safetensors" > "$work/resumed.log"
grep -q "resumed from .* after epoch 1" "$work/resumed.log" || fail "no resume line"
# Nothing is left to train: only the model file is written, and only it is named.
"$train" "${common[@]}" --epochs 2 --out "$work/resumed" --resume "$work/resumed/checkpoint.safetensors" > "$work/done.log"
grep -qx "wrote $work/resumed/model.safetensors" "$work/done.log" || fail "a run with nothing to train named files it did not write"
"$train" "${quick[@]}" --epochs 1 --out "" > "$work/no-out.log"
grep -qx "wrote nothing: --out is empty" "$work/no-out.log" || fail "--out \"\" claimed to write files"
# Another learning rate at resume is a warning: the run goes on, but will not repeat the original.
"$train" "${common[@]}" --epochs 2 --lr 0.1 --out "$work/other-lr" --resume "$work/epoch1.safetensors" > /dev/null 2> "$work/other-lr.err"
grep -q "warning: the checkpoint was made with lr 0.05, this run uses 0.1" "$work/other-lr.err" || fail "no warning for a changed --lr"
cmp "$work/whole/model.safetensors" "$work/resumed/model.safetensors" || fail "resumed weights differ from an uninterrupted run"
cmp "$work/whole/metrics.csv" "$work/resumed/metrics.csv" || fail "resumed metrics differ"

echo "== bad input"
expect_error() { # expected-text command...
  local expected=$1; shift
  if "$@" > "$work/error.log" 2>&1; then fail "succeeded: $*"; fi
  grep -q -- "$expected" "$work/error.log" || { cat "$work/error.log"; fail "expected '$expected' from: $*"; }
}
expect_error "Directory does not exist" "$train" "${common[@]}" --data "$work/no-such-dir"
mkdir -p "$work/empty"
expect_error "$work/empty/train-images-idx3-ubyte.gz: cannot open for reading" "$train" "${common[@]}" --data "$work/empty"
expect_error "--resize: 100 not in" "$train" --resize 100
expect_error "--lr: must be above 0, not -1" "$train" --lr -1
expect_error "--lr: must be above 0, not 0" "$train" --lr 0
expect_error "--epochs: 'abc' is not a whole number" "$train" --epochs abc
expect_error "--threads: must be from 1 to 1024, not 0" "$train" --threads 0
status=0
"$train" --epochs abc > /dev/null 2>&1 || status=$?
[ "$status" -eq 2 ] || fail "an argument mistake should exit 2, not $status"
expect_error "error: --plot $work/no-such-folder/curves.svg: the folder $work/no-such-folder does not exist" \
  "$train" "${common[@]}" --out "$work/t" --plot "$work/no-such-folder/curves.svg"
expect_error "model.safetensors: holds weights only (a model file such as model.safetensors), not a training checkpoint" \
  "$train" "${common[@]}" --out "$work/t" --resume "$work/whole/model.safetensors"
head -c 1000 "$work/epoch1.safetensors" > "$work/truncated.safetensors"
expect_error "truncated.safetensors: truncated or not a safetensors file" "$train" "${common[@]}" --out "$work/t" --resume "$work/truncated.safetensors"
expect_error "is a checkpoint for resize 32, ratio 4, not resize 64, ratio 4" \
  "$train" --resize 64 --limit-train 64 --limit-test 64 --out "$work/t" --resume "$work/epoch1.safetensors"
expect_error "is a checkpoint for resize 32, ratio 4, not resize 32, ratio 1" \
  "$train" --resize 32 --ratio 1 --limit-train 64 --limit-test 64 --out "$work/t" --resume "$work/epoch1.safetensors"

echo "== one output folder, one run; files are tried before the first epoch; temporaries of dead runs go"
"$train" "${common[@]}" --epochs 3 --out "$work/shared" > "$work/first.log" 2>&1 &
first=$!
for _ in $(seq 600); do grep -q "^training VGG-11" "$work/first.log" 2>/dev/null && break; sleep 0.1; done
expect_error "$work/shared: is in use by another run (process $first)" "$train" "${common[@]}" --epochs 1 --out "$work/shared"
wait "$first" || fail "the first run on the shared folder failed: $(cat "$work/first.log")"
( exit 0 ) & dead=$!; wait "$dead"
echo partial > "$work/shared/checkpoint.safetensors.tmp$dead"
"$train" "${quick[@]}" --epochs 1 --out "$work/shared" > /dev/null
[ ! -e "$work/shared/checkpoint.safetensors.tmp$dead" ] || fail "a dead run's temporary file was left"
expect_error "/proc/curves.svg: cannot be written" "$train" "${quick[@]}" --out "$work/t" --plot /proc/curves.svg
grep -q "^epoch 1/" "$work/error.log" && fail "an unwritable --plot was found only after an epoch"

echo "== a diverging run stops and keeps the last good checkpoint"
cp "$work/epoch1.safetensors" "$work/diverge-start.safetensors"
mkdir -p "$work/diverge" && cp "$work/epoch1.safetensors" "$work/diverge/checkpoint.safetensors"
status=0
"$train" "${common[@]}" --epochs 3 --lr 1e12 --out "$work/diverge" --resume "$work/diverge-start.safetensors" \
  > "$work/diverge.log" 2>&1 || status=$?
cat "$work/diverge.log"
[ "$status" -eq 3 ] || fail "a diverging run should exit 3, not $status"
grep -Eq "the loss became|became NaN or infinite" "$work/diverge.log" || fail "no divergence message"
cmp "$work/epoch1.safetensors" "$work/diverge/checkpoint.safetensors" || fail "the last good checkpoint was overwritten"

echo "== vgg_predict with the weights vgg_train wrote"
data=/usr/share/datasets/fashion-mnist
"$predict" --weights "$work/whole/model.safetensors" --resize 32 --idx "$data/t10k-images-idx3-ubyte.gz" --count 200 \
  > "$work/predict.log"
grep -Eq '^accuracy 0\.[0-9]{4} \([0-9]+ of 200\)$' "$work/predict.log" || fail "no accuracy line: $(cat "$work/predict.log")"

echo "== vgg_predict --precision int8: calibrated on training images, the accuracy of fp32 within 2 images in 200"
"$predict" --weights "$work/whole/model.safetensors" --resize 32 --idx "$data/t10k-images-idx3-ubyte.gz" --count 200 \
  --precision int8 --calibration "$data/train-images-idx3-ubyte.gz" --calibration-count 128 --logits \
  --save-int8 "$work/int8.safetensors" > "$work/int8.log" 2> "$work/int8.err"
cat "$work/int8.err"
grep -q "^int8: saved the network to $work/int8.safetensors$" "$work/int8.err" || fail "no line for --save-int8"
grep -Eq '^int8: calibrating on 128 images of .*train-images-idx3-ubyte.gz \(mse\), (AVX512_VNNI|AVX2|portable) kernels$' \
  "$work/int8.err" || fail "no calibration line"
fp32_correct=$(sed -nE 's/^accuracy .* \(([0-9]+) of 200\)$/\1/p' "$work/predict.log")
int8_correct=$(sed -nE 's/^accuracy .* \(([0-9]+) of 200\)$/\1/p' "$work/int8.log")
[ -n "$int8_correct" ] || fail "no int8 accuracy line: $(cat "$work/int8.log")"
[ $(( int8_correct > fp32_correct ? int8_correct - fp32_correct : fp32_correct - int8_correct )) -le 2 ] ||
  fail "int8 classified $int8_correct of 200 right, fp32 $fp32_correct"
echo "== the int8 network --save-int8 wrote gives the same logits, without calibrating"
"$predict" --weights "$work/int8.safetensors" --resize 32 --idx "$data/t10k-images-idx3-ubyte.gz" --count 200 \
  --precision int8 --logits > "$work/int8-file.log" 2> "$work/int8-file.err"
grep -Eq "^int8: the network of $work/int8.safetensors, (AVX512_VNNI|AVX2|portable) kernels$" "$work/int8-file.err" ||
  fail "no line for the int8 file: $(cat "$work/int8-file.err")"
cmp "$work/int8.log" "$work/int8-file.log" || fail "the saved int8 network gives other logits"
expect_error "int8.safetensors is an int8 network: run it with --precision int8" \
  "$predict" --weights "$work/int8.safetensors" --resize 32 --idx "$data/t10k-images-idx3-ubyte.gz" --count 1
expect_error 'int8.safetensors: tensor "0.0.weight" is I8 \[16, 1, 3, 3\], but this network needs I8 \[64, 1, 3, 3\]' \
  "$predict" --weights "$work/int8.safetensors" --resize 32 --ratio 1 --precision int8 \
  --idx "$data/t10k-images-idx3-ubyte.gz" --count 1
expect_error "--calibration, --calibration-count, --calibration-method and --save-int8 go with --precision int8" \
  "$predict" --weights "$work/whole/model.safetensors" --resize 32 --calibration "$data/train-images-idx3-ubyte.gz" \
  --idx "$data/t10k-images-idx3-ubyte.gz" --count 1
expect_error "empty: holds no image files to calibrate int8 on" \
  "$predict" --weights "$work/whole/model.safetensors" --resize 32 --precision int8 --calibration "$work/empty" \
  --idx "$data/t10k-images-idx3-ubyte.gz" --count 1
# The first test image as a PGM file, straight from the IDX bytes.
gzip -dc "$data/t10k-images-idx3-ubyte.gz" > "$work/t10k-images"
{ printf 'P5\n28 28\n255\n'; head -c 800 "$work/t10k-images" | tail -c 784; } > "$work/first.pgm"
"$predict" --weights "$work/whole/checkpoint.safetensors" --resize 32 --top 2 "$work/first.pgm" > "$work/predict.log"
grep -Eq "^$work/first.pgm: [a-z -]+ [01]\.[0-9]{3}, [a-z -]+ [01]\.[0-9]{3}$" "$work/predict.log" || fail "no top-2 line: $(cat "$work/predict.log")"
jpeg=$(dirname "$0")/fuzz/corpus/image/picture-rgb.jpeg # JPEG goes through libjpeg-turbo
"$predict" --weights "$work/whole/model.safetensors" --resize 32 --top 1 "$jpeg" > "$work/predict.log"
grep -Eq "^$jpeg: [a-z -]+ [01]\.[0-9]{3}$" "$work/predict.log" || fail "no top-1 line for a JPEG: $(cat "$work/predict.log")"
head -c 300 "$jpeg" > "$work/truncated.jpeg"
expect_error "truncated.jpeg: cannot read as a JPEG image" "$predict" --weights "$work/whole/model.safetensors" --resize 32 "$work/truncated.jpeg"
echo "not an image" > "$work/text.png"
expect_error "text.png: cannot read as an image" "$predict" --weights "$work/whole/model.safetensors" --resize 32 "$work/text.png"
expect_error "model.safetensors: was trained with --resize 32, not 64" "$predict" --weights "$work/whole/model.safetensors" --resize 64 "$work/first.pgm"
expect_error "give image files or --idx" "$predict" --weights "$work/whole/model.safetensors" --resize 32
# Finite weights whose products overflow: an error, never NaN probabilities.
/usr/bin/python3 - "$work/whole/model.safetensors" "$work/huge.safetensors" <<'PY'
import array, struct, sys
data = open(sys.argv[1], "rb").read()
header_end = 8 + struct.unpack("<Q", data[:8])[0]
values = array.array("f", data[header_end:])
open(sys.argv[2], "wb").write(data[:header_end] + array.array("f", [v * 1e30 for v in values]).tobytes())
PY
expect_error "first.pgm: the network's outputs are not finite (NaN or infinity)" \
  "$predict" --weights "$work/huge.safetensors" --resize 32 "$work/first.pgm"
expect_error "/dev/zero: is not a regular file" "$predict" --weights /dev/zero --resize 32 "$work/first.pgm"
expect_error "t10k-labels-idx1-ubyte.gz: wrong magic number 0x00000801, expected 0x00000803" \
  "$predict" --weights "$work/whole/model.safetensors" --resize 32 --idx "$data/t10k-labels-idx1-ubyte.gz"
# One unreadable image among good ones: an error line for it, the others classified, exit 1.
status=0
"$predict" --weights "$work/whole/model.safetensors" --resize 32 --top 1 "$work/first.pgm" "$work/text.png" "$jpeg" \
  > "$work/predict.log" 2> "$work/predict.err" || status=$?
[ "$status" -eq 1 ] || fail "a run with one bad image should exit 1, not $status"
[ "$(grep -c ': [a-z -]* [01]\.[0-9]\{3\}$' "$work/predict.log")" -eq 2 ] || fail "the two good images were not classified: $(cat "$work/predict.log")"
grep -q "text.png: cannot read as an image" "$work/predict.err" || fail "no error line for the bad image"

echo "1 passed, 0 failed"
