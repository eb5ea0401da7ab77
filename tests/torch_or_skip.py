"""Imported first by the reference scripts of tests/: exits with 77 (ctest's skip) when Debian's
python3-torch or python3-torchvision is missing, and puts tools/ (pytorch_interop, seed_model) on
the import path."""
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
