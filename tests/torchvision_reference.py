#!/usr/bin/python3
"""Reference outputs of torchvision's VGGs for tests/test_torchvision_parity.cpp. Usage:

    /usr/bin/python3 tests/torchvision_reference.py OUT_DIR

For vgg11_bn and vgg16 with random weights (seeded; batch norm with non-trivial affine parameters
and running statistics), writes OUT_DIR/<model>.safetensors through tools/torchvision_to_safetensors.py,
and for each input size OUT_DIR/<model>-<size>.safetensors holding "images" and torchvision's
evaluation-mode "logits" for them; OUT_DIR/vgg11_bn-photo.txt holds vgg11_bn's logits for an image
file read through torchvision's transforms (Resize((224, 224)), ToTensor, ImageNet's Normalize). Exits with 77 (ctest's skip) when torchvision is missing.
"""
import subprocess
import sys

import reference_common  # noqa: F401  (first: exits 77 without torch)
import torch
from PIL import Image
from torchvision import models, transforms

ROOT = reference_common.ROOT
from pytorch_interop import make_folder_once, write_safetensors

CASES = {"vgg11_bn": [224, 96], "vgg16": [224]}
IMAGES = 2
# An image file as vgg_predict --model vgg11_bn reads it, through torchvision's own transforms.
PHOTO = ROOT / "tests" / "fuzz" / "corpus" / "image" / "picture-rgb.ppm"


def randomised(name):
    torch.manual_seed(sum(map(ord, name)))
    model = getattr(models, name)(weights=None)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
            elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
                module.bias.uniform_(-0.05, 0.05)
    return model.eval()


def make(out):
    for name, sizes in CASES.items():
        model = randomised(name)
        state_path = out / f"{name}.pth"
        torch.save(model.state_dict(), state_path)
        subprocess.run([sys.executable, str(ROOT / "tools" / "torchvision_to_safetensors.py"), str(state_path),
                        str(out / f"{name}.safetensors")], check=True)
        state_path.unlink()
        for size in sizes:
            images = torch.randn(IMAGES, 3, size, size, generator=torch.Generator().manual_seed(size))
            with torch.no_grad():
                logits = model(images)
            write_safetensors(out / f"{name}-{size}.safetensors", {"images": images, "logits": logits}, {})
            print(f"{name} at {size}: logits {logits.abs().max().item():.4g} at most")
        if name == "vgg11_bn":
            pipeline = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor(),
                                           transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
            with torch.no_grad():
                logits = model(pipeline(Image.open(PHOTO).convert("RGB")).unsqueeze(0))[0]
            (out / f"{name}-photo.txt").write_text(" ".join(f"{v:.7g}" for v in logits.tolist()) + "\n")


if __name__ == "__main__":
    make_folder_once(sys.argv[1], make)
