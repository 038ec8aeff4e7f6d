"""Training options as one dataclass: argparse is generated from it and `asdict` is saved with the version."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

Binarization = Literal["dynamic", "none"]
LrSchedule = Literal["constant", "cosine"]
Amp = Literal["none", "bf16"]


@dataclass
class TrainConfig:
    model_name: str = "gvae"  # name of the model in the store
    epochs: int = 10  # epochs to train (on --resume: further epochs)
    batch_size: int = 100  # examples per optimizer step, over all ranks (each of N ranks takes batch_size / N)
    lr: float = 1e-3  # Adam learning rate (peak)
    lr_schedule: LrSchedule = "constant"  # constant, or cosine decay to lr*lr_min_ratio over this run
    lr_min_ratio: float = 0.1  # final lr as a fraction of lr, for the cosine schedule
    tau0: float = 1.0  # initial Gumbel-Softmax temperature
    tau_min: float = 0.5  # temperature floor
    anneal_rate: float = 3e-5  # tau = max(tau_min, tau0 * exp(-anneal_rate * step))
    anneal_every: int = 1000  # ... evaluated every this many global steps
    hard: bool = False  # straight-through: one-hot forward, relaxed gradient
    binarization: Binarization = "dynamic"  # resample Bernoulli pixels per batch, or keep grayscale targets
    seed: int = 1  # seeds shuffling, binarization and Gumbel noise
    device: str = "auto"  # auto (CUDA when present), cpu, cuda, cuda:N (under torchrun: cuda:LOCAL_RANK)
    amp: Amp = "none"  # bf16: autocast the forward pass to bfloat16 (CUDA only); the loss stays fp32
    compile: bool = False  # torch.compile the encoder and decoder (worth it on GPU; compiling takes a while)
    data_dir: str = "~/.cache/gvae-serve/data"  # torchvision MNIST root (downloaded there if missing)
    download: bool = True  # let torchvision download MNIST when it is not under data_dir
    train_limit: int = 0  # use only the first N training images (0 = all 60000)
    test_limit: int = 0  # evaluate on the first N test images (0 = all 10000)
    eval_k: int = 1000  # importance samples for the final IW-NLL bound (Burda et al. 2016)
    eval_k_epoch: int = 0  # importance samples for a per-epoch IW-NLL (0 = skip; -ELBO is always reported)
    grid_every: int = 1  # save reconstruction/sample grids every N epochs (and always at the last)
    tensorboard: bool = True  # also write TensorBoard events into record/tensorboard (when tensorboard is installed)
    log_every: int = 50  # TensorBoard per-step scalars every N optimizer steps
    save_optimizer: bool = True  # store Adam state so --resume continues exactly
    resume: str = ""  # version number or alias to continue from (same model name)
    description: str = ""  # free text stored with the version
    tags: list[str] = field(default_factory=list)  # key=value pairs stored with the version

    def validate(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append("epochs must be >= 1")
        if self.batch_size < 1:
            problems.append("batch_size must be >= 1")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append("lr must be positive")
        if not 0 < self.lr_min_ratio <= 1:
            problems.append("lr_min_ratio must be in (0, 1]")
        if not 0 < self.tau_min <= self.tau0:
            problems.append("need 0 < tau_min <= tau0")
        if self.anneal_rate < 0 or self.anneal_every < 1:
            problems.append("anneal_rate must be >= 0 and anneal_every >= 1")
        if self.eval_k < 1 or self.eval_k_epoch < 0:
            problems.append("eval_k must be >= 1 and eval_k_epoch >= 0")
        if self.train_limit < 0 or self.test_limit < 0:
            problems.append("train_limit and test_limit must be >= 0")
        if self.grid_every < 1 or self.log_every < 1:
            problems.append("grid_every and log_every must be >= 1")
        if self.amp not in get_args(Amp):
            problems.append(f"amp must be one of {get_args(Amp)}")
        for tag in self.tags:
            if "=" not in tag:
                problems.append(f"tag {tag!r} must look like key=value")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))

    def temperature_at(self, step: int) -> float:
        """tau = max(tau_min, tau0 * exp(-r * step)), with step rounded down to a multiple of anneal_every."""
        held = (step // self.anneal_every) * self.anneal_every
        return max(self.tau_min, self.tau0 * math.exp(-self.anneal_rate * held))

    def lr_at(self, step: int, total_steps: int) -> float:
        if self.lr_schedule == "constant" or total_steps <= 1:
            return self.lr
        progress = min(1.0, step / (total_steps - 1))
        low = self.lr * self.lr_min_ratio
        return low + 0.5 * (self.lr - low) * (1 + math.cos(math.pi * progress))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
