"""Training speed: the project's epoch against the bare-step floor and an original-example-style loop.

    python bench/train_speed.py --data-dir ../shared/data [--rounds 3] [--device auto] [--out bench/results]

All three run in one process, interleaved round by round at batch size 100 over the full 60k training set, so
a noisy shared machine slows them alike; the table reports the median seconds per epoch of each:

- project:   training.train.train_one_epoch (in-memory tensor batches, dynamic binarization, annealed tau)
- floor:     the same number of bare forward+backward+Adam steps on pre-loaded, pre-binarized tensors
- reference: torchvision MNIST + ToTensor through a DataLoader (batch 100, shuffled), the loop of the
             original PyTorch Gumbel-Softmax VAE example
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from model_store.model import GumbelVAE, VAEConfig  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.data import InMemoryBatches, load_mnist_uint8, to_unit_interval  # noqa: E402
from training.train import make_optimizer, negative_elbo_loss, resolve_device, train_one_epoch  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_project(train_x: torch.Tensor, device: torch.device) -> float:
    config = TrainConfig(batch_size=100)
    model = GumbelVAE(VAEConfig()).to(device)
    optimizer = make_optimizer(model, config.lr)
    batches = InMemoryBatches(train_x, config.batch_size, dynamic=True, seed=0)
    gen = torch.Generator(device=device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    train_one_epoch(model, optimizer, batches, config, 0, gen, len(batches))
    sync(device)
    return time.perf_counter() - start


def time_floor(train_x: torch.Tensor, device: torch.device, steps: int) -> float:
    model = GumbelVAE(VAEConfig()).to(device)
    optimizer = make_optimizer(model, 1e-3)
    batch = torch.bernoulli(train_x[:100])
    gen = torch.Generator(device=device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss = negative_elbo_loss(model, batch, 1.0, False, gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def time_reference(data_dir: str, device: torch.device) -> float:
    """The original example's loop: per-sample PIL -> ToTensor through a DataLoader, grayscale targets."""
    from torchvision import datasets, transforms

    loader = torch.utils.data.DataLoader(
        datasets.MNIST(data_dir, train=True, download=False, transform=transforms.ToTensor()),
        batch_size=100, shuffle=True)
    model = GumbelVAE(VAEConfig()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator(device=device).manual_seed(0)
    sync(device)
    start = time.perf_counter()
    for data, _ in loader:
        x = data.to(device).view(-1, 784)
        loss = negative_elbo_loss(model, x, 1.0, False, gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    sync(device)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="~/.cache/gvae-serve/data")
    parser.add_argument("--rounds", type=int, default=3, help="epochs of each variant, interleaved")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="bench/results", help="folder for train_speed.json")
    args = parser.parse_args()
    device = resolve_device(args.device)
    data_dir = str(Path(args.data_dir).expanduser())
    train_x = to_unit_interval(load_mnist_uint8(data_dir, train=True, download=False), device)
    steps = -(-train_x.shape[0] // 100)
    times: dict[str, list[float]] = {"project": [], "floor": [], "reference": []}
    time_floor(train_x, device, 20)  # warm-up (allocator, kernels)
    for r in range(args.rounds):
        times["project"].append(time_project(train_x, device))
        times["floor"].append(time_floor(train_x, device, steps))
        times["reference"].append(time_reference(data_dir, device))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in times.items()), flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "device": str(device), "machine": platform.processor() or platform.machine(),
        "cpu_threads": torch.get_num_threads(), "torch": torch.__version__, "batch_size": 100,
        "steps_per_epoch": steps, "rounds": args.rounds, "seconds": times, "median_seconds": median,
        "project_over_floor": median["project"] / median["floor"],
        "reference_over_project": median["reference"] / median["project"],
    }
    if device.type == "cuda":
        result["gpu"] = torch.cuda.get_device_name(device)
    print(f"\n| loop ({device}, batch 100, {steps} steps) | median s/epoch | vs floor |")
    print("|---|---|---|")
    for k in ("floor", "project", "reference"):
        print(f"| {k} | {median[k]:.2f} | {median[k] / median['floor']:.2f}x |")
    print(f"\nproject / floor = {result['project_over_floor']:.3f} (target <= 1.2); "
          f"reference / project = {result['reference_over_project']:.2f} (target >= 1.7)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"train_speed_{device.type}.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
