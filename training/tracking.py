"""TensorBoard event files in a version's record, so `tensorboard --logdir model_store/store` compares versions.

    writer = TensorBoardLog(draft.path / "record" / "tensorboard", every=50)   # no-op without tensorboard
    writer.step(step, loss, temperature, lr); writer.epoch(row); writer.grids(epoch, grids)
    writer.hparams(config, metrics); writer.close()

tensorboard is an optional dependency (`pip install gvae-serve[train]`): without it every method is a no-op and
only the JSON/PNG record is written.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

TENSORBOARD_DIR = "record/tensorboard"
EPOCH_SCALARS = ("train_loss", "test_neg_elbo", "test_iw_nll", "temperature", "lr", "seconds")


def tensorboard_available() -> bool:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        return False
    return True


class TensorBoardLog:
    """Scalars per step (every `every` steps) and per epoch, image grids and hparams, when enabled."""

    def __init__(self, folder: Path | None, *, every: int = 50) -> None:
        self.every = every
        self.writer = None
        if folder is None:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log.info("tensorboard is not installed: writing the JSON/PNG record only (pip install tensorboard)")
            return
        self.writer = SummaryWriter(log_dir=str(folder))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def step(self, step: int, loss: torch.Tensor, temperature: float, lr: float) -> None:
        """Called after every optimizer step; writes the (rank-0) batch loss, tau and lr every `every` steps."""
        if self.writer is None or step % self.every:
            return
        self.writer.add_scalar("step/loss", loss.item(), step)
        self.writer.add_scalar("step/temperature", temperature, step)
        self.writer.add_scalar("step/lr", lr, step)

    def epoch(self, row: dict[str, Any]) -> None:
        """One row of record/metrics.json as epoch/<metric> scalars at x = epoch."""
        if self.writer is None:
            return
        for key in EPOCH_SCALARS:
            if key in row:
                self.writer.add_scalar(f"epoch/{key}", row[key], row["epoch"])

    def grids(self, epoch: int, grids: dict[str, torch.Tensor]) -> None:
        """The reconstruction/sample grids, (3, H, W) in [0, 1], as images/<kind> at x = epoch."""
        if self.writer is None:
            return
        for kind, grid in grids.items():
            self.writer.add_image(f"images/{kind}", grid, epoch)

    def hparams(self, config: dict[str, Any], metrics: dict[str, Any]) -> None:
        """The resolved config (flattened, non-scalars as text) against the final metrics, in this same run."""
        if self.writer is None:
            return
        flat = {k: (v if isinstance(v, bool | int | float | str) else str(v)) for k, v in config.items()}
        final = {f"final/{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self.writer.add_hparams(flat, final, run_name=".", global_step=metrics.get("epochs_total"))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
