#!/usr/bin/python3
"""Several training runs' metrics.csv (vgg_train's, or tools/pytorch_train_seed.py's) in one SVG:
training loss on the left, test accuracy on the right, one colour per run.

    python3 tools/plot_runs.py OUT.svg "vgg 64x64=docs/results/metrics-64-fp32.csv" "PyTorch 64x64=run/metrics.csv"
"""
import csv
import html
import os
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"]
PANEL_W, PANEL_H, MARGIN = 360, 240, 48


def read_run(path):
    """(epoch, train loss) points and (epoch, test accuracy) points of one metrics.csv."""
    losses, accuracies = [], []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or set(rows[0]) != {"epoch", "train_loss", "train_acc", "test_acc"}:
        sys.exit(f"error: {path}: not a metrics.csv (epoch,train_loss,train_acc,test_acc)")
    for row in rows:
        if row["train_loss"]:
            losses.append((float(row["epoch"]), float(row["train_loss"])))
        if row["test_acc"]:
            accuracies.append((float(row["epoch"]), float(row["test_acc"])))
    return losses, accuracies


def panel(left, title, runs, pick, y_low, y_high, epochs):
    """One plot: axes, grid, and a polyline per run."""
    def x(e):
        return left + MARGIN + e / epochs * (PANEL_W - MARGIN - 10)

    def y(v):
        return 20 + (y_high - v) / (y_high - y_low) * (PANEL_H - 50)

    parts = [f'<text x="{left + PANEL_W / 2}" y="14" text-anchor="middle">{title}</text>']
    for i in range(5):
        v = y_low + (y_high - y_low) * i / 4
        parts.append(f'<line x1="{x(0)}" x2="{x(epochs)}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{x(0) - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.2f}</text>')
    for e in range(0, epochs + 1, max(1, epochs // 5)):
        parts.append(f'<text x="{x(e):.1f}" y="{PANEL_H - 14}" text-anchor="middle">{e}</text>')
    parts.append(f'<text x="{x(epochs / 2):.1f}" y="{PANEL_H}" text-anchor="middle">epoch</text>')
    for colour, run in zip(COLOURS, runs):
        points = " ".join(f"{x(e):.1f},{y(min(max(v, y_low), y_high)):.1f}" for e, v in pick(run))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>')
    return parts


def main():
    if len(sys.argv) < 3 or any("=" not in a for a in sys.argv[2:]):
        sys.exit(__doc__.strip())
    output, labelled = sys.argv[1], [a.split("=", 1) for a in sys.argv[2:]]
    if len(labelled) > len(COLOURS):
        sys.exit(f"error: at most {len(COLOURS)} runs in one picture")
    runs = [read_run(path) for _, path in labelled]
    epochs = max(1, round(max(e for losses, accuracies in runs for e, _ in losses + accuracies)))
    highest_loss = max(v for losses, _ in runs for _, v in losses)
    lowest_accuracy = min(v for _, accuracies in runs for _, v in accuracies)
    width, height = 2 * PANEL_W + 20, PANEL_H + 20 + 18 * len(runs)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">', f'<rect width="{width}" height="{height}" fill="white"/>']
    parts += panel(0, "train loss", runs, lambda run: run[0], 0.0, highest_loss, epochs)
    parts += panel(PANEL_W + 20, "test accuracy", runs, lambda run: run[1],
                   max(0.0, lowest_accuracy - 0.02), 1.0, epochs)
    for i, (colour, (label, _)) in enumerate(zip(COLOURS, labelled)):
        y = PANEL_H + 26 + 18 * i
        parts.append(f'<line x1="{MARGIN}" x2="{MARGIN + 24}" y1="{y - 4}" y2="{y - 4}" stroke="{colour}" '
                     f'stroke-width="2"/><text x="{MARGIN + 30}" y="{y}">{html.escape(label)}</text>')
    parts.append("</svg>\n")
    with open(f"{output}.partial", "w") as f:
        f.write("\n".join(parts))
    os.replace(f"{output}.partial", output)
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
