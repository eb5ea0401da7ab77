#!/usr/bin/python3
"""Reference outputs of torchvision's VGGs for tests/test_torchvision_parity.cpp. Usage:

    /usr/bin/python3 tests/torchvision_reference.py OUT_DIR

For vgg11_bn and vgg16 with random weights (seeded; batch norm with non-trivial affine parameters
and running statistics), writes OUT_DIR/<model>.safetensors through tools/torchvision_to_safetensors.py,
and for each input size OUT_DIR/<model>-<size>.safetensors holding "images" and torchvision's
evaluation-mode "logits" for them. Exits with 77 (ctest's skip) when torchvision is missing.
"""
import pathlib
import subprocess
import sys

try:
    import torch
    from torchvision import models
except ImportError as e:
    print(f"SKIPPED: torchvision is not installed for /usr/bin/python3 ({e}); "
          "bash scripts/install-deps.sh reference installs it")
    sys.exit(77)

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from pytorch_interop import write_safetensors  # noqa: E402

CASES = {"vgg11_bn": [224, 96], "vgg16": [224]}
IMAGES = 2


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


def main():
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
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


if __name__ == "__main__":
    main()
