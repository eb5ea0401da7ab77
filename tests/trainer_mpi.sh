#!/usr/bin/env bash
# vgg_train under mpirun: 2 ranks print what 1 process prints (the same accuracies after a short
# run on real data), only rank 0 prints and writes, and batches that cannot be shared out are
# clear errors.
# Usage: trainer_mpi.sh MPIEXEC VGG_TRAIN WORK_DIR
set -euo pipefail
mpiexec=$1
train=$2
work=$3
rm -rf "$work" && mkdir -p "$work"
fail() { echo "FAIL: $*" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 # CI runs as root
common=(--resize 32 --limit-train 640 --limit-test 300 --batch-size 64 --epochs 2 --seed 3 --threads 1)

"$train" "${common[@]}" --out "$work/one" > "$work/one.log"
"$mpiexec" -np 2 --oversubscribe "$train" "${common[@]}" --out "$work/two" > "$work/two.log"
cat "$work/two.log"
accuracies() { grep -Eo '(train|test) acc [0-9.]+' "$1"; }
[ "$(accuracies "$work/one.log" | wc -l)" -eq 6 ] || fail "one process did not print 2 epoch lines and a final line"
diff <(accuracies "$work/one.log") <(accuracies "$work/two.log") || fail "2 ranks printed other accuracies than 1 process"
# The curves' losses (6 significant digits) may differ only by the summation order's rounding.
paste -d, "$work/one/metrics.csv" "$work/two/metrics.csv" | awk -F, 'NR > 1 {
  for (i = 2; i <= 4; ++i) {
    a = $i; b = $(i + 4); d = a - b; if (d < 0) d = -d
    if (d > 1e-4) { print "metrics.csv line " NR ", column " i ": " a " vs " b; bad = 1 }
  } } END { exit bad }' || fail "2 ranks drew other curves than 1 process"
[ "$(grep -c '^loss ' "$work/two.log")" -eq 1 ] || fail "more than one rank printed the final line"
grep -q '^allreduce: [0-9.]\+ ms per step on average, [0-9]\+ buckets, [0-9.]\+ MB of gradients per rank per step$' \
  "$work/two.log" || fail "no allreduce line"
grep -q '(1 threads x 2 MPI ranks, fp32)' "$work/two.log" || fail "the ranks are not named"
[ -s "$work/two/model.safetensors" ] && [ -s "$work/two/checkpoint.safetensors" ] || fail "rank 0 wrote no weights"
grep -aq '"ranks":"2"' "$work/two/checkpoint.safetensors" || fail "the checkpoint does not record the ranks"

expect_error() { # expected-text ranks train-arguments...
  local expected=$1 ranks=$2; shift 2
  if "$mpiexec" -np "$ranks" --oversubscribe "$train" "$@" > "$work/error.log" 2>&1; then fail "succeeded: $*"; fi
  grep -q -- "$expected" "$work/error.log" || { cat "$work/error.log"; fail "expected '$expected'"; }
}
expect_error "error: the batch size 64 does not divide evenly over 3 processes (the MPI ranks; --batch-size" 3 "${common[@]}" --out "$work/bad"
expect_error "the last batch of an epoch holds 1 examples, fewer than the 2 processes: a process would get no data" 2 \
  --resize 32 --limit-train 65 --limit-test 64 --batch-size 64 --threads 1 --out "$work/bad"
echo "1 passed, 0 failed"
