#!/usr/bin/python3
"""Writes the seed corpus of the fuzz targets (tests/fuzz/corpus/<target>/): small valid inputs of
every format each parser reads, so fuzzing starts from deep inside the formats. Needs python3-pil.
Usage: tools/make_fuzz_corpus.py [FASHION_MNIST_DIR]"""
import gzip
import io
import json
import pathlib
import struct
import sys

from PIL import Image

root = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "corpus"
data_dir = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")


def write(target, name, data):
    folder = root / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def idx(magic, dims, values):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + bytes(values)


# IDX: the first images and labels of the real test set, plain and gzip, and a tiny file.
images = gzip.open(data_dir / "t10k-images-idx3-ubyte.gz").read()
labels = gzip.open(data_dir / "t10k-labels-idx1-ubyte.gz").read()
two_images = idx(0x0803, [2, 28, 28], images[16:16 + 2 * 784])
three_labels = idx(0x0801, [3], labels[8:11])
write("idx", "two-images.idx3", two_images)
write("idx", "two-images.idx3.gz", gzip.compress(two_images, mtime=0))
write("idx", "three-labels.idx1", three_labels)
write("idx", "three-labels.idx1.gz", gzip.compress(three_labels, mtime=0))
write("idx", "tiny.idx3", idx(0x0803, [1, 2, 3], range(6)))


# safetensors for the fuzz targets' network: Sequential<shape<1,4,4>, VGGBlock<1,1,2>, Flatten, Linear<8,3>>.
params = {"0.0.weight": [2, 1, 3, 3], "0.0.bias": [2], "2.weight": [3, 8], "2.bias": [3]}


def safetensors(tensors, metadata=None, dtype="F32"):
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name, shape in tensors.items():
        count = 1
        for d in shape:
            count *= d
        values = [0.01 * ((i * 7) % 13 - 6) for i in range(count)]
        if dtype == "F32":
            raw = struct.pack("<%df" % count, *values)
        elif dtype == "F16":
            raw = struct.pack("<%de" % count, *values)
        else:  # BF16: the top half of each float
            raw = b"".join(struct.pack("<f", v)[2:] for v in values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


with_momentum = dict(params, **{"optimizer.momentum_buffer." + k: v for k, v in params.items()})
for dtype in ("F32", "F16", "BF16"):
    write("safetensors", "weights-%s.safetensors" % dtype.lower(), safetensors(params, {"resize": "32"}, dtype))
write("safetensors", "with-momentum.safetensors", safetensors(with_momentum))
write("safetensors", "empty.safetensors", safetensors({}))

run = {"format": "vgg-checkpoint-1", "epoch": "2", "seed": "42", "resize": "32", "ratio": "4", "batch_size": "128",
       "train_examples": "60000", "threads": "2", "train_seconds": "12.5", "optimizer_steps": "938",
       "history": json.dumps([[0.2, 2.3, 0.1, None], [1, 1.5, 0.4, None], [1, None, None, 0.6], [2, None, None, 0.7]])}
write("checkpoint", "checkpoint.safetensors", safetensors(params, run))
write("checkpoint", "checkpoint-momentum.safetensors", safetensors(with_momentum, run))
write("checkpoint", "checkpoint-no-history.safetensors", safetensors(params, dict(run, history="[]")))


# Images in every format stb_image decodes that PIL writes, small and odd-sized.
picture = Image.new("L", (7, 5))
picture.putdata([(x * 37 + y * 11) % 256 for y in range(5) for x in range(7)])
for fmt, mode in (("png", "L"), ("png", "RGBA"), ("jpeg", "L"), ("jpeg", "RGB"), ("bmp", "RGB"), ("gif", "P"),
                  ("ppm", "L"), ("ppm", "RGB"), ("tga", "RGB")):
    buffer = io.BytesIO()
    picture.convert(mode).save(buffer, format=fmt.upper())
    write("image", "picture-%s.%s" % (mode.lower(), fmt), buffer.getvalue())
buffer = io.BytesIO()
Image.frombytes("L", (28, 28), images[16:16 + 784]).save(buffer, format="PNG")
write("image", "first-test-image.png", buffer.getvalue())
