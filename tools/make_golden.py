#!/usr/bin/python3
"""Golden values from PyTorch for tests/test_pytorch_parity.cpp, written to
tests/data/pytorch_golden.json. Needs Debian's python3-torch; run with Debian's python:

    /usr/bin/python3 tools/make_golden.py

It builds the seed's network with the seed's own code (tools/seed_model.py holds the d2l
chapter's vgg_block and vgg, unchanged) at a small preset: 1x32x32 input, conv_arch divided by 4. Instead of
storing 17M weights, every weight and input is a pure function of its index (SplitMix64, which
vgg::mix64 also implements), so the C++ test rebuilds them exactly. The model runs in float64;
the fixture keeps the logits, the loss, and for every parameter the L2 norm of its gradient and
sampled entries of the gradient and of the weights after one SGD step (lr 0.05). It also records
the state_dict names and shapes of the real seed network at 224 (ratio 4) and of the full-width
network at 32 (ratio 1).
"""
import json
import pathlib

import torch
from torch import nn

from seed_model import CONV_ARCH as conv_arch, vgg

MASK = (1 << 64) - 1


def mix64(z):
    z = (z + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def mix2(a, b):
    return mix64(a ^ mix64(b))


def unit(bits):  # uniform in [0, 1) from the top 24 bits, as vgg::unit_float
    return (bits >> 40) * 2.0**-24


def patterned(key, count, bound):
    """bound * (2u - 1) for u = unit(mix2(key, i)), i < count: the C++ test computes the same."""
    return torch.tensor([bound * (2 * unit(mix2(key, i)) - 1) for i in range(count)], dtype=torch.float64)


OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data" / "pytorch_golden.json"
BATCH, SIZE, RATIO, LR, SAMPLES = 4, 32, 4, 0.05, 48


def main():
    small = [(n, c // RATIO) for n, c in conv_arch]
    net = vgg(small, spatial=SIZE // 32).double().eval()  # eval: dropout off, so the gradients are deterministic
    with torch.no_grad():
        for k, (name, p) in enumerate(net.state_dict().items()):
            bound = 0.05 if p.dim() > 1 else 0.1
            p.copy_(patterned(mix2(1234, k), p.numel(), bound).reshape(p.shape))
    x = ((patterned(99, BATCH * SIZE * SIZE, 1.0) + 1) / 2).reshape(BATCH, 1, SIZE, SIZE)
    labels = torch.tensor([3, 0, 9, 5])
    logits = net(x)
    loss = nn.functional.cross_entropy(logits, labels)
    loss.backward()
    optimiser = torch.optim.SGD(net.parameters(), lr=LR)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    optimiser.step()

    tensors = {}
    for k, (name, p) in enumerate(net.named_parameters()):
        n = p.numel()
        index = sorted({0, n - 1} | {mix2(777, k * 1000 + i) % n for i in range(SAMPLES)})
        grad, updated = p.grad.reshape(-1), p.detach().reshape(-1)
        tensors[name] = {
            "shape": list(p.shape),
            "grad_l2": grad.norm().item(),
            "index": index,
            "grad": [grad[i].item() for i in index],
            "updated": [updated[i].item() for i in index],
        }
        assert torch.allclose(updated, before[name].reshape(-1) - LR * grad)

    def names_and_shapes(model):
        return {name: list(t.shape) for name, t in model.state_dict().items()}

    golden = {
        "batch": BATCH, "size": SIZE, "ratio": RATIO, "lr": LR,
        "labels": labels.tolist(),
        "logits": logits.detach().tolist(),
        "loss": loss.item(),
        "tensors": tensors,
        "state_dict_seed_224_ratio_4": names_and_shapes(vgg([(n, c // 4) for n, c in conv_arch])),
        "state_dict_32_ratio_1": names_and_shapes(vgg(conv_arch, spatial=1)),
    }
    OUT.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {OUT}: loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
