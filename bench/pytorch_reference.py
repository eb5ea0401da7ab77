#!/usr/bin/python3
"""The seed's network (or torchvision's VGG-16) in PyTorch (Debian's python3-torch), timed the way vgg_bench times vgg:
warm-up repetitions, then the median of --reps training steps (forward, cross-entropy,
backward, SGD update) and of --reps eval-mode forward passes on the same batch with the same
weights, after them (an eval pass right after each step, as the weights just changed, is
reported too).

    /usr/bin/python3 bench/pytorch_reference.py --resize 224 --batch 128 --threads 2 [--json]
    /usr/bin/python3 bench/pytorch_reference.py --model vgg16 --batch 8 --threads 2 [--json]
"""
import argparse
import ctypes
import json
import os
import pathlib
import resource
import statistics
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="seed", choices=["seed", "vgg16"])
    parser.add_argument("--resize", type=int, default=224, choices=[224, 64, 32])
    parser.add_argument("--ratio", type=int, default=4, choices=[4, 1])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"],
                        help="bf16: torch.autocast('cpu', dtype=torch.bfloat16) around the forward pass and loss; "
                             "int8: inference only, the network quantised by FX graph mode post-training static "
                             "quantisation on oneDNN (calibrated on --calibration random batches), against its fp32 "
                             "inference")
    parser.add_argument("--calibration", type=int, default=32, help="int8: calibration images")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--freeze-features", action="store_true",
                        help="requires_grad_(False) on the convolutional features, as fine-tuning a new head does")
    return parser.parse_args()


def openblas_kernels_for_this_cpu():
    """OpenBLAS's kernel set for the CPU's instruction set. Debian's OpenBLAS 0.3.21 does not
    recognise every CPU (an Emerald Rapids Xeon gets its generic Prescott kernels, 5x slower) and
    PyTorch's fully connected layers go through it: the reference should get its best."""
    with open("/proc/cpuinfo") as cpuinfo:
        flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    if {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"} <= set(flags):
        return "SKYLAKEX"
    if {"avx2", "fma"} <= set(flags):
        return "HASWELL"
    return None


def blas_in_use():
    """The BLAS PyTorch's matrix products run on (Debian's libblas.so.3 alternative)."""
    blas = ctypes.CDLL("libblas.so.3")
    if not hasattr(blas, "openblas_get_corename"):
        return "reference BLAS"
    blas.openblas_get_corename.restype = ctypes.c_char_p
    return f"OpenBLAS {blas.openblas_get_corename().decode()}"


ARGS = parse_args()
# OpenBLAS reads these when it is loaded, that is when torch is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(ARGS.threads))
KERNELS = openblas_kernels_for_this_cpu()
if KERNELS:
    os.environ.setdefault("OPENBLAS_CORETYPE", KERNELS)

import torch  # noqa: E402
from torch import nn  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "tools"))
from seed_model import seed_network  # noqa: E402  (the seed's own vgg_block and vgg)


def main():
    args = ARGS
    blas = blas_in_use()
    if blas == "reference BLAS":
        print("warning: PyTorch's matrix products run on the reference BLAS (tens of times slower than OpenBLAS): "
              "bash scripts/install-deps.sh reference installs OpenBLAS", file=sys.stderr)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)

    if args.model == "vgg16":
        import torchvision  # Debian's python3-torchvision
        net, channels, size, classes = torchvision.models.vgg16(weights=None), 3, 224, 1000
    else:
        net, channels, size, classes = seed_network(args.resize, args.ratio), 1, args.resize, 10
        for m in net.modules():  # d2l's train_ch6 initialisation
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.xavier_uniform_(m.weight)
    if args.freeze_features:
        for p in net.features.parameters() if args.model == "vgg16" else net[:-8].parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=0.05)
    loss = nn.CrossEntropyLoss()
    x = torch.rand(args.batch, channels, size, size)
    y = torch.randint(0, classes, (args.batch,))

    if args.precision == "int8":
        return quantised_inference(args, blas, net, x)

    autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16")

    def timed_inference():
        net.eval()
        with torch.no_grad(), autocast():
            start = time.perf_counter()
            net(x)
            return time.perf_counter() - start

    train, infer, infer_after_step = [], [], []
    for rep in range(args.warmup + args.reps):
        net.train()
        start = time.perf_counter()
        optimizer.zero_grad()
        with autocast():
            l = loss(net(x), y)
        l.backward()
        optimizer.step()
        train_s = time.perf_counter() - start
        infer_s = timed_inference()  # right after the step
        if rep >= args.warmup:
            train.append(train_s)
            infer_after_step.append(infer_s)
    for rep in range(args.warmup + args.reps):  # the same weights pass after pass
        infer_s = timed_inference()
        if rep >= args.warmup:
            infer.append(infer_s)
    result = {
        "library": f"pytorch {torch.__version__}",
        "blas": blas,
        "model": args.model,
        "resize": args.resize, "ratio": args.ratio, "batch": args.batch, "threads": torch.get_num_threads(),
        "reps": args.reps, "precision": args.precision, "frozen_features": args.freeze_features,
        "train_step_s": statistics.median(train),
        "train_img_per_s": args.batch / statistics.median(train),
        "infer_img_per_s": args.batch / statistics.median(infer),
        "infer_after_step_img_per_s": args.batch / statistics.median(infer_after_step),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pytorch {torch.__version__}, VGG-11 / {args.ratio} at {args.resize}x{args.resize}, batch {args.batch}, "
              f"{result['threads']} threads, {args.precision}: train {result['train_img_per_s']:.1f} img/s, "
              f"inference {result['infer_img_per_s']:.1f} img/s, peak RSS {result['peak_rss_mb']:.0f} MB")


def quantised_inference(args, blas, net, x):
    """int8 inference of net against its fp32 inference, in alternating rounds."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "onednn"
    net.eval()
    prepared = prepare_fx(net, get_default_qconfig_mapping("onednn"), example_inputs=(x[:1],))
    with torch.no_grad():
        prepared(torch.rand(args.calibration, *x.shape[1:]))
        quantised = convert_fx(prepared)
        fp32, int8 = [], []
        for rep in range(args.warmup + args.reps):
            times = []
            for model in (net, quantised):
                start = time.perf_counter()
                model(x)
                times.append(time.perf_counter() - start)
            if rep >= args.warmup:
                fp32.append(times[0])
                int8.append(times[1])
    result = {
        "library": f"pytorch {torch.__version__}",
        "blas": blas,
        "model": args.model,
        "resize": args.resize, "ratio": args.ratio, "batch": args.batch, "threads": torch.get_num_threads(),
        "reps": args.reps, "precision": "int8", "int8_kernel": "onednn",
        "infer_img_per_s": args.batch / statistics.median(int8),
        "fp32_infer_img_per_s": args.batch / statistics.median(fp32),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"pytorch {torch.__version__} int8 (onednn), {args.model} at {args.resize}, batch {args.batch}, "
              f"{result['threads']} threads: int8 {result['infer_img_per_s']:.1f} img/s, "
              f"fp32 {result['fp32_infer_img_per_s']:.1f} img/s")


if __name__ == "__main__":
    main()
