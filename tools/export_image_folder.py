#!/usr/bin/python3
"""Writes Fashion-MNIST as an image folder (torchvision's ImageFolder layout) of PNG files, to try
vgg::data::image_folder and examples/train_folder.cpp on real images. Needs python3-pil.

    /usr/bin/python3 tools/export_image_folder.py OUT [--data /usr/share/datasets/fashion-mnist] [--limit N]

OUT/train/<class>/<index>.png and OUT/test/<class>/<index>.png, one folder per class named
00-t-shirt ... 09-ankle-boot (the number keeps the dataset's class order when sorted by name).
"""
import argparse
import gzip
import pathlib

import numpy as np
from PIL import Image

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def export(data, split, out, limit):
    images = np.frombuffer(gzip.open(data / f"{split}-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
    labels = np.frombuffer(gzip.open(data / f"{split}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    count = min(limit or len(labels), len(labels))
    for name in range(len(CLASSES)):
        (out / f"{name:02d}-{CLASSES[name]}").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(images[i], mode="L").save(out / f"{labels[i]:02d}-{CLASSES[labels[i]]}" / f"{i:05d}.png")
    print(f"wrote {count} images to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=pathlib.Path)
    parser.add_argument("--data", type=pathlib.Path, default=pathlib.Path("/usr/share/datasets/fashion-mnist"))
    parser.add_argument("--limit", type=int, default=0, help="only the first N images of each split")
    args = parser.parse_args()
    export(args.data, "train", args.out / "train", args.limit)
    export(args.data, "t10k", args.out / "test", args.limit)


if __name__ == "__main__":
    main()
