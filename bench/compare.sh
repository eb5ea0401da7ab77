#!/usr/bin/env bash
# Side by side: vgg_bench and PyTorch (bench/pytorch_reference.py) on the same networks, batches
# and thread count, alternating ROUNDS times so both see the same machine, then a table with
# the medians and the ratios.
# Usage: bench/compare.sh [--cases LIST] [--threads 2] [--reps 3] [--rounds 2] [--precision fp32|bf16|int8]
#   LIST: comma-separated MODEL:RESIZE:BATCH cases, MODEL:RESIZE:BATCH:frozen for a training step
#   with the convolutional features frozen (fine-tuning a new head). The default covers the seed's
#   network at 224 (batch 128 and 1) and 64 (batch 128), and torchvision's VGG-16 at 3x224x224
#   (batch 8 and 1).
#   bf16: vgg's --precision bf16 against PyTorch under torch.autocast("cpu", dtype=torch.bfloat16).
#   int8: inference only: vgg's int8 network and PyTorch's (FX post-training static quantisation on
#   oneDNN), each against its own fp32 inference in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
cases=seed:224:128,seed:224:1,seed:64:128,vgg16:224:8,vgg16:224:1 threads=2 reps=3 rounds=2 precision=fp32
while [ $# -gt 0 ]; do
  case $1 in
    --cases) cases=$2 ;; --threads) threads=$2 ;; --reps) reps=$2 ;; --rounds) rounds=$2 ;; --precision) precision=$2 ;;
    *) echo "unknown option $1 (see the usage at the top of $0)" >&2; exit 2 ;;
  esac
  shift 2
done
bench=${VGG_BENCH:-build/bench/vgg_bench}
[ -x "$bench" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build --target vgg_bench -j"$(nproc)" >/dev/null; }
bash scripts/install-deps.sh reference # Debian's python3-torch and python3-torchvision

results=$(mktemp)
trap 'rm -f "$results"' EXIT
IFS=, read -r -a case_list <<< "$cases"
for round in $(seq "$rounds"); do
  for case in "${case_list[@]}"; do
    IFS=: read -r model resize batch frozen <<< "$case"
    args=(--model "$model" --resize "$resize" --batch "$batch" --threads "$threads" --reps "$reps" --precision "$precision" --json)
    [ "${frozen:-}" = frozen ] && args+=(--freeze-features)
    echo "round $round/$rounds, $case: vgg" >&2
    "$bench" "${args[@]}" >> "$results"
    echo "round $round/$rounds, $case: pytorch" >&2
    /usr/bin/python3 bench/pytorch_reference.py "${args[@]}" >> "$results"
  done
done
IFS=: read -r model resize batch <<< "${case_list[0]}"
[ "$precision" = int8 ] || {
echo "${case_list[0]}: vgg on 1 thread (for the scaling figure)" >&2
"$bench" --model "$model" --resize "$resize" --batch "$batch" --threads 1 --reps "$reps" --precision "$precision" --json |
  sed 's/"library":"vgg"/"library":"vgg-1thread"/' >> "$results"
}

/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(line) for line in open(sys.argv[1])]
def med(rs, key):
    return statistics.median(r[key] for r in rs)
def case(r):
    return (r["model"], r["resize"], r["batch"], r.get("frozen_features", False))
cases = list(dict.fromkeys(case(r) for r in rows))
ours = [r for r in rows if r["library"] == "vgg"]
first = ours[0]
reference = next(r for r in rows if r["library"].startswith("pytorch"))
def name_of(c):
    return ("VGG-16, 3x224x224" if c[0] == "vgg16" else f"seed's VGG-11/4, {c[1]}x{c[1]}") + (", features frozen" if c[3] else "")
if first["precision"] == "int8":
    print(f"{first['cpu']}, {first['threads']} threads, int8 inference: vgg on {first['int8_kernel']}, "
          f"{reference['library']} on {reference['int8_kernel']}; medians over {len(ours) // len(cases)} rounds")
    print()
    print("| network, batch | vgg int8 img/s | vgg fp32 | int8 / fp32 | PyTorch int8 | PyTorch fp32 | vgg int8 / PyTorch int8 |")
    print("|---|---|---|---|---|---|---|")
    for c in cases:
        v = [r for r in ours if case(r) == c]
        t = [r for r in rows if r["library"].startswith("pytorch") and case(r) == c]
        if v and t:
            vi, vf, ti, tf = (med(v, "infer_img_per_s"), med(v, "fp32_infer_img_per_s"), med(t, "infer_img_per_s"),
                              med(t, "fp32_infer_img_per_s"))
            print(f"| {name_of(c)}, {c[2]} | {vi:.1f} | {vf:.1f} | {vi / vf:.2f}x | {ti:.1f} | {tf:.1f} | {vi / ti:.2f}x |")
    sys.exit(0)
print(f"{first['cpu']}, {first['threads']} threads, {first['precision']}: {first['gemm']}; "
      f"medians over {len(ours) // len(cases)} alternating rounds against {reference['library']} "
      f"(matrix products on {reference['blas']})")
print()
print("| network, batch | vgg train img/s | PyTorch | ratio | vgg infer img/s | PyTorch | ratio | vgg train GFLOPS | peak RSS MB vgg / PyTorch |")
print("|---|---|---|---|---|---|---|---|---|")
for c in cases:
    v = [r for r in ours if case(r) == c]
    t = [r for r in rows if r["library"].startswith("pytorch") and case(r) == c]
    if not v or not t:
        continue
    name = name_of(c)
    vt, tt, vi, ti = med(v, "train_img_per_s"), med(t, "train_img_per_s"), med(v, "infer_img_per_s"), med(t, "infer_img_per_s")
    print(f"| {name}, {c[2]} | {vt:.1f} | {tt:.1f} | {vt / tt:.2f}x | {vi:.1f} | {ti:.1f} | {vi / ti:.2f}x | "
          f"{med(v, 'train_gflops'):.0f} | {med(v, 'peak_rss_mb'):.0f} / {med(t, 'peak_rss_mb'):.0f} |")
print()
print("Inference right after each training step (the weights just changed; the table's inference repeats the same weights):")
for c in cases:
    v = [r for r in ours if case(r) == c]
    t = [r for r in rows if r["library"].startswith("pytorch") and case(r) == c]
    if v and t:
        va, ta = med(v, "infer_after_step_img_per_s"), med(t, "infer_after_step_img_per_s")
        print(f"- {c[0]} {c[1]} batch {c[2]}{' frozen' if c[3] else ''}: vgg {va:.1f}, PyTorch {ta:.1f} img/s, {va / ta:.2f}x")
single = [r for r in rows if r["library"] == "vgg-1thread"]
if single:
    c = case(single[0])
    two = [r for r in ours if case(r) == c]
    print(f"\nvgg 2 threads / 1 thread, training, {c[0]} {c[1]} batch {c[2]}: "
          f"{med(two, 'train_img_per_s') / med(single, 'train_img_per_s'):.2f}x")
print(f"vgg's GEMM ceiling in the same runs: {med(ours, 'gemm_ceiling_gflops'):.0f} GFLOPS "
      "(GFLOPS above count a direct convolution's multiply-adds; Winograd does fewer)")
PY
