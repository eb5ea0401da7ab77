#!/usr/bin/env bash
# Side by side: vgg_bench and PyTorch (bench/pytorch_reference.py) on the same preset, batch
# and thread count, alternating ROUNDS times so both see the same machine, then a table with
# the medians and the ratios.
# Usage: bench/compare.sh [--resize 224] [--ratio 4] [--batch 128] [--threads 2] [--reps 3] [--rounds 2]
set -euo pipefail
cd "$(dirname "$0")/.."
resize=224 ratio=4 batch=128 threads=2 reps=3 rounds=2
while [ $# -gt 0 ]; do
  case $1 in
    --resize) resize=$2 ;; --ratio) ratio=$2 ;; --batch) batch=$2 ;; --threads) threads=$2 ;;
    --reps) reps=$2 ;; --rounds) rounds=$2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
bench=${VGG_BENCH:-build/bench/vgg_bench}
[ -x "$bench" ] || { cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null && cmake --build build --target vgg_bench -j"$(nproc)" >/dev/null; }
/usr/bin/python3 -c "import torch" 2>/dev/null || { echo "needs Debian's python3-torch (apt-get install python3-torch)" >&2; exit 1; }

args=(--resize "$resize" --ratio "$ratio" --batch "$batch" --threads "$threads" --reps "$reps" --json)
results=$(mktemp)
for round in $(seq "$rounds"); do
  echo "round $round/$rounds: vgg" >&2
  "$bench" "${args[@]}" >> "$results"
  echo "round $round/$rounds: pytorch" >&2
  /usr/bin/python3 bench/pytorch_reference.py "${args[@]}" >> "$results"
done
echo "vgg 1 thread (for the scaling figure)" >&2
"$bench" --resize "$resize" --ratio "$ratio" --batch "$batch" --threads 1 --reps "$reps" --json | sed 's/"library":"vgg"/"library":"vgg-1thread"/' >> "$results"

/usr/bin/python3 - "$results" <<'PY'
import json, statistics, sys, platform
rows = [json.loads(line) for line in open(sys.argv[1])]
def pick(prefix):
    return [r for r in rows if r["library"].startswith(prefix)]
def med(rs, key):
    return statistics.median(r[key] for r in rs)
ours, torch, single = pick("vgg"), pick("pytorch"), pick("vgg-1thread")
ours = [r for r in ours if r["library"] == "vgg"]
first = ours[0]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.processor())
print(f"VGG-11 / {first['ratio']} at {first['resize']}x{first['resize']}, batch {first['batch']}, {first['threads']} threads, "
      f"{cpu}; medians over {len(ours)} alternating rounds")
print()
print("| | vgg | PyTorch " + torch[0]["library"].split()[1] + " | ratio |")
print("|---|---|---|---|")
for key, label in [("train_img_per_s", "training img/s"), ("infer_img_per_s", "inference img/s"), ("peak_rss_mb", "peak RSS MB")]:
    a, b = med(ours, key), med(torch, key)
    print(f"| {label} | {a:.1f} | {b:.1f} | {a / b:.2f}x |")
print(f"| training GFLOPS, direct-convolution count (share of vgg's measured GEMM ceiling, {med(ours, 'gemm_ceiling_gflops'):.0f} GFLOPS) | "
      f"{med(ours, 'train_gflops'):.1f} ({100 * med(ours, 'fraction_of_ceiling'):.0f}%) | | |")
if single:
    print(f"| vgg 2 threads / 1 thread (training) | {med(ours, 'train_img_per_s') / med(single, 'train_img_per_s'):.2f}x | | |")
PY
rm -f "$results"
