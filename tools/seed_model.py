"""The seed's PyTorch model (d2l, "Networks Using Blocks (VGG)"): vgg_block and vgg as the
chapter writes them, with `spatial` generalising its out_channels*7*7 to other input sizes, and
Fashion-MNIST as d2l's load_data_fashion_mnist prepares it. Shared by tools/ and bench/ scripts."""
import gzip

import numpy as np
import torch
from torch import nn

CONV_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch, spatial=7):
    conv_blks = []
    in_channels = 1
    for (num_convs, out_channels) in conv_arch:
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(out_channels * spatial * spatial, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(4096, 10))


def seed_network(resize=224, ratio=4):
    """The seed's small_conv_arch network (ratio 4) or the full one (ratio 1) for resize x resize."""
    return vgg([(n, c // ratio) for n, c in CONV_ARCH], spatial=resize // 32)


def fashion_mnist(data_dir, split, resize, count=0):
    """Images (N x 1 x resize x resize, float in [0, 1]) and labels (int64) of the "train" or "test"
    split (the first `count`, or all), resized as d2l does: transforms.Resize on PIL images (bilinear),
    then ToTensor."""
    from PIL import Image
    from torchvision import transforms
    prefix = {"train": "train", "test": "t10k"}[split]
    images = np.frombuffer(gzip.open(f"{data_dir}/{prefix}-images-idx3-ubyte.gz").read(), np.uint8, offset=16)
    labels = np.frombuffer(gzip.open(f"{data_dir}/{prefix}-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    images = images.reshape(-1, 28, 28)[:count or None]
    pipeline = transforms.Compose([transforms.Resize(resize), transforms.ToTensor()])
    tensors = torch.stack([pipeline(Image.fromarray(image, mode="L")) for image in images])
    return tensors, torch.from_numpy(labels[:len(images)].astype(np.int64))
