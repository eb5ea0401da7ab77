#!/usr/bin/env bash
# Crash safety of checkpoints: starts vgg_train on a small preset and kills it with SIGKILL at
# random moments, again and again, each time resuming from whatever checkpoint is on disk. After
# every kill the checkpoint must load (vgg_predict reads it whole); at the end the resumed run
# must finish with exactly the weights of a run that was never interrupted.
# Usage: checkpoint_kill_test.sh VGG_TRAIN VGG_PREDICT WORK_DIR [KILLS] [SEED]
set -euo pipefail
train=$1
predict=$2
work=$3
kills=${4:-20}
RANDOM=${5:-1} # the kill moments are random but repeatable
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
common=(--resize 32 --limit-train 256 --limit-test 64 --batch-size 32 --seed 9 --epochs 6)
test_images=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz

echo "== a run that is never interrupted"
start=$(date +%s.%N)
"$train" "${common[@]}" --out "$work/reference" > "$work/reference.log"
run_seconds=$(awk "BEGIN { print $(date +%s.%N) - $start }")
echo "took ${run_seconds}s"

echo "== $kills kills with SIGKILL, resuming after each"
run=$work/run
checkpoint=$run/checkpoint.safetensors
killed=0 loaded=0 during_write=0 before_first=0 completed=0
while [ "$killed" -lt "$kills" ]; do
  resume=()
  [ -e "$checkpoint" ] && resume=(--resume "$checkpoint")
  "$train" "${common[@]}" --out "$run" "${resume[@]}" > "$work/attempt.log" 2>&1 &
  pid=$!
  if [ $((killed % 2)) -eq 0 ]; then
    # Any moment: start-up, training, testing or a checkpoint write.
    sleep "$(awk "BEGIN { print $run_seconds * ($RANDOM % 1000) / 2000 }")"
  else
    # Inside a checkpoint write: as soon as its temporary file appears, plus up to 20 ms.
    for ((poll = 0; poll < 2000; ++poll)); do
      compgen -G "$run/checkpoint.safetensors.tmp*" > /dev/null && break
      kill -0 "$pid" 2> /dev/null || break
      sleep 0.005
    done
    sleep "0.0$((RANDOM % 20))"
  fi
  if ! kill -KILL "$pid" 2> /dev/null; then
    wait "$pid" || { cat "$work/attempt.log"; fail "the trainer failed"; }
    completed=$((completed + 1)) # it finished first: start a new run so the kills go on
    rm -rf "$run"
    continue
  fi
  wait "$pid" 2> /dev/null || true
  killed=$((killed + 1))
  # A temporary file left behind means the kill landed inside a checkpoint write.
  if compgen -G "$run/checkpoint.safetensors.tmp*" > /dev/null; then
    during_write=$((during_write + 1))
    rm -f "$run"/checkpoint.safetensors.tmp*
  fi
  if [ ! -e "$checkpoint" ]; then
    before_first=$((before_first + 1))
    continue
  fi
  "$predict" --weights "$checkpoint" --resize 32 --idx "$test_images" --count 16 > "$work/check.log" 2>&1 ||
    { cat "$work/check.log"; fail "after kill $killed the checkpoint does not load"; }
  epoch=$(grep -ao '"epoch":"[0-9]*"' "$checkpoint" | grep -o '[0-9]\+')
  echo "kill $killed: the checkpoint of epoch $epoch loads"
  loaded=$((loaded + 1))
done

echo "== resume to the end"
resume=()
[ -e "$checkpoint" ] && resume=(--resume "$checkpoint")
"$train" "${common[@]}" --out "$run" "${resume[@]}" > "$work/final.log" 2>&1 || { cat "$work/final.log"; fail "the final resume failed"; }
cmp "$work/reference/model.safetensors" "$run/model.safetensors" || fail "the resumed run ended with other weights than the uninterrupted one"
echo "survived $kills of $kills kills: $during_write inside a checkpoint write, $before_first before the first checkpoint," \
     "$loaded followed by a check that the checkpoint loads ($completed runs ended before their kill);" \
     "the resumed run ended with the uninterrupted run's weights"
echo "1 passed, 0 failed"
