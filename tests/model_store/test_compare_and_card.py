"""`compare` shows metrics and the configs that differ side by side; `card` renders one self-contained, escaped
HTML model card with the curves and the last epoch's grids inlined."""

from __future__ import annotations

import base64
import io
import re

import pytest
import torch
from PIL import Image

from model_store import GumbelVAE, IntegrityError, ModelNotFound, ModelStore, VAEConfig
from model_store.__main__ import main as store_cli
from model_store.card import render_card
from model_store.compare import compare_versions

TRAINING = {"lr": 0.001, "batch_size": 100, "epochs": 10, "seed": 1, "tags": [], "hard": False}


def png(color: int, size: tuple[int, int] = (4, 4)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, color).save(buf, format="PNG")
    return buf.getvalue()


def add_version(store: ModelStore, config: VAEConfig, *, training: dict, metrics: dict, parent: int | None = None,
                description: str = "", tags: dict | None = None, grids_at: tuple[int, ...] = ()) -> int:
    torch.manual_seed(0)
    with store.register("gvae") as draft:
        draft.save_weights(GumbelVAE(config))
        draft.file("record/loss_curve.png").write_bytes(png(10))
        for epoch in grids_at:
            draft.file(f"record/grids/epoch_{epoch:03d}_samples.png").write_bytes(png(epoch))
            draft.file(f"record/grids/epoch_{epoch:03d}_reconstruction.png").write_bytes(png(epoch + 100))
        draft.metadata.update(training_config=training, metrics=metrics, parent_version=parent,
                              description=description, tags=tags or {}, launch={"world_size": 1})
    assert draft.version is not None
    return draft.version


@pytest.fixture
def three_versions(store: ModelStore, small_config: VAEConfig) -> ModelStore:
    add_version(store, small_config, training=TRAINING, metrics={"test_neg_elbo": 120.5, "test_iw_nll": 110.25,
                                                                  "iw_k": 1000, "epochs_total": 10})
    add_version(store, small_config, training={**TRAINING, "lr": 0.003, "epochs": 5}, parent=1,
                metrics={"test_neg_elbo": 101.0, "test_iw_nll": 99.5, "iw_k": 1000, "epochs_total": 15})
    wider = VAEConfig(hidden_dims=(128, 32), latent_dim=6, categorical_dim=4)
    add_version(store, wider, training={**TRAINING, "hard": True}, metrics={"test_neg_elbo": 130.0})
    return store


def test_compare_lists_metrics_and_only_the_configs_that_differ(three_versions: ModelStore) -> None:
    table = compare_versions(three_versions, "gvae", ["1", "2", "latest"])
    assert table.versions == [1, 2, 3]
    metrics = {row[0]: row[1:] for row in table.metrics}
    assert metrics["test_neg_elbo"] == ["120.50", "101.00", "130.00"]
    assert metrics["test_iw_nll"] == ["110.25", "99.50", "-"], "a metric a version lacks shows as '-'"
    config = {row[0]: row[1:] for row in table.config}
    assert config == {"model.hidden_dims": ["[64, 32]", "[64, 32]", "[128, 32]"],
                      "training.lr": ["0.001", "0.003", "0.001"], "training.epochs": ["10", "5", "10"],
                      "training.hard": ["false", "false", "true"]}
    everything = compare_versions(three_versions, "gvae", ["1", "2"], all_keys=True)
    assert {"training.seed", "model.latent_dim", "launch.world_size"} <= {row[0] for row in everything.config}


def test_compare_cli_prints_one_aligned_table(three_versions: ModelStore, capsys: pytest.CaptureFixture[str]) -> None:
    assert store_cli(["--root", str(three_versions.root), "compare", "1", "2"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["v1", "v2"]
    assert re.search(r"^test_neg_elbo\s+120\.50\s+101\.00$", out, re.M)
    assert re.search(r"^training\.lr\s+0\.001\s+0\.003$", out, re.M)
    assert "model.hidden_dims" not in out, "identical config keys are left out"
    assert store_cli(["--root", str(three_versions.root), "compare", "1", "9"]) == 2
    assert "no version 9" in capsys.readouterr().err


def test_card_is_self_contained_html_with_record_lineage_and_hashes(store: ModelStore, small_config: VAEConfig) -> None:
    add_version(store, small_config, training=TRAINING, metrics={"test_neg_elbo": 120.5}, grids_at=(1, 2))
    add_version(store, small_config, training=TRAINING, metrics={"test_neg_elbo": 100.0}, parent=1, grids_at=(5, 10),
                description="resumed <b>run</b> & more", tags={"team": "<script>alert(1)</script>"})
    store.set_alias("gvae", "production", 2)
    store.delete("gvae", 1, force=True)
    html = render_card(store, "gvae", "production")

    assert html.startswith("<!doctype html>") and html.rstrip().endswith("</html>")
    assert "<script" not in html and "src=\"http" not in html, "no scripts, nothing fetched from elsewhere"
    assert "resumed &lt;b&gt;run&lt;/b&gt; &amp; more" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "production" in html and "v2 ← v1 (deleted)" in html
    assert "100.00" in html and "0.001" in html and "[64, 32]" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3, "loss curve + the last epoch's samples and reconstruction"
    decoded = [Image.open(io.BytesIO(base64.b64decode(b))).getpixel((0, 0)) for b in images]
    assert decoded == [10, 110, 10], "curve, then epoch 10 (not epoch 5) reconstruction and samples"
    for digest in store.metadata("gvae", 2)["files"].values():
        assert digest in html


def test_card_refuses_a_damaged_version_and_the_cli_writes_a_file(store: ModelStore, small_config: VAEConfig,
                                                                    tmp_path, capsys: pytest.CaptureFixture[str]):
    add_version(store, small_config, training=TRAINING, metrics={})
    out = tmp_path / "card.html"
    assert store_cli(["--root", str(store.root), "card", "1", "-o", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>") and "v1 (trained from scratch)" in out.read_text()
    (store.version_dir("gvae", 1) / "record" / "loss_curve.png").write_bytes(png(99))
    with pytest.raises(IntegrityError):
        render_card(store, "gvae", 1)
    with pytest.raises(ModelNotFound):
        render_card(store, "gvae", 7)
    capsys.readouterr()
    assert store_cli(["--root", str(store.root), "card", "1"]) == 2
    assert "modified or corrupted" in capsys.readouterr().err
