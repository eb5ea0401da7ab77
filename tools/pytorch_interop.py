#!/usr/bin/python3
"""Moves weights between vgg and the seed's PyTorch code (Debian's python3-torch), through
safetensors files written and read with plain json + struct.

  Load vgg's weights into PyTorch and measure test accuracy there:
    /usr/bin/python3 tools/pytorch_interop.py evaluate out/model.safetensors --resize 32 --ratio 4 [--count 1000]
  Save a PyTorch state_dict (torch.save(net.state_dict(), "net.pt")) for vgg_predict:
    /usr/bin/python3 tools/pytorch_interop.py export net.pt net.safetensors --resize 224 --ratio 4
"""
import argparse
import json
import os
import pathlib
import shutil
import struct

import numpy as np
import torch

from seed_model import fashion_mnist, seed_network


def read_safetensors(path):
    data = open(path, "rb").read()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + length])
    header.pop("__metadata__", None)
    body = data[8 + length:]
    out = {}
    for name, entry in header.items():
        assert entry["dtype"] == "F32", f"{name}: only F32 here"
        begin, end = entry["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(body[begin:end], dtype="<f4").copy()).reshape(entry["shape"])
    return out


SAFETENSORS_DTYPES = {torch.float32: ("F32", "<f4"), torch.float16: ("F16", "<f2"), torch.int64: ("I64", "<i8"),
                      torch.int32: ("I32", "<i4")}


def write_safetensors(path, tensors, metadata, keep_dtypes=False):
    """Writes tensors as F32 (or, with keep_dtypes, each in its own dtype, as safetensors.torch.save_file
    writes a state_dict: batch norm's num_batches_tracked as I64), with `metadata` unless it is None."""
    header, offset, blobs = ({} if metadata is None else {"__metadata__": metadata}), 0, []
    for name, t in tensors.items():
        dtype, numpy_type = SAFETENSORS_DTYPES[t.dtype if keep_dtypes else torch.float32]
        blob = t.detach().contiguous().numpy().astype(numpy_type).tobytes()
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    # Written beside the target and renamed over it: an interrupted write never leaves half a file.
    partial = f"{path}.partial"
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
    os.replace(partial, path)


def save_state_dict(path, state):
    """A state_dict as safetensors.torch.save_file saves it: every tensor in its own dtype, no metadata."""
    write_safetensors(path, state, None, keep_dtypes=True)


def make_folder_once(final, make):
    """Calls make(folder) on a folder of this process's own and renames it to `final` whole, unless
    `final` exists: tests that start together may both make it, and none reads a half-made one."""
    final = pathlib.Path(final)
    if final.exists():
        return
    out = final.with_name(f"{final.name}.partial-{os.getpid()}")
    out.mkdir(parents=True)
    make(out)
    try:
        out.rename(final)
    except OSError:  # another process finished first
        shutil.rmtree(out)


def evaluate(args):
    net = seed_network(args.resize, args.ratio)
    state = read_safetensors(args.weights)
    state = {k: v for k, v in state.items() if not k.startswith("optimizer.")}
    net.load_state_dict(state)
    net.eval()
    images, labels = fashion_mnist(args.data, "test", args.resize, args.count)
    count = len(labels)
    with torch.no_grad():
        correct = sum(int((net(images[begin:begin + 256]).argmax(1) == labels[begin:begin + 256]).sum())
                      for begin in range(0, count, 256))
    print(f"accuracy {correct / count:.4f} ({correct} of {count})")


def export(args):
    net = seed_network(args.resize, args.ratio)
    net.load_state_dict(torch.load(args.state_dict, map_location="cpu"))
    write_safetensors(args.output, net.state_dict(), {"resize": str(args.resize), "ratio": str(args.ratio)})
    print(f"wrote {args.output}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    e = sub.add_parser("evaluate")
    e.add_argument("weights")
    e.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    e.add_argument("--count", type=int, default=0)
    x = sub.add_parser("export")
    x.add_argument("state_dict")
    x.add_argument("output")
    for p in (e, x):
        p.add_argument("--resize", type=int, default=224, choices=[224, 64, 32])
        p.add_argument("--ratio", type=int, default=4, choices=[4, 1])
    args = parser.parse_args()
    evaluate(args) if args.command == "evaluate" else export(args)


if __name__ == "__main__":
    main()
