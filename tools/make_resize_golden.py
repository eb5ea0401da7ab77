#!/usr/bin/python3
"""Writes tests/data/resize_*.idx3.gz: a few Fashion-MNIST images and what d2l's pipeline,
transforms.Resize(size) + ToTensor() on the dataset's PIL images, makes of them (stored as the
bytes ToTensor divides by 255). Needs Debian's python3-torchvision and dataset-fashion-mnist.

    /usr/bin/python3 tools/make_resize_golden.py
"""
import gzip
import pathlib
import struct

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

SOURCE = pathlib.Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data"
PICKS = [0, 1, 17, 4242]  # a few varied images from the test split


def write_idx3(path, array):
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(struct.pack(">I", 0x0803) + struct.pack(">3I", *array.shape) + array.astype(np.uint8).tobytes())


def main():
    raw = gzip.open(SOURCE).read()
    images = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(-1, 28, 28)[PICKS]
    write_idx3(OUT / "resize_source.idx3.gz", images)
    for size in (224, 64, 32):
        pipeline = transforms.Compose([transforms.Resize(size), transforms.ToTensor()])
        out = torch.stack([pipeline(Image.fromarray(image, mode="L")) for image in images])[:, 0]
        as_bytes = torch.round(out * 255).numpy()
        assert np.allclose(as_bytes / 255, out.numpy(), atol=1e-6), "ToTensor output is not k/255"
        write_idx3(OUT / f"resize_{size}.idx3.gz", as_bytes)
        print(f"resize_{size}: {tuple(as_bytes.shape)}")


if __name__ == "__main__":
    main()
