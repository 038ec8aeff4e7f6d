"""Data-parallel training: torchrun with 2 CPU ranks registers one version that matches a single-process run,
evaluation reduced across ranks is the single-process number, and DDP keeps the ranks' weights identical.
Also the accelerator options (bf16 autocast, torch.compile) as far as a CPU can check them."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.nn.utils import parameters_to_vector

from model_store import GumbelVAE, ModelStore, VAEConfig
from tests.conftest import FIXTURE_MNIST, REPO_ROOT
from training.__main__ import build_parser
from training.__main__ import main as train_cli
from training.config import TrainConfig
from training.data import InMemoryBatches, binarize_fixed, load_mnist_uint8, to_unit_interval
from training.distributed import Ranks, resolve_device
from training.evaluate import iw_nll, negative_elbo
from training.train import compile_model, train, train_one_epoch

# 600 images, global batch 20 (10 per rank under 2 ranks), 3 epochs = 90 steps: enough to leave the untrained
# -ELBO (~540 nats) far behind in a few seconds.
RUN_ARGS = ["--data-dir", str(FIXTURE_MNIST), "--no-download", "--epochs", "3", "--batch-size", "20", "--lr", "3e-3",
            "--eval-k", "5", "--hidden-dims", "64", "32", "--device", "cpu", "--quiet"]
# Final test -ELBO over seeds 1..5 of the single-process run spans 200.5-205.2 nats (sd ~1.8); a 2-rank run draws
# other shuffles and noise, so the two differ by one draw of that noise: 10 nats is ~4 sd of a difference.
NOISE_TOLERANCE_NATS = 10.0


def test_ranks_shard_equally_and_derive_distinct_seeds() -> None:
    rows = torch.arange(7)
    shards = [Ranks(rank=r, world_size=2).shard(rows) for r in range(2)]
    assert [s.tolist() for s in shards] == [[0, 2, 4], [1, 3, 5]], "equal shards: the odd row out is dropped"
    assert Ranks().shard(rows).tolist() == rows.tolist()
    seeds = {Ranks(rank=r, world_size=4).seed(1) for r in range(4)}
    assert len(seeds) == 4 and Ranks(rank=0, world_size=4).seed(1) == 1, "rank 0 keeps the single-process seed"


def test_single_process_env_and_device_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    assert Ranks.from_env() == Ranks() and Ranks.current() == Ranks()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert Ranks.from_env() == Ranks(rank=3, world_size=4, local_rank=1)
    assert resolve_device("cpu", Ranks(rank=1, world_size=2, local_rank=1)) == torch.device("cpu")
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="LOCAL_RANK"):
            resolve_device("cuda:0", Ranks(rank=1, world_size=2, local_rank=1))


def test_a_global_batch_not_divisible_by_the_ranks_is_refused(tmp_path: Path) -> None:
    config = TrainConfig(batch_size=25, data_dir=str(FIXTURE_MNIST), download=False)
    with pytest.raises(ValueError, match="divisible by the 2 processes"):
        train(config, ModelStore(tmp_path), ranks=Ranks(rank=0, world_size=2))
    assert not (tmp_path / "gvae").exists(), "refused before any draft"


def _two_rank_worker(rank: int, init_file: str) -> None:
    """Runs in 2 forked processes: checks reduced evaluation and DDP's gradient averaging from inside."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        ranks = Ranks.current()
        assert ranks == Ranks(rank=rank, world_size=2, local_rank=rank)
        test_x = binarize_fixed(to_unit_interval(load_mnist_uint8(FIXTURE_MNIST, train=False, download=False),
                                                 torch.device("cpu")))
        torch.manual_seed(0)
        model = GumbelVAE(VAEConfig(hidden_dims=(64, 32))).eval()
        # 100 images in 7 chunks of 16 / 10 chunks of 10: each rank evaluates about half of them
        reduced = (negative_elbo(model, test_x, batch_size=16, ranks=ranks),
                   iw_nll(model, test_x, 7, samples_per_chunk=70, ranks=ranks))
        single = (negative_elbo(model, test_x, batch_size=16), iw_nll(model, test_x, 7, samples_per_chunk=70))
        assert reduced == single, f"rank {rank}: reduced {reduced} != single-process {single}"

        train_x = to_unit_interval(load_mnist_uint8(FIXTURE_MNIST, train=True, download=False), torch.device("cpu"))
        shard = ranks.shard(train_x)
        batches = InMemoryBatches(shard, 50, dynamic=True, seed=ranks.seed(1))
        ddp = DistributedDataParallel(model)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        noise = torch.Generator().manual_seed(ranks.seed(3))
        step, loss, _, _ = train_one_epoch(ddp, optimizer, batches, TrainConfig(), 0, noise, len(batches))
        assert step == 6 and math.isfinite(loss)
        weights = parameters_to_vector(model.parameters()).detach()
        gathered = [torch.empty_like(weights) for _ in range(2)]
        dist.all_gather(gathered, weights)
        assert torch.equal(gathered[0], gathered[1]), "DDP must keep the ranks' weights identical"
        shard_sums = [torch.empty(1) for _ in range(2)]
        dist.all_gather(shard_sums, shard.sum().reshape(1))
        assert shard_sums[0] != shard_sums[1], "each rank trains on its own shard"
    finally:
        dist.destroy_process_group()


def test_evaluation_reduced_across_ranks_equals_single_process_and_ddp_syncs_weights(tmp_path: Path) -> None:
    torch.multiprocessing.start_processes(_two_rank_worker, args=(str(tmp_path / "rendezvous"),), nprocs=2,
                                          start_method="fork")


@pytest.mark.slow
def test_torchrun_with_two_cpu_ranks_registers_one_version_matching_a_single_process_run(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")}
    env["OMP_NUM_THREADS"] = "1"
    launched = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "training",
         "--store-root", str(tmp_path / "ddp"), *RUN_ARGS],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert launched.returncode == 0, launched.stderr[-4000:]
    assert json.loads(launched.stdout)["version"] == 1, "only rank 0 prints the result"

    store = ModelStore(tmp_path / "ddp")
    assert store.versions("gvae") == [1], "only rank 0 registers"
    assert not list((tmp_path / "ddp" / "gvae").glob(".draft-*"))
    model, meta = store.load_model("gvae", 1)
    assert meta["launch"] == {"world_size": 2, "backend": "gloo", "per_rank_batch_size": 10}
    assert meta["metrics"]["train_images"] == 600 and meta["metrics"]["steps_total"] == 90, "30 global steps/epoch"
    test_x = binarize_fixed(to_unit_interval(load_mnist_uint8(FIXTURE_MNIST, train=False, download=False),
                                             torch.device("cpu")))
    assert negative_elbo(model, test_x) == pytest.approx(meta["metrics"]["test_neg_elbo"], abs=1e-3), \
        "the recorded (rank-reduced) bound is the bound of the saved weights"

    assert train_cli(["--store-root", str(tmp_path / "single"), *RUN_ARGS]) == 0
    single = ModelStore(tmp_path / "single").metadata("gvae", 1)["metrics"]
    untrained = negative_elbo(GumbelVAE(model.config).eval(), test_x)
    ddp_nats, single_nats = meta["metrics"]["test_neg_elbo"], single["test_neg_elbo"]
    assert untrained > 500 and ddp_nats < untrained - 200 and single_nats < untrained - 200
    assert ddp_nats == pytest.approx(single_nats, abs=NOISE_TOLERANCE_NATS)
    assert meta["metrics"]["test_iw_nll"] == pytest.approx(single["test_iw_nll"], abs=NOISE_TOLERANCE_NATS)


def test_bf16_is_refused_on_cpu_and_compile_keeps_the_weight_names(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert train_cli(["--store-root", str(tmp_path), *RUN_ARGS, "--amp", "bf16"]) == 2
    assert "--amp bf16 needs a CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "gvae" / "versions").exists() or not any((tmp_path / "gvae" / "versions").iterdir())
    args = build_parser().parse_args(["--compile", "--amp", "bf16"])
    assert args.compile is True and args.amp == "bf16"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--amp", "fp16"])

    model = GumbelVAE(VAEConfig(hidden_dims=(64, 32)))
    names = list(model.state_dict())
    compile_model(model)  # lazy: nothing is compiled before the first forward pass
    assert list(model.state_dict()) == names, "compiled in place: weights save and load under the same names"
