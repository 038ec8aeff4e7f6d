"""On a CUDA machine: bf16 autocast and torch.compile train a NaN-free, loadable version close to fp32."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from model_store import ModelStore
from tests.conftest import FIXTURE_MNIST
from training.__main__ import main as train_cli

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]

ARGS = ["--data-dir", str(FIXTURE_MNIST), "--no-download", "--epochs", "3", "--batch-size", "20", "--lr", "3e-3",
        "--eval-k", "50", "--hidden-dims", "64", "32", "--device", "cuda", "--quiet", "--no-save-optimizer"]


def test_bf16_autocast_and_compile_train_a_finite_version_close_to_fp32(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    assert train_cli(["--store-root", root, *ARGS]) == 0
    assert train_cli(["--store-root", root, *ARGS, "--amp", "bf16", "--compile"]) == 0
    store = ModelStore(root)
    fp32, bf16 = store.metadata("gvae", 1)["metrics"], store.metadata("gvae", 2)["metrics"]
    _, meta = store.load_model("gvae", 2, device="cuda")
    assert meta["training_config"]["amp"] == "bf16" and meta["training_config"]["compile"] is True
    assert all(math.isfinite(v) for v in bf16.values() if isinstance(v, float))
    assert bf16["test_neg_elbo"] == pytest.approx(fp32["test_neg_elbo"], abs=10.0), "within seed noise of fp32"
