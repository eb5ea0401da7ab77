#!/usr/bin/python3
"""Reference values for tests/test_finetune.cpp, from Debian's python3-torch and torchvision. Usage:

    /usr/bin/python3 tests/finetune_reference.py OUT_DIR

Writes into OUT_DIR:
  vgg11_bn-plain.safetensors   a torchvision vgg11_bn state_dict (classifier 64 wide, 10 classes) saved
                               as safetensors.torch.save_file saves it: num_batches_tracked as I64
  vgg11_bn-plain-logits.safetensors  "images" and the model's evaluation-mode "logits"
  vgg16-features.safetensors   torchvision vgg16().features with random weights, "features.N.*"
  perceptual.safetensors       "x1", "x2", the perceptual loss (MSE summed over relu1_2, relu2_2,
                               relu3_3, relu4_3) and its gradient with respect to x1, by autograd
  optimizers.safetensors       a small network's initial parameters, 20 steps of gradients, and for
                               each optimiser and schedule the learning rates and the final parameters,
                               gradients clipped to a global norm of 5 before each step
Exits with 77 (ctest's skip) when torch or torchvision is missing.
"""
import sys
import warnings

import reference_common  # noqa: F401  (first: exits 77 without torch)
import torch
from torchvision import models

from pytorch_interop import make_folder_once, save_state_dict, write_safetensors
from reference_common import small_classifier, trained_statistics

# SequentialLR steps its schedules with an epoch argument, which torch 1.13 warns about.
warnings.filterwarnings("ignore", message="The epoch parameter")

SIZE = 32
TAPS = [3, 8, 15, 22]  # relu1_2, relu2_2, relu3_3, relu4_3
STEPS = 20
MAX_NORM = 5.0


def plain_vgg11_bn(out):
    torch.manual_seed(11)
    model = trained_statistics(small_classifier(models.vgg11_bn(weights=None)), SIZE, batches=3, batch_size=4)
    model.eval()
    save_state_dict(out / "vgg11_bn-plain.safetensors", model.state_dict())
    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        logits = model(images)
    write_safetensors(out / "vgg11_bn-plain-logits.safetensors", {"images": images, "logits": logits}, {})


def perceptual(out):
    torch.manual_seed(16)
    features = models.vgg16(weights=None).features.eval()
    write_safetensors(out / "vgg16-features.safetensors",
                      {f"features.{k}": v for k, v in features.state_dict().items()}, {})
    generator = torch.Generator().manual_seed(7)
    x1 = torch.rand(2, 3, SIZE, SIZE, generator=generator).requires_grad_(True)
    x2 = torch.rand(2, 3, SIZE, SIZE, generator=generator)
    for p in features.parameters():
        p.requires_grad_(False)

    def taps(x):
        found = []
        for index, layer in enumerate(features):
            x = layer(x)
            if index in TAPS:
                found.append(x)
            if index == TAPS[-1]:
                return found

    loss = sum(torch.nn.functional.mse_loss(a, b) for a, b in zip(taps(x1), taps(x2)))
    loss.backward()
    write_safetensors(out / "perceptual.safetensors",
                      {"x1": x1.detach(), "x2": x2, "loss": loss.detach().reshape(1), "grad": x1.grad}, {})


OPTIMISERS = {
    "sgd_nesterov": lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9, weight_decay=1e-3, nesterov=True),
    "adam": lambda params: torch.optim.Adam(params, lr=0.01, weight_decay=0.01, foreach=False),
    "adamw": lambda params: torch.optim.AdamW(params, lr=0.01, weight_decay=0.05, foreach=False),
}
SCHEDULES = {
    "step": lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=5, gamma=0.5),
    "multistep": lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[3, 8, 15], gamma=0.3),
    "cosine": lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS, eta_min=1e-4),
    "warmup_cosine": lambda o: torch.optim.lr_scheduler.SequentialLR(
        o, [torch.optim.lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=4),
            torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=STEPS - 4)], milestones=[4]),
}


def optimisers(out):
    # The network Sequential<shape<6>, Linear<6, 5>, ReLU, Linear<5, 3>> names its parameters so.
    shapes = {"0.weight": (5, 6), "0.bias": (5,), "2.weight": (3, 5), "2.bias": (3,)}
    generator = torch.Generator().manual_seed(3)
    initial = {name: torch.randn(shape, generator=generator) for name, shape in shapes.items()}
    gradients = [{name: 3 * torch.randn(shape, generator=generator) for name, shape in shapes.items()}
                 for _ in range(STEPS)]
    tensors = {f"initial.{name}": t for name, t in initial.items()}
    for step, grads in enumerate(gradients):
        tensors.update({f"grad.{step}.{name}": g for name, g in grads.items()})
    for opt_name, make_optimiser in OPTIMISERS.items():
        for schedule_name, make_schedule in SCHEDULES.items():
            params = {name: torch.nn.Parameter(t.clone()) for name, t in initial.items()}
            optimiser = make_optimiser(list(params.values()))
            schedule = make_schedule(optimiser)
            rates = []
            for grads in gradients:
                for name, p in params.items():
                    p.grad = grads[name].clone()
                torch.nn.utils.clip_grad_norm_(list(params.values()), MAX_NORM)
                rates.append(optimiser.param_groups[0]["lr"])
                optimiser.step()
                schedule.step()
            key = f"{opt_name}.{schedule_name}"
            tensors[f"{key}.lr"] = torch.tensor(rates, dtype=torch.float64).float()
            tensors.update({f"{key}.final.{name}": p.detach() for name, p in params.items()})
    write_safetensors(out / "optimizers.safetensors", tensors, {})


def make(out):
    plain_vgg11_bn(out)
    perceptual(out)
    optimisers(out)


if __name__ == "__main__":
    make_folder_once(sys.argv[1], make)
