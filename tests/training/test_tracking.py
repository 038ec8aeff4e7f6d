"""TensorBoard events are part of the version (hashed, listed in its metadata); without tensorboard installed the
JSON/PNG record is written all the same."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pytest

from model_store import ModelStore
from tests.conftest import FIXTURE_MNIST
from training.__main__ import main as train_cli
from training.tracking import TensorBoardLog

TINY_ARGS = ["--data-dir", str(FIXTURE_MNIST), "--no-download", "--epochs", "2", "--batch-size", "100", "--eval-k", "5",
             "--hidden-dims", "64", "32", "--quiet", "--no-save-optimizer", "--device", "cpu"]
RECORD = {"record/metrics.json", "record/config.json", "record/loss_curve.png",
          "record/grids/epoch_002_samples.png", "record/grids/epoch_002_reconstruction.png"}


def test_tensorboard_events_hold_step_and_epoch_scalars_grids_and_hparams(tmp_path: Path) -> None:
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tensorboard.plugins.hparams import plugin_data_pb2
    root = tmp_path / "store"
    assert train_cli(["--store-root", str(root), *TINY_ARGS, "--log-every", "4", "--grid-every", "1"]) == 0
    store = ModelStore(root)
    meta = store.verify("gvae", 1)
    events = [f for f in meta["files"] if f.startswith("record/tensorboard/events.out.tfevents.")]
    assert events, "event files are hashed with the version"
    assert set(meta["files"]) >= RECORD

    acc = event_accumulator.EventAccumulator(str(store.version_dir("gvae", 1) / "record" / "tensorboard"),
                                             size_guidance={event_accumulator.SCALARS: 0,
                                                            event_accumulator.IMAGES: 0})
    acc.Reload()
    tags = acc.Tags()
    assert [e.step for e in acc.Scalars("step/loss")] == [4, 8, 12], "6 steps per epoch, every 4th logged"
    assert {"step/temperature", "step/lr", "epoch/train_loss", "epoch/test_neg_elbo"} <= set(tags["scalars"])
    assert [e.step for e in acc.Scalars("epoch/test_neg_elbo")] == [1, 2]
    assert acc.Scalars("final/test_iw_nll")[0].value == pytest.approx(meta["metrics"]["test_iw_nll"])
    assert {"images/samples", "images/reconstruction"} <= set(tags["images"])
    assert [e.step for e in acc.Images("images/samples")] == [1, 2]
    started = plugin_data_pb2.HParamsPluginData.FromString(
        acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]).session_start_info
    assert started.hparams["training.batch_size"].number_value == 100, "the resolved config, as hparams"
    assert started.hparams["model.hidden_dims"].string_value == "[64, 32]"
    assert started.hparams["launch.world_size"].number_value == 1

    assert train_cli(["--store-root", str(root), *TINY_ARGS, "--epochs", "1", "--resume", "1"]) == 0
    resumed = event_accumulator.EventAccumulator(str(store.version_dir("gvae", 2) / "record" / "tensorboard"))
    resumed.Reload()
    assert [e.step for e in resumed.Scalars("epoch/test_neg_elbo")] == [1, 2, 3], "the parent's epochs come first"


def test_without_tensorboard_the_json_png_record_is_still_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # `import` now raises ImportError
    with caplog.at_level(logging.INFO, logger="training.tracking"):
        tb = TensorBoardLog(tmp_path / "tb")
    assert not tb.enabled and not (tmp_path / "tb").exists()
    assert "tensorboard is not installed" in caplog.text
    tb.epoch({"epoch": 1, "train_loss": 1.0})  # every method is a no-op
    tb.close()

    root = tmp_path / "store"
    assert train_cli(["--store-root", str(root), *TINY_ARGS]) == 0
    files = set(ModelStore(root).verify("gvae", 1)["files"])
    assert files >= RECORD
    assert not any(f.startswith("record/tensorboard/") for f in files)
