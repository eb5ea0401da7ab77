#!/usr/bin/python3
"""The seed's experiment in PyTorch (Debian's python3-torch): d2l's train_ch6 for the seed's network
on Fashion-MNIST, to set beside vgg_train's run with the same settings.

    /usr/bin/python3 tools/pytorch_train_seed.py --resize 64 --out pytorch-64 [--epochs 10] [--threads 2]

As d2l: Xavier-uniform weights, SGD (lr 0.05), cross-entropy, batch 128 with the last partial batch
kept, a shuffled training set each epoch, train loss and accuracy five times an epoch and test
accuracy after each. Writes OUT/log.txt (the lines printed) and OUT/metrics.csv in vgg_train's
format. A checkpoint after every epoch (OUT/checkpoint.pt, replaced atomically) lets a run that was
stopped continue with --resume: the same shuffles and dropout masks as a run never stopped.
"""
import argparse
import csv
import math
import os
import pathlib
import sys
import time

import torch
from torch import nn

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from seed_model import fashion_mnist, seed_network  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resize", type=int, default=64, choices=[224, 64, 32])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--limit-train", type=int, default=0, help="the first N training images only (0: all)")
    parser.add_argument("--limit-test", type=int, default=0, help="the first N test images only (0: all)")
    parser.add_argument("--out", required=True, help="folder for log.txt, metrics.csv and checkpoint.pt")
    parser.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    args = parser.parse_args()
    if args.epochs < 1 or args.lr <= 0 or args.batch_size < 1 or args.threads < 1:
        parser.error("--epochs, --lr, --batch-size and --threads must be above 0")
    if args.limit_train < 0 or args.limit_test < 0:
        parser.error("--limit-train and --limit-test must be 0 (all) or above")
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out / "checkpoint.pt"
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    net = seed_network(args.resize)
    for layer in net.modules():  # as train_ch6's init_weights
        if isinstance(layer, (nn.Linear, nn.Conv2d)):
            nn.init.xavier_uniform_(layer.weight)
    optimizer = torch.optim.SGD(net.parameters(), lr=args.lr)
    loss = nn.CrossEntropyLoss()
    history, first_epoch, seconds = [], 0, 0.0
    log = open(out / "log.txt", "a" if args.resume else "w")

    def say(line):
        print(line, flush=True)
        log.write(line + "\n")
        log.flush()

    if args.resume:
        if not checkpoint_path.exists():
            sys.exit(f"error: --resume: {checkpoint_path} does not exist")
        state = torch.load(checkpoint_path)
        if state["settings"] != vars(args) | {"resume": False, "epochs": state["settings"]["epochs"]}:
            sys.exit(f"error: --resume: {checkpoint_path} was written with other settings: {state['settings']}")
        net.load_state_dict(state["net"])
        optimizer.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["rng"])
        history, first_epoch, seconds = state["history"], state["epoch"], state["seconds"]
        say(f"resumed from {checkpoint_path} after epoch {first_epoch}")
        if first_epoch >= args.epochs:
            sys.exit(f"error: --resume: {checkpoint_path} has all {first_epoch} epochs; ask for more with --epochs")

    train_x, train_y = fashion_mnist(args.data, "train", args.resize, args.limit_train)
    test_x, test_y = fashion_mnist(args.data, "test", args.resize, args.limit_test)
    batches = math.ceil(len(train_y) / args.batch_size)
    say(f"training the seed's network in PyTorch {torch.__version__} on {len(train_y)} Fashion-MNIST images at "
        f"{args.resize}x{args.resize}, testing on {len(test_y)}; {args.threads} threads")

    for epoch in range(first_epoch, args.epochs):
        started = time.perf_counter()
        order = torch.randperm(len(train_y), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        loss_sum, correct, seen = 0.0, 0, 0
        net.train()
        for i in range(batches):
            chosen = order[i * args.batch_size:(i + 1) * args.batch_size]
            x, y = train_x[chosen], train_y[chosen]
            optimizer.zero_grad()
            y_hat = net(x)
            batch_loss = loss(y_hat, y)
            batch_loss.backward()
            optimizer.step()
            loss_sum += float(batch_loss) * len(y)
            correct += int((y_hat.argmax(1) == y).sum())
            seen += len(y)
            if (i + 1) % (batches // 5) == 0 or i == batches - 1:
                history.append((epoch + (i + 1) / batches, loss_sum / seen, correct / seen, None))
                rate = seen / (time.perf_counter() - started)
                print(f"epoch {epoch + 1}/{args.epochs}: {i + 1}/{batches} batches, {rate:.1f} examples/sec, "
                      f"loss {loss_sum / seen:.3f}", flush=True)
        train_seconds = time.perf_counter() - started
        net.eval()
        with torch.no_grad():
            test_acc = sum(int((net(test_x[b:b + 256]).argmax(1) == test_y[b:b + 256]).sum())
                           for b in range(0, len(test_y), 256)) / len(test_y)
        history.append((epoch + 1, None, None, test_acc))
        seconds += train_seconds
        say(f"epoch {epoch + 1}/{args.epochs}: loss {loss_sum / seen:.3f}, train acc {correct / seen:.3f}, "
            f"test acc {test_acc:.3f}, {seen / train_seconds:.1f} examples/sec on cpu ({args.threads} threads)")
        write_metrics(out / "metrics.csv", history)
        state = {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "rng": torch.get_rng_state(),
                 "history": history, "epoch": epoch + 1, "seconds": seconds, "settings": vars(args) | {"resume": False}}
        torch.save(state, f"{checkpoint_path}.partial")
        os.replace(f"{checkpoint_path}.partial", checkpoint_path)

    say(f"loss {loss_sum / seen:.3f}, train acc {correct / seen:.3f}, test acc {test_acc:.3f}")
    say(f"{len(train_y) * args.epochs / seconds:.1f} examples/sec on cpu ({args.threads} threads)")


def write_metrics(path, history):
    """vgg_train's metrics.csv: epoch,train_loss,train_acc,test_acc, empty where not measured."""
    with open(f"{path}.partial", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "train_loss", "train_acc", "test_acc"])
        for point in history:
            writer.writerow(["" if v is None else f"{v:.6g}" for v in point])
    os.replace(f"{path}.partial", path)


if __name__ == "__main__":
    main()
