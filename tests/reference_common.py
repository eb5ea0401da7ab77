"""Imported first by the reference scripts of tests/: exits with 77 (ctest's skip) when Debian's
python3-torch or python3-torchvision is missing, puts tools/ (pytorch_interop, seed_model) on the
import path, and holds the models the scripts share."""
import pathlib
import sys

try:
    import torch  # noqa: F401
    import torchvision  # noqa: F401
    from PIL import Image  # noqa: F401
except ImportError as e:
    print(f"SKIPPED: torch or torchvision is not installed for /usr/bin/python3 ({e}); "
          "bash scripts/install-deps.sh reference installs them")
    sys.exit(77)

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))


def small_classifier(model, hidden=64, classes=10):
    """A torchvision VGG with a narrow classifier: Linear(512*7*7, hidden), ..., Linear(hidden, classes)."""
    model.classifier = torch.nn.Sequential(torch.nn.Linear(512 * 7 * 7, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
                                           torch.nn.Linear(hidden, hidden), torch.nn.ReLU(True), torch.nn.Dropout(),
                                           torch.nn.Linear(hidden, classes))
    return model


def trained_statistics(model, size, batches, batch_size):
    """Batch norm's scales and shifts away from 1 and 0, and running statistics and counters as
    `batches` training batches of random size x size images leave them."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
        model.train()
        for _ in range(batches):
            model.features(torch.randn(batch_size, 3, size, size))
    return model
