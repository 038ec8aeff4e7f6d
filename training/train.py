"""The training run: data in memory, Adam on the negative ELBO, annealed temperature, a new store version.

    python -m training --epochs 40 --data-dir ../shared/data
"""

from __future__ import annotations

import json
import logging
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import safetensors
import torch
import torch.nn.functional as F
import torchvision
from tqdm.auto import tqdm

from model_store.model import GumbelVAE, VAEConfig, kl_to_uniform
from model_store.registry import ModelStore, VersionDraft

from .checkpoint import OPTIMIZER_FILE, load_optimizer_state, optimizer_tensors
from .config import TrainConfig
from .data import InMemoryBatches, binarize_fixed, load_mnist_uint8, to_unit_interval
from .evaluate import iw_nll, negative_elbo
from .record import plot_curves, save_epoch_grids

log = logging.getLogger(__name__)

TRAINING_STATE_FILE = "training_state.json"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but CUDA is not available; use --device auto or cpu")
    return device


def negative_elbo_loss(model: GumbelVAE, x: torch.Tensor, temperature: float, hard: bool,
                       generator: torch.Generator) -> torch.Tensor:
    """Batch mean of Bernoulli NLL (summed over pixels) + KL(q(z|x) || uniform), with a relaxed/ST sample."""
    recon_logits, logits = model(x, temperature, hard=hard, generator=generator)
    nll = F.binary_cross_entropy_with_logits(recon_logits.float(), x, reduction="sum") / x.shape[0]
    return nll + kl_to_uniform(logits).mean()


def train_one_epoch(model: GumbelVAE, optimizer: torch.optim.Optimizer, batches: InMemoryBatches,
                    config: TrainConfig, step: int, noise_gen: torch.Generator, total_steps: int,
                    run_start_step: int = 0, desc: str = "epoch", progress: bool = False,
                    ) -> tuple[int, float, float, float]:
    """One pass over the in-memory batches; returns (global step, mean loss, last temperature, last lr)."""
    model.train()
    loss_sum = torch.zeros((), device=next(model.parameters()).device)
    temperature, lr = config.temperature_at(step), config.lr
    for x in tqdm(batches, desc=desc, leave=False, disable=not progress, mininterval=1.0):
        temperature = config.temperature_at(step)
        lr = config.lr_at(step - run_start_step, total_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = negative_elbo_loss(model, x, temperature, config.hard, noise_gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach()
        step += 1
    return step, loss_sum.item() / len(batches), temperature, lr


def train(config: TrainConfig, store: ModelStore, model_config: VAEConfig | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Trains, evaluates and registers a new version; returns its metadata."""
    config.validate()
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    log.info("training on %s", device)

    parent: dict[str, Any] | None = None
    if config.resume:
        model, parent = store.load_model(config.model_name, config.resume, device=device)
    else:
        model = GumbelVAE(model_config or VAEConfig()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    step, first_epoch, history = 0, 1, []
    if parent is not None:
        step, first_epoch, history = _restore(store, config, parent, optimizer)

    dynamic = config.binarization == "dynamic"
    train_x = to_unit_interval(load_mnist_uint8(config.data_dir, train=True, download=config.download), device,
                               config.train_limit)
    test_x = to_unit_interval(load_mnist_uint8(config.data_dir, train=False, download=config.download), device,
                              config.test_limit)
    if dynamic:
        test_x = binarize_fixed(test_x)
    batches = InMemoryBatches(train_x, config.batch_size, dynamic=dynamic, seed=config.seed + step)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 2 + step)
    total_steps = config.epochs * len(batches)
    run_start_step = step

    with store.register(config.model_name) as draft:
        grids = draft.path / "record" / "grids"
        last_epoch = first_epoch + config.epochs - 1
        for epoch in tqdm(range(first_epoch, last_epoch + 1), desc="epochs", disable=not progress):
            started = time.perf_counter()
            step, train_loss, temperature, lr = train_one_epoch(
                model, optimizer, batches, config, step, noise_gen, total_steps, run_start_step,
                desc=f"epoch {epoch}", progress=progress)
            train_seconds = time.perf_counter() - started
            model.eval()
            row: dict[str, Any] = {"epoch": epoch, "step": step, "train_loss": train_loss,
                                   "test_neg_elbo": negative_elbo(model, test_x), "temperature": temperature,
                                   "lr": lr, "seconds": round(train_seconds, 3)}
            if config.eval_k_epoch:
                row["test_iw_nll"] = iw_nll(model, test_x, config.eval_k_epoch)
            history.append(row)
            log.info("epoch %d: loss %.2f, test -ELBO %.2f, tau %.3f, lr %.2e, %.1fs", epoch, row["train_loss"],
                     row["test_neg_elbo"], temperature, lr, train_seconds)
            if epoch % config.grid_every == 0 or epoch == last_epoch:
                save_epoch_grids(model, test_x, temperature, grids, epoch)

        model.eval()
        metrics = {"test_neg_elbo": negative_elbo(model, test_x, progress=progress),
                   "test_iw_nll": iw_nll(model, test_x, config.eval_k, progress=progress),
                   "iw_k": config.eval_k, "test_images": int(test_x.shape[0]),
                   "train_images": int(train_x.shape[0]), "epochs_total": last_epoch, "steps_total": step,
                   "final_temperature": config.temperature_at(step),
                   "train_seconds": round(sum(h["seconds"] for h in history[-config.epochs:]), 1)}
        log.info("final: test -ELBO %.2f, IW-NLL(k=%d) %.2f", metrics["test_neg_elbo"], config.eval_k,
                 metrics["test_iw_nll"])
        _write_version(draft, model, optimizer, config, metrics, history, step, last_epoch, parent)
    return draft.metadata


def _restore(store: ModelStore, config: TrainConfig, parent: dict[str, Any],
             optimizer: torch.optim.Optimizer) -> tuple[int, int, list[dict[str, Any]]]:
    version = parent["version"]
    state = store.metadata(config.model_name, version).get("training_state") or {}
    if OPTIMIZER_FILE in parent.get("files", {}):
        tensors = store.load_tensors(config.model_name, version, OPTIMIZER_FILE)
        load_optimizer_state(optimizer, tensors, state["optimizer_param_groups"])
    else:
        log.warning("version %s has no optimizer state; resuming with a fresh Adam", version)
    metrics_path = store.version_dir(config.model_name, version) / "record" / "metrics.json"
    history = json.loads(metrics_path.read_text()) if metrics_path.exists() else []
    log.info("resuming from version %s at step %d, epoch %d", version, state.get("step", 0), state.get("epoch", 0))
    return int(state.get("step", 0)), int(state.get("epoch", 0)) + 1, list(history)


def _write_version(draft: VersionDraft, model: GumbelVAE, optimizer: torch.optim.Optimizer, config: TrainConfig,
                   metrics: dict[str, Any], history: list[dict[str, Any]], step: int, epoch: int,
                   parent: dict[str, Any] | None) -> None:
    draft.save_weights(model)
    state: dict[str, Any] = {"step": step, "epoch": epoch, "temperature": config.temperature_at(step)}
    if config.save_optimizer:
        tensors, groups = optimizer_tensors(optimizer)
        draft.save_tensors(OPTIMIZER_FILE, tensors)
        state["optimizer_param_groups"] = groups
    draft.save_json("record/metrics.json", history)
    draft.save_json("record/config.json", {"model": model.config.to_dict(), "training": config.to_dict()})
    plot_curves(history, draft.file("record/loss_curve.png"))
    draft.metadata.update(
        training_config=config.to_dict(),
        metrics=metrics,
        training_state=state,
        dataset={"name": "MNIST", "binarization": config.binarization,
                 "test_binarization": "fixed-seed Bernoulli" if config.binarization == "dynamic" else "none",
                 "train_images": metrics["train_images"], "test_images": metrics["test_images"]},
        framework={"python": platform.python_version(), "torch": torch.__version__,
                   "torchvision": torchvision.__version__, "safetensors": safetensors.__version__},
        git_commit=_git_commit(),
        parent_version=parent["version"] if parent else None,
        tags=dict(t.split("=", 1) for t in config.tags),
        description=config.description,
    )


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None
