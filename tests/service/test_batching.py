"""Dynamic batching: requests are coalesced and split, answers are routed back, byte-identical to unbatched ones,
one failing batch fails only its requests, and a full queue answers 503."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from model_store.registry import ModelStore
from service.app import create_app
from service.batching import Batcher
from service.exceptions import InferenceFailed, QueueFull
from service.inference import InferenceEngine, resolve_device
from service.metrics import Metrics
from service.png import grid_png, to_uint8
from service.runner import ModelRunner

from .helpers import make_settings, open_png


@pytest.fixture(scope="module")
def engine(store_root: Path) -> InferenceEngine:
    return InferenceEngine.from_store(ModelStore(store_root), "gvae", "latest", resolve_device("cpu"))


def histogram(metrics: Metrics, name: str, network: str = "decoder") -> list[tuple[str, float]]:
    """The cumulative bucket counts of a batch histogram: [(upper bound, count), ...]."""
    family = next(f for f in metrics.registry.collect() if f.name == name)
    return [(s.labels["le"], s.value) for s in family.samples
            if s.name.endswith("_bucket") and s.labels.get("network") == network]


def max_observed(metrics: Metrics, name: str, network: str = "decoder") -> float:
    """The smallest bucket bound that holds every observation (an upper bound of the largest one)."""
    buckets = histogram(metrics, name, network)
    total = buckets[-1][1]
    return next(float(le) for le, count in buckets if count == total)


def run(coro_fn):  # noqa: ANN001, ANN201 - tiny helper around asyncio.run
    return asyncio.run(coro_fn())


# ------------------------------------------------------------------------------------------ coalescing and splitting
def test_concurrent_requests_share_a_forward_pass_and_get_their_own_images(engine: InferenceEngine) -> None:
    counts = [1, 3, 2, 5, 1, 4]

    async def main() -> list[torch.Tensor]:
        runner = ModelRunner(engine, max_batch_size=64, max_wait_s=0.5)
        runner.batcher._shared = True  # as under load: the idle worker waits for the others to join
        try:
            return await asyncio.gather(*(runner.sample(n, temperature=0.7, hard=False, seed=seed)
                                          for seed, n in enumerate(counts)))
        finally:
            runner.close()
            metrics.append(runner.batcher.metrics)

    metrics: list[Metrics] = []
    results = run(main)
    assert [r.shape[0] for r in results] == counts
    for seed, (n, images) in enumerate(zip(counts, results, strict=True)):
        assert torch.equal(images, engine.sample(n, temperature=0.7, hard=False, seed=seed))  # its own noise
    (m,) = metrics
    passes = histogram(m, "gvae_batch_requests")[-1][1]
    assert passes < len(counts), "the six requests should have shared passes"
    assert max_observed(m, "gvae_batch_requests") > 1


def test_a_request_larger_than_the_batch_is_split_and_reassembled(engine: InferenceEngine) -> None:
    async def main() -> tuple[torch.Tensor, torch.Tensor, Metrics]:
        runner = ModelRunner(engine, max_batch_size=8, max_wait_s=0.0)
        try:
            big, small = await asyncio.gather(runner.sample(21, temperature=1.0, hard=True, seed=3),
                                              runner.sample(2, temperature=1.0, hard=True, seed=4))
            return big, small, runner.batcher.metrics
        finally:
            runner.close()

    big, small, metrics = run(main)
    assert big.shape == (21, 1, 28, 28) and small.shape == (2, 1, 28, 28)
    assert torch.equal(big, engine.sample(21, temperature=1.0, hard=True, seed=3))
    assert torch.equal(small, engine.sample(2, temperature=1.0, hard=True, seed=4))
    assert max_observed(metrics, "gvae_batch_size_images") <= 8
    assert histogram(metrics, "gvae_batch_size_images")[-1][1] >= 3  # 21 rows need three passes of 8


def test_reconstruct_and_encode_share_encoder_passes_with_decoder_work(engine: InferenceEngine) -> None:
    images = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(0))

    async def main() -> tuple:
        runner = ModelRunner(engine, max_batch_size=64, max_wait_s=0.5)
        runner.batcher._shared = True
        try:
            return await asyncio.gather(
                runner.reconstruct(images[:2], temperature=0.5, hard=False, mode="sample", seed=1),
                runner.encode(images[2:], samples=3, temperature=0.5, seed=2),
                runner.sample(4, temperature=0.5, hard=False, seed=5),
                runner.decode_codes(torch.tensor([[1] * 30, [9] * 30])))
        finally:
            runner.close()

    recons, encoding, sampled, decoded = run(main)
    assert torch.equal(recons, engine.reconstruct(images[:2], temperature=0.5, hard=False, mode="sample", seed=1))
    alone = engine.encode(images[2:], samples=3, temperature=0.5, seed=2)
    assert torch.equal(encoding.probs, alone.probs) and torch.equal(encoding.samples, alone.samples)
    assert torch.equal(sampled, engine.sample(4, temperature=0.5, hard=False, seed=5))
    assert torch.equal(decoded, engine.decode_codes(torch.tensor([[1] * 30, [9] * 30])))


# ------------------------------------------------------------------------------------------ determinism
@pytest.mark.parametrize("sizes", [[1, 1], [1, 15, 1], [3, 17, 40], [64, 1, 2]])
def test_networks_give_each_row_the_same_bits_whatever_it_is_batched_with(engine: InferenceEngine,
                                                                          sizes: list[int]) -> None:
    """The tiles: a BLAS product can round a row differently with 1, 2, 3, 23 ... rows; tiles always have 16."""
    generator = torch.Generator().manual_seed(sum(sizes))
    parts = [torch.softmax(torch.randn(n, 30, 10, generator=generator) * 3, dim=-1) for n in sizes]
    with torch.inference_mode():
        together = engine.decode_latents(torch.cat(parts)).split(sizes)
        images = [torch.rand(n, 1, 28, 28, generator=generator) for n in sizes]
        encoded = engine.encode_logits(torch.cat(images)).split(sizes)
        for part, image, got, got_logits in zip(parts, images, together, encoded, strict=True):
            assert torch.equal(got, engine.decode_latents(part))
            assert torch.equal(got_logits, engine.encode_logits(image))


@pytest.fixture(scope="module")
def patient_client(store_root: Path) -> Iterator[TestClient]:
    """An app whose worker waits up to 300 ms for requests to join a batch (so concurrent ones do)."""
    app = create_app(make_settings(store_root, max_batch_wait_ms=300, max_batch_size=64))
    with TestClient(app) as test_client:
        app.state.runner.batcher._shared = True
        yield test_client


def test_seeded_pngs_are_byte_identical_batched_or_alone(client: TestClient, patient_client: TestClient) -> None:
    requests = [{"n": n, "seed": seed, "temperature": 0.6} for seed, n in enumerate([1, 7, 2, 30, 1, 5])]
    alone = [client.get("/v1/sample", params=p).content for p in requests]  # one at a time, another app
    barrier = threading.Barrier(len(requests))

    def together(params: dict) -> bytes:
        barrier.wait()
        return patient_client.get("/v1/sample", params=params).content

    with ThreadPoolExecutor(len(requests)) as pool:
        batched = list(pool.map(together, requests))
    assert batched == alone
    metrics = patient_client.app.state.metrics
    assert max_observed(metrics, "gvae_batch_requests", "decoder/uint8") > 1  # they really were batched
    body = {"codes": [[k % 10] * 30 for k in range(3)]}
    assert patient_client.post("/v1/decode", json=body).content == client.post("/v1/decode", json=body).content


def test_uint8_and_float_images_make_the_same_png() -> None:
    images = torch.rand(9, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    for count, scale in [(1, 1), (1, 2), (9, 1), (9, 3)]:
        assert grid_png(images[:count], nrow=4, scale=scale) == grid_png(to_uint8(images[:count]), nrow=4,
                                                                          scale=scale)


# ------------------------------------------------------------------------------------------ failures
def test_a_failing_batch_fails_only_its_requests_and_the_service_goes_on(
        store_root: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(make_settings(store_root, max_batch_wait_ms=300))
    with TestClient(app) as client:
        engine = app.state.runner.engine
        decode = engine.decode_latents
        failures = iter([True])

        def flaky(z: torch.Tensor) -> torch.Tensor:
            if next(failures, False):
                raise RuntimeError("simulated kernel failure")
            return decode(z)

        monkeypatch.setattr(engine, "decode_latents", flaky)
        app.state.runner.batcher._shared = True
        barrier = threading.Barrier(3)

        def get(seed: int):  # noqa: ANN202
            barrier.wait()
            return client.get("/v1/sample", params={"n": 2, "seed": seed}, headers={"X-Request-ID": f"req-{seed}"})

        with ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(get, range(3)))
        failed = [r for r in answers if r.status_code == 500]
        assert failed, [r.status_code for r in answers]
        for r in failed:
            body = r.json()
            assert body["request_id"] == r.headers["x-request-id"] and body["request_id"].startswith("req-")
            assert "batch" in body["detail"]
        assert all(r.status_code in (200, 500) for r in answers)
        after = client.get("/v1/sample", params={"n": 3, "seed": 1})
        assert after.status_code == 200 and open_png(after.content).size == (92, 32)
    assert any(r.exc_info and "simulated kernel failure" in str(r.exc_info[1]) for r in caplog.records)


def test_a_failing_step_of_one_request_fails_that_request_only(engine: InferenceEngine) -> None:
    def broken(_: object) -> None:
        raise RuntimeError("boom")

    async def main() -> list:
        batcher = Batcher({"decoder": engine.decode_latents}, max_batch_size=64, max_wait_s=0.2)
        batcher._shared = True
        z = torch.zeros(2, 30, 10)
        try:
            return await asyncio.gather(batcher.submit(2, [lambda _: z, "decoder"]),
                                        batcher.submit(2, [broken, "decoder"]),
                                        batcher.submit(2, [lambda _: z, "decoder", lambda x: x.sum().item()]),
                                        return_exceptions=True)
        finally:
            batcher.close()

    good, bad, summed = run(main)
    assert isinstance(good, torch.Tensor) and good.shape == (2, 1, 28, 28)
    assert isinstance(bad, InferenceFailed)
    assert summed == pytest.approx(good.sum().item())


def test_a_full_queue_answers_503_with_retry_after(store_root: Path) -> None:
    app = create_app(make_settings(store_root, max_queue=1))
    release = threading.Event()
    with TestClient(app) as client:
        runner = app.state.runner

        async def block() -> None:
            await runner.run(release.wait, 10)

        with ThreadPoolExecutor(1) as pool:
            blocked = pool.submit(client.portal.call, block)  # occupies the worker and the one queue slot
            for _ in range(100):
                if runner.batcher._pending:
                    break
                threading.Event().wait(0.01)
            r = client.get("/v1/sample?n=1")
            release.set()
            blocked.result(timeout=10)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert "GVAE_MAX_QUEUE" in r.json()["detail"]
        assert client.get("/v1/sample?n=1").status_code == 200  # drained: serving again


def test_queue_full_is_raised_at_submit() -> None:
    async def main() -> None:
        batcher = Batcher({}, max_queue=1)
        gate = threading.Event()
        first = asyncio.ensure_future(batcher.submit(0, [lambda _: gate.wait(5)]))
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull, match="GVAE_MAX_QUEUE"):
            await batcher.submit(0, [lambda _: None])
        gate.set()
        assert await first is True
        batcher.close()

    run(main)


# ------------------------------------------------------------------------------------------ CUDA graphs
def test_cuda_graphs_are_ignored_with_a_warning_off_gpu(store_root: Path, caplog: pytest.LogCaptureFixture,
                                                        engine: InferenceEngine) -> None:
    with pytest.raises(ValueError, match="CUDA device"):
        engine.capture_cuda_graphs()
    with TestClient(create_app(make_settings(store_root, cuda_graphs=True))) as client:
        assert client.get("/v1/sample?n=2").status_code == 200
    assert any("GVAE_CUDA_GRAPHS" in m for m in caplog.messages)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_graphs_answer_like_eager_passes(store_root: Path) -> None:
    eager_app = create_app(make_settings(store_root, device="cuda"))
    graph_app = create_app(make_settings(store_root, device="cuda", cuda_graphs=True))
    with TestClient(eager_app) as eager, TestClient(graph_app) as graphed:
        assert graph_app.state.runner.engine._graphs
        for params in ({"n": 1, "seed": 1}, {"n": 70, "seed": 2, "hard": True}, {"n": 200, "seed": 3}):
            a = np.asarray(open_png(eager.get("/v1/sample", params=params).content), dtype=np.int16)
            b = np.asarray(open_png(graphed.get("/v1/sample", params=params).content), dtype=np.int16)
            assert np.abs(a - b).max() <= 1, params
