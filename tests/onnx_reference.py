#!/usr/bin/python3
"""ONNX files made by torch.onnx.export (Debian's python3-torch) for tests/test_onnx.cpp. Usage:

    /usr/bin/python3 tests/onnx_reference.py OUT_DIR

Writes into OUT_DIR, for each case below, CASE.onnx and CASE.safetensors ("images" and PyTorch's
evaluation-mode "logits" for them):
  seed32-opset11         the seed's network at 32x32 (ratio 4), constant folding on
  seed32-opset9-view     the same with x.view(x.size(0), -1) for Flatten: a Shape/Gather/Concat/
                         Reshape chain, constant folding off, opset 9
  seed32-opset17         opset 17, constant folding off
  vgg11_bn-opset13-fused torchvision vgg11_bn at 224 (classifier 64 wide, 10 classes, trained
                         statistics): evaluation export folds batch norm into the convolutions
  vgg11_bn-opset17-nodes the same exported with TrainingMode.PRESERVE: BatchNormalization nodes
  vgg11-opset11          torchvision vgg11 at 224, same classifier
Exits with 77 (ctest's skip) when torch or torchvision is missing.
"""
import sys

import reference_common  # noqa: F401  (first: exits 77 without torch)
import torch
from torchvision import models

from pytorch_interop import make_folder_once, write_safetensors
from reference_common import small_classifier, trained_statistics
from seed_model import seed_network


class ViewFlatten(torch.nn.Module):
    def forward(self, x):
        return x.view(x.size(0), -1)


def export(out, name, model, size, channels, opset, folding=True, training=torch.onnx.TrainingMode.EVAL):
    model.eval()
    images = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        logits = model(images)
    torch.onnx.export(model, images, str(out / f"{name}.onnx"), opset_version=opset, do_constant_folding=folding,
                      training=training, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    write_safetensors(out / f"{name}.safetensors", {"images": images, "logits": logits}, {})


def make(out):
    torch.manual_seed(1)
    seed = seed_network(resize=32, ratio=4)
    export(out, "seed32-opset11", seed, 32, 1, 11)
    export(out, "seed32-opset17", seed, 32, 1, 17, folding=False)
    viewed = torch.nn.Sequential(*[ViewFlatten() if isinstance(m, torch.nn.Flatten) else m for m in seed])
    export(out, "seed32-opset9-view", viewed, 32, 1, 9, folding=False)

    torch.manual_seed(2)
    bn = trained_statistics(small_classifier(models.vgg11_bn(weights=None)), 32, batches=2, batch_size=2)
    export(out, "vgg11_bn-opset13-fused", bn, 224, 3, 13)
    export(out, "vgg11_bn-opset17-nodes", bn, 224, 3, 17, training=torch.onnx.TrainingMode.PRESERVE)
    torch.manual_seed(3)
    export(out, "vgg11-opset11", small_classifier(models.vgg11(weights=None)), 224, 3, 11)


if __name__ == "__main__":
    make_folder_once(sys.argv[1], make)
