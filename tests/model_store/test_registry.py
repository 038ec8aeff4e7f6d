"""The store: versions, aliases, integrity, atomic and concurrent writes, and its CLI."""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys

import pytest
import torch

from model_store import AliasInUse, GumbelVAE, IntegrityError, InvalidName, ModelNotFound, ModelStore, VAEConfig
from model_store.__main__ import main as store_cli
from tests.conftest import REPO_ROOT, save_seeded_model


def test_round_trip_restores_identical_weights_and_config(store: ModelStore, small_config: VAEConfig) -> None:
    version = save_seeded_model(store, small_config, seed=3, metrics={"test_iw_nll": 90.0})
    torch.manual_seed(3)
    original = GumbelVAE(small_config)
    loaded, meta = store.load_model("gvae", version)
    assert version == 1 and meta["version"] == 1 and meta["name"] == "gvae"
    assert loaded.config == small_config
    for (name, a), (_, b) in zip(original.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert meta["metrics"] == {"test_iw_nll": 90.0}
    assert set(meta["files"]) == {"weights.safetensors"} and len(meta["files"]["weights.safetensors"]) == 64
    assert meta["created_at"].endswith("+00:00")


def test_weights_are_safetensors_not_pickle(store: ModelStore, small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    raw = (store.version_dir("gvae", 1) / "weights.safetensors").read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    assert json.loads(raw[8:8 + header_len])  # a safetensors header is plain JSON
    assert b"\x80\x04" not in raw[:2]  # no pickle protocol marker


def test_versions_are_increasing_integers_and_latest_follows(store: ModelStore, small_config: VAEConfig) -> None:
    assert [save_seeded_model(store, small_config, seed=s) for s in range(3)] == [1, 2, 3]
    assert store.versions("gvae") == [1, 2, 3]
    assert store.resolve("gvae", "latest") == 3
    assert store.resolve("gvae", "2") == 2


def test_deleted_version_numbers_are_not_reused(store: ModelStore, small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    save_seeded_model(store, small_config)
    store.delete("gvae", 2)
    assert save_seeded_model(store, small_config) == 3


def test_aliases_point_at_versions_and_refuse_bad_names(store: ModelStore, small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    save_seeded_model(store, small_config)
    store.set_alias("gvae", "production", 1)
    assert store.resolve("gvae", "production") == 1
    assert store.aliases("gvae") == {"production": 1, "latest": 2}
    _, meta = store.load_model("gvae", "production")
    assert meta["version"] == 1
    with pytest.raises(InvalidName):
        store.set_alias("gvae", "latest", 1)
    with pytest.raises(InvalidName):
        store.set_alias("gvae", "../evil", 1)
    with pytest.raises(ModelNotFound):
        store.set_alias("gvae", "staging", 9)
    store.remove_alias("gvae", "production")
    with pytest.raises(ModelNotFound, match="no alias 'production'"):
        store.resolve("gvae", "production")


def test_missing_models_and_versions_say_what_to_do(store: ModelStore, small_config: VAEConfig) -> None:
    with pytest.raises(ModelNotFound, match="train one"):
        store.load_model("gvae")
    save_seeded_model(store, small_config)
    with pytest.raises(ModelNotFound, match=r"available: \[1\]"):
        store.load_model("gvae", 7)


def test_delete_is_refused_while_an_alias_points_to_the_version(store: ModelStore, small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    store.set_alias("gvae", "production", 1)
    with pytest.raises(AliasInUse, match="production"):
        store.delete("gvae", 1)
    assert store.versions("gvae") == [1]
    store.delete("gvae", 1, force=True)
    assert store.versions("gvae") == [] and "production" not in store.aliases("gvae")


def test_tampered_weights_are_refused_with_the_file_named(store: ModelStore, small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    weights = store.version_dir("gvae", 1) / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"weights\.safetensors.*modified or corrupted"):
        store.load_model("gvae", 1)


def test_truncated_or_missing_files_are_refused(store: ModelStore, small_config: VAEConfig) -> None:
    with store.register("gvae") as draft:
        draft.save_weights(GumbelVAE(small_config))
        draft.save_json("record/metrics.json", [])
    vdir = store.version_dir("gvae", 1)
    (vdir / "record" / "metrics.json").unlink()
    with pytest.raises(IntegrityError, match=r"metrics\.json is missing"):
        store.verify("gvae", 1)
    weights = vdir / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert store_cli(["--root", str(store.root), "verify", "1"]) == 1


class Boom(RuntimeError):
    pass


def test_a_failure_while_registering_leaves_no_version_and_moves_no_alias(store: ModelStore,
                                                                          small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    store.set_alias("gvae", "production", 1)
    with pytest.raises(Boom), store.register("gvae") as draft:
        draft.save_weights(GumbelVAE(small_config))
        raise Boom("injected failure after the weights were written")
    assert store.versions("gvae") == [1]
    assert store.aliases("gvae") == {"production": 1, "latest": 1}
    assert not list((store.root / "gvae").glob(".draft-*"))


def test_a_version_without_weights_is_not_committed(store: ModelStore) -> None:
    with pytest.raises(Exception, match="needs weights"), store.register("gvae"):
        pass
    assert store.versions("gvae") == []


def _save_in_subprocess(root: str, seed: int, queue: mp.Queue) -> None:
    store = ModelStore(root)
    queue.put(save_seeded_model(store, VAEConfig(hidden_dims=(16,), latent_dim=3, categorical_dim=2), seed=seed))


def test_concurrent_saves_get_distinct_versions(store: ModelStore) -> None:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_save_in_subprocess, args=(str(store.root), s, queue)) for s in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    versions = sorted(queue.get(timeout=5) for _ in procs)
    assert versions == [1, 2, 3, 4]
    for v in versions:
        store.verify("gvae", v)


SLOW_SAVER = """
import sys, time, torch
from model_store import GumbelVAE, ModelStore, VAEConfig
store = ModelStore(sys.argv[1])
with store.register("gvae") as draft:
    draft.save_weights(GumbelVAE(VAEConfig(hidden_dims=(16,), latent_dim=3, categorical_dim=2)))
    print("writing", flush=True)
    time.sleep(60)
"""


def test_sigkill_while_saving_leaves_no_partial_version(store: ModelStore, small_config: VAEConfig) -> None:
    save_seeded_model(store, small_config)
    store.set_alias("gvae", "production", 1)
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVER, str(store.root)], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert store.versions("gvae") == [1]
    assert store.aliases("gvae") == {"production": 1, "latest": 1}
    assert save_seeded_model(store, small_config) == 2  # the next save still works and cleans up the draft
    assert not list((store.root / "gvae").glob(".draft-*"))


def test_cli_lists_shows_aliases_verifies_and_deletes(store: ModelStore, small_config: VAEConfig,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    save_seeded_model(store, small_config, metrics={"test_neg_elbo": 99.5, "test_iw_nll": 88.25, "iw_k": 1000})
    save_seeded_model(store, small_config)
    root = ["--root", str(store.root)]
    assert store_cli([*root, "alias", "set", "production", "1"]) == 0
    assert store_cli([*root, "list"]) == 0
    out = capsys.readouterr().out
    assert "88.25" in out and "production" in out and "latest" in out
    assert store_cli([*root, "show", "production"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert store_cli([*root, "verify", "--all"]) == 0
    assert store_cli([*root, "delete", "1"]) == 2
    assert "production" in capsys.readouterr().err
    assert store_cli([*root, "delete", "2"]) == 0
    assert store.versions("gvae") == [1]


def test_loading_never_unpickles(store: ModelStore, small_config: VAEConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    save_seeded_model(store, small_config)
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("pickle must never be used to load a model")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    store.load_model("gvae", 1)
