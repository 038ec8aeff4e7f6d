"""MNIST as whole tensors on the training device (no per-sample PIL transforms in the training loop)."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

log = logging.getLogger(__name__)

TEST_BINARIZATION_SEED = 20170101  # the evaluation set is binarized once with this seed, for every version


class DataNotFound(RuntimeError):
    pass


def load_mnist_uint8(data_dir: str | Path, *, train: bool, download: bool) -> torch.Tensor:
    """(N, 28, 28) uint8 images via torchvision (which downloads them when allowed and missing)."""
    from torchvision.datasets import MNIST  # the only place that imports torchvision datasets

    root = Path(data_dir).expanduser()
    try:
        dataset = MNIST(root=str(root), train=train, download=download)
    except RuntimeError as exc:
        raise DataNotFound(
            f"MNIST not found under {root} ({exc}). Pass --data-dir pointing at a folder that holds "
            f"MNIST/raw/*-ubyte, or allow the download (drop --no-download) on a machine with internet."
        ) from exc
    return dataset.data


def to_unit_interval(images: torch.Tensor, device: torch.device, limit: int = 0) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 784) in [0, 1] on `device`."""
    if limit:
        images = images[:limit]
    return images.to(device).reshape(images.shape[0], -1).float().div_(255.0)


def binarize_fixed(images: torch.Tensor, seed: int = TEST_BINARIZATION_SEED) -> torch.Tensor:
    """Bernoulli-binarize once with a fixed seed, so evaluation numbers are comparable across versions."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    return torch.bernoulli(images.cpu(), generator=gen).to(images.device)


class InMemoryBatches:
    """Shuffled mini-batches drawn from one device tensor; `dynamic` binarization resamples every batch."""

    def __init__(self, images: torch.Tensor, batch_size: int, *, dynamic: bool, seed: int) -> None:
        self.images = images
        self.batch_size = batch_size
        self.dynamic = dynamic
        self.shuffle_gen = torch.Generator(device="cpu").manual_seed(seed)
        self.pixel_gen = torch.Generator(device=images.device).manual_seed(seed + 1)

    def __len__(self) -> int:
        return -(-self.images.shape[0] // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.images.shape[0], generator=self.shuffle_gen).to(self.images.device)
        for start in range(0, order.shape[0], self.batch_size):
            batch = self.images.index_select(0, order[start:start + self.batch_size])  # (B, 784)
            if self.dynamic:
                batch = torch.bernoulli(batch, generator=self.pixel_gen)
            yield batch
