#!/usr/bin/python3
"""Converts a torchvision VGG state_dict (vgg11 ... vgg19_bn, saved with torch.save) into the
safetensors file vgg's TorchvisionVGG models load, under the same names. Needs Debian's
python3-torchvision; run with Debian's python:

    /usr/bin/python3 tools/torchvision_to_safetensors.py vgg16_bn.pth vgg16_bn.safetensors

The model is recognised from the tensors' names and shapes (or named with --model); the class
count comes from classifier.6. Batch norm's num_batches_tracked counters are left out (they only
matter with momentum=None). The file's metadata records the model and class count.
"""
import argparse
import sys

import torch
from torchvision import models

from pytorch_interop import write_safetensors

FAMILY = ["vgg11", "vgg13", "vgg16", "vgg19", "vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"]


def expected_shapes(name, classes):
    model = getattr(models, name)(weights=None, num_classes=classes)
    return {k: list(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def differences(state, expected):
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    wrong = [f"{k} is {list(state[k].shape)}, expected {expected[k]}" for k in expected
             if k in state and list(state[k].shape) != expected[k]]
    return missing, extra, wrong


def load_state_dict(path):
    loaded = torch.load(path, map_location="cpu")
    if isinstance(loaded, torch.nn.Module):
        loaded = loaded.state_dict()
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict) or not all(torch.is_tensor(v) for v in loaded.values()):
        raise ValueError(f"{path} holds no state_dict (a dict of tensors) nor a module")
    return {k: v for k, v in loaded.items() if not k.endswith("num_batches_tracked")}


def convert(state, model=None):
    """Returns (model name, class count) of the torchvision VGG that `state` fits; raises ValueError."""
    if "classifier.6.weight" not in state:
        raise ValueError("no classifier.6.weight: not a torchvision VGG state_dict")
    classes = state["classifier.6.weight"].shape[0]
    for name in [model] if model else FAMILY:
        missing, extra, wrong = differences(state, expected_shapes(name, classes))
        if not (missing or extra or wrong):
            return name, classes
        if model:
            problems = [f"missing {k}" for k in missing[:5]] + [f"unexpected {k}" for k in extra[:5]] + wrong[:5]
            raise ValueError(f"not a torchvision {model}: " + "; ".join(problems))
    raise ValueError("the tensors match none of " + ", ".join(FAMILY) + " (give --model to see why)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dict", help="a .pth file from torch.save(model.state_dict(), ...)")
    parser.add_argument("output", help="the .safetensors file to write")
    parser.add_argument("--model", choices=FAMILY, help="the architecture, when it should be checked rather than found")
    args = parser.parse_args()
    try:
        state = load_state_dict(args.state_dict)
        name, classes = convert(state, args.model)
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    write_safetensors(args.output, state, {"model": name, "classes": str(classes), "source": "torchvision"})
    print(f"wrote {args.output}: torchvision {name}, {classes} classes, {len(state)} tensors")


if __name__ == "__main__":
    main()
