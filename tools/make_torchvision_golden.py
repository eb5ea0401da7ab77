#!/usr/bin/python3
"""Golden values from PyTorch for tests/test_torchvision.cpp, written to
tests/data/torchvision_golden.json. Needs Debian's python3-torchvision; run with Debian's python:

    /usr/bin/python3 tools/make_torchvision_golden.py

It records nn.BatchNorm2d's training forward (output and running statistics) and backward
(input, weight and bias gradients) and its evaluation forward, nn.AdaptiveAvgPool2d forward and
backward at sizes whose windows overlap, and the state_dict names, shapes and parameter counts
of torchvision's VGG family. Everything runs in float64.
"""
import json
import pathlib

import torch
from torch import nn
from torchvision import models

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "torchvision_golden.json"
torch.manual_seed(7)


def values(t):
    return t.detach().reshape(-1).tolist()


def batchnorm_case():
    n, c, h, w = 3, 4, 5, 6
    bn = nn.BatchNorm2d(c).double()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    # A channel whose mean is far from zero, where one-pass variance formulas lose precision.
    x = (torch.rand(n, c, h, w, dtype=torch.float64) * 2 - 1) + torch.tensor([0, 3, -2, 100.0]).view(1, c, 1, 1)
    x = x.float().double().requires_grad_(True)  # the values the float test holds exactly
    dy = torch.rand(n, c, h, w, dtype=torch.float64) * 2 - 1
    case = {"shape": [n, c, h, w], "x": values(x), "dy": values(dy), "weight": values(bn.weight),
            "bias": values(bn.bias), "running_mean": values(bn.running_mean), "running_var": values(bn.running_var)}
    initial_mean, initial_var = bn.running_mean.clone(), bn.running_var.clone()
    bn.train()
    y = bn(x)
    (y * dy).sum().backward()
    case["train"] = {"y": values(y), "dx": values(x.grad), "dweight": values(bn.weight.grad),
                     "dbias": values(bn.bias.grad), "running_mean": values(bn.running_mean),
                     "running_var": values(bn.running_var)}
    bn.eval()  # with the statistics the case starts from
    with torch.no_grad():
        bn.running_mean.copy_(initial_mean)
        bn.running_var.copy_(initial_var)
    x.grad = None
    bn.weight.grad = None
    bn.bias.grad = None
    y = bn(x)
    (y * dy).sum().backward()
    case["eval"] = {"y": values(y), "dx": values(x.grad), "dweight": values(bn.weight.grad),
                    "dbias": values(bn.bias.grad)}
    return case


def adaptive_pool_case():
    n, c, h, w, oh, ow = 2, 3, 10, 9, 7, 4
    x = torch.rand(n, c, h, w, dtype=torch.float64, requires_grad=True)
    dy = torch.rand(n, c, oh, ow, dtype=torch.float64)
    y = nn.AdaptiveAvgPool2d((oh, ow))(x)
    (y * dy).sum().backward()
    return {"shape": [n, c, h, w], "out": [oh, ow], "x": values(x), "dy": values(dy), "y": values(y),
            "dx": values(x.grad)}


def state_dicts():
    out = {}
    for name in ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]:
        model = getattr(models, name)(weights=None)
        out[name] = {"parameters": sum(p.numel() for p in model.parameters()),
                     "state_dict": [[k, list(v.shape)] for k, v in model.state_dict().items()]}
    return out


OUT.write_text(json.dumps({"batchnorm": batchnorm_case(), "adaptive_avgpool": adaptive_pool_case(),
                           "models": state_dicts()}) + "\n")
print("wrote", OUT)
