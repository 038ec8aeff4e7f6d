"""Training on a small real MNIST fixture: the loss falls, the CLI registers a loadable version, resume continues."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from model_store import ModelStore
from model_store.model import GumbelVAE, VAEConfig
from training.__main__ import main as train_cli
from training.config import TrainConfig
from training.data import InMemoryBatches, binarize_fixed, load_mnist_uint8, to_unit_interval
from training.tracking import tensorboard_available
from training.train import negative_elbo_loss

TINY_ARGS = ["--epochs", "2", "--batch-size", "100", "--eval-k", "5", "--hidden-dims", "64", "32", "--quiet",
             "--no-download"]


def test_temperature_schedule_follows_the_global_step() -> None:
    config = TrainConfig(tau0=1.0, tau_min=0.5, anneal_rate=3e-5, anneal_every=1000)
    assert config.temperature_at(0) == 1.0
    assert config.temperature_at(999) == 1.0, "held constant between updates"
    assert config.temperature_at(1000) == pytest.approx(math.exp(-0.03))
    assert config.temperature_at(10**6) == 0.5, "never below tau_min"


def test_cosine_lr_decays_to_the_floor() -> None:
    config = TrainConfig(lr=1e-3, lr_schedule="cosine", lr_min_ratio=0.1)
    assert config.lr_at(0, 100) == pytest.approx(1e-3)
    assert config.lr_at(99, 100) == pytest.approx(1e-4)
    assert TrainConfig(lr=1e-3).lr_at(50, 100) == 1e-3


def test_invalid_configs_are_refused_with_reasons() -> None:
    with pytest.raises(ValueError, match="tau_min"):
        TrainConfig(tau_min=2.0).validate()
    with pytest.raises(ValueError, match="epochs"):
        TrainConfig(epochs=0).validate()


def test_batches_cover_the_data_and_dynamic_binarization_resamples(mnist_dir: Path) -> None:
    images = to_unit_interval(load_mnist_uint8(mnist_dir, train=True, download=False), torch.device("cpu"))
    assert images.shape == (600, 784) and images.min() >= 0 and images.max() <= 1
    batches = InMemoryBatches(images, 128, dynamic=True, seed=0)
    drawn = list(batches)
    assert len(drawn) == len(batches) == 5 and sum(len(b) for b in drawn) == 600
    assert set(drawn[0].unique().tolist()) == {0.0, 1.0}
    first, again = next(iter(batches)), next(iter(batches))
    assert not torch.equal(first, again)


def test_test_set_binarization_is_fixed(mnist_dir: Path) -> None:
    images = to_unit_interval(load_mnist_uint8(mnist_dir, train=False, download=False), torch.device("cpu"))
    assert torch.equal(binarize_fixed(images), binarize_fixed(images))


def test_a_few_steps_on_real_digits_reduce_the_loss(mnist_dir: Path) -> None:
    torch.manual_seed(0)
    images = to_unit_interval(load_mnist_uint8(mnist_dir, train=True, download=False), torch.device("cpu"))
    fixed = binarize_fixed(images[:200])
    model = GumbelVAE(VAEConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)

    def eval_loss() -> float:
        with torch.no_grad():
            return negative_elbo_loss(model, fixed, 1.0, False, torch.Generator().manual_seed(1)).item()

    before = eval_loss()
    for _ in range(3):
        for x in InMemoryBatches(images, 100, dynamic=True, seed=0):
            loss = negative_elbo_loss(model, x, 1.0, False, gen)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    after = eval_loss()
    assert after < before - 100, f"loss {before:.1f} -> {after:.1f}"


def test_cli_trains_a_loadable_version_with_its_record_and_resumes_it(tmp_path: Path, mnist_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "store"
    args = ["--store-root", str(root), "--data-dir", str(mnist_dir), *TINY_ARGS]
    assert train_cli([*args, "--tags", "purpose=test", "--description", "fixture run"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["version"] == 1
    store = ModelStore(root)
    model, meta = store.load_model("gvae", 1)
    assert model.config.hidden_dims == (64, 32)
    assert meta["metrics"]["iw_k"] == 5 and meta["metrics"]["test_images"] == 100
    assert meta["metrics"]["test_iw_nll"] <= meta["metrics"]["test_neg_elbo"] + 1.0
    assert meta["training_config"]["epochs"] == 2 and meta["tags"] == {"purpose": "test"}
    assert meta["dataset"]["binarization"] == "dynamic" and meta["framework"]["torch"] == torch.__version__
    files = set(meta["files"])
    assert {"weights.safetensors", "optimizer.safetensors", "record/metrics.json", "record/loss_curve.png",
            "record/config.json", "record/grids/epoch_002_samples.png",
            "record/grids/epoch_002_reconstruction.png"} <= files
    history = json.loads((store.version_dir("gvae", 1) / "record" / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"train_loss", "test_neg_elbo", "temperature", "lr", "seconds"} <= set(history[0])

    assert any(f.startswith("record/tensorboard/") for f in files) or not tensorboard_available()

    assert train_cli([*args, "--resume", "latest", "--epochs", "1", "--anneal-every", "1", "--no-tensorboard"]) == 0
    meta2 = store.verify("gvae", 2)
    assert not any(f.startswith("record/tensorboard/") for f in meta2["files"]), "--no-tensorboard: no events"
    assert meta2["parent_version"] == 1
    assert meta2["training_state"]["step"] == meta["training_state"]["step"] + 6
    assert meta2["training_state"]["epoch"] == 3
    history2 = json.loads((store.version_dir("gvae", 2) / "record" / "metrics.json").read_text())
    assert [h["epoch"] for h in history2] == [1, 2, 3]
    assert history2[-1]["temperature"] < 1.0, "temperature continues from the global step, it does not reset"


def test_cli_reports_missing_data_and_bad_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--store-root", str(tmp_path / "s"), "--data-dir", str(tmp_path / "nothing"), "--no-download", "--quiet"]
    assert train_cli(args) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert train_cli([*args, "--tau-min", "5"]) == 2
    assert "tau_min" in capsys.readouterr().err
    versions = tmp_path / "s" / "gvae" / "versions"
    assert not versions.exists() or not any(versions.iterdir())


def test_resume_of_a_missing_version_is_a_clear_error(tmp_path: Path, mnist_dir: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--store-root", str(tmp_path / "s"), "--data-dir", str(mnist_dir), *TINY_ARGS, "--resume", "4"]
    assert train_cli(args) == 2
    assert "no versions" in capsys.readouterr().err
