"""The training record: per-epoch metrics, image grids and a loss-curve plot, written into a version draft."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image

from model_store.model import GumbelVAE

GRID_SEED = 7  # the same prior latents every epoch, so the sample grids are comparable


@torch.inference_mode()
def save_epoch_grids(model: GumbelVAE, test_x: torch.Tensor, temperature: float, folder: Path,
                     epoch: int) -> dict[str, torch.Tensor]:
    """record/grids/epoch_NNN_reconstruction.png (8 test digits over their reconstructions) and _samples.png (64).

    Returns the two grids as (3, H, W) CPU tensors in [0, 1] (for TensorBoard), keyed reconstruction/samples.
    """
    folder.mkdir(parents=True, exist_ok=True)
    cfg = model.config
    gen = torch.Generator(device=test_x.device).manual_seed(GRID_SEED)
    inputs = test_x[:8].view(-1, 1, cfg.image_height, cfg.image_width)
    recon = model.reconstruct(inputs, temperature, hard=True, generator=gen)
    samples = model.sample(64, temperature, hard=True, generator=gen)
    grids = {"reconstruction": make_grid(torch.cat([inputs, recon]).float().cpu(), nrow=8),
             "samples": make_grid(samples.float().cpu(), nrow=8)}
    for kind, grid in grids.items():
        save_image(grid, folder / f"epoch_{epoch:03d}_{kind}.png")
    return grids


def plot_curves(history: list[dict[str, Any]], path: Path) -> None:
    """Loss curves (train loss and test -ELBO per epoch, temperature on a second axis) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss (relaxed -ELBO)")
    ax.plot(epochs, [h["test_neg_elbo"] for h in history], label="test -ELBO (discrete)")
    if any("test_iw_nll" in h for h in history):
        ax.plot([h["epoch"] for h in history if "test_iw_nll" in h],
                [h["test_iw_nll"] for h in history if "test_iw_nll" in h], label="test IW-NLL")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats")
    ax.grid(alpha=0.3)
    tau_ax = ax.twinx()
    tau_ax.plot(epochs, [h["temperature"] for h in history], color="gray", linestyle="--", label="temperature")
    tau_ax.set_ylabel("temperature")
    lines = ax.get_legend_handles_labels()
    tau_lines = tau_ax.get_legend_handles_labels()
    ax.legend(lines[0] + tau_lines[0], lines[1] + tau_lines[1], loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
