"""The model's runner: the routes' async API over one InferenceEngine, dynamically batched on one worker thread.

Concurrent requests that need the model are coalesced into shared forward passes (service/batching.py):
sample, decode and reconstruct share decoder passes, reconstruct and encode share encoder passes. Every
request still draws its noise from its own generator and the networks run on fixed-size tiles, so an answer
is byte-identical whether or not it was batched with others. All model work runs off the event loop, on the
worker thread, under `torch.inference_mode()`.

    runner = ModelRunner(engine, max_batch_size=64, max_wait_s=0.001)
    images = await runner.sample(16, temperature=1.0, hard=False, seed=0)   # (16, 1, 28, 28) on the CPU
    await runner.run(engine.warm_up)                                         # any call, on the worker thread
    runner.close()
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import torch

from model_store.model import ReconstructMode

from .batching import Batcher, Step
from .inference import Encoding, InferenceEngine
from .metrics import Metrics
from .png import to_uint8

P = ParamSpec("P")
T = TypeVar("T")
ENCODER, DECODER, PIXELS = "encoder", "decoder", "decoder/uint8"
Finish = Callable[[torch.Tensor], Any]


class ModelRunner:
    def __init__(self, engine: InferenceEngine, *, max_batch_size: int = 64, max_wait_s: float = 0.001,
                 max_queue: int = 1024, metrics: Metrics | None = None) -> None:
        self.engine = engine
        networks = {  # run in this order within one round: a reconstruction's decoder pass follows its encoder's
            ENCODER: engine.encode_logits,  # (B, 1, H, W) -> (B, N, K) logits, left on the device
            DECODER: lambda z: engine.decode_latents(z).cpu(),  # (B, N, K) -> (B, 1, H, W) on the CPU, one copy
            # the same, quantised to uint8 for the whole batch at once (on the device: a quarter of the copy)
            PIXELS: lambda z: to_uint8(engine.decode_latents(z)).cpu(),
        }
        self.batcher = Batcher(networks, max_batch_size=max_batch_size, max_wait_s=max_wait_s, max_queue=max_queue,
                               metrics=metrics, name=f"gvae-{engine.device.type}")

    # Images come back as (B, 1, H, W) float pixel probabilities, exactly as the engine's methods give them, or
    # with `pixels=True` as uint8 (png.to_uint8 of those). `finish`, when given, runs on the worker thread on this
    # request's images as its last step (e.g. encoding a small PNG); its result is returned instead.
    async def sample(self, n: int, temperature: float, hard: bool, seed: int, *, pixels: bool = False,
                     finish: Finish | None = None) -> Any:
        """n images from the prior, as `engine.sample` gives them."""
        e = self.engine
        return await self._submit(n, [lambda _: e.prior_latents(n, temperature, hard, seed)], pixels, finish)

    async def decode_codes(self, codes: torch.Tensor, *, pixels: bool = False, finish: Finish | None = None) -> Any:
        """(B, N) integer codes -> (B, 1, H, W), as `engine.decode_codes`."""
        e = self.engine

        def latents(_: object) -> torch.Tensor:  # checked on the worker, off the event loop; a bad request fails alone
            e.check_codes(codes)
            return e.code_latents(codes)

        return await self._submit(codes.shape[0], [latents], pixels, finish)

    async def decode_logits(self, logits: torch.Tensor, temperature: float, hard: bool, seed: int, *,
                            pixels: bool = False, finish: Finish | None = None) -> Any:
        """(B, N, K) logits -> Gumbel-Softmax latents -> (B, 1, H, W), as `engine.decode_logits`."""
        e = self.engine

        def latents(_: object) -> torch.Tensor:
            e.check_logits(logits)
            return e.relaxed_latents(logits, temperature, hard, seed)

        return await self._submit(logits.shape[0], [latents], pixels, finish)

    async def reconstruct(self, images: torch.Tensor, temperature: float, hard: bool, mode: ReconstructMode,
                          seed: int, *, pixels: bool = False, finish: Finish | None = None) -> Any:
        """(B, 1, H, W) images -> (B, 1, H, W) reconstructions, as `engine.reconstruct`."""
        e = self.engine
        e.check_images(images)
        return await self._submit(images.shape[0], [
            lambda _: e.to_device(images), ENCODER,
            lambda logits: e.posterior_latents(logits, temperature, hard, mode, seed)], pixels, finish)

    async def encode(self, images: torch.Tensor, samples: int, temperature: float, seed: int) -> Encoding:
        """Posterior probabilities, codes and sampled codes of (B, 1, H, W) images, as `engine.encode`."""
        e = self.engine
        e.check_images(images)
        return await self.batcher.submit(images.shape[0], (
            lambda _: e.to_device(images), ENCODER, lambda logits: e.encoding(logits, samples, temperature, seed)))

    async def _submit(self, rows: int, latents: list[Step], pixels: bool, finish: Finish | None) -> Any:
        """Runs `latents` (the steps up to the decoder's input) then the decoder, then `finish`."""
        plan = [*latents, PIXELS if pixels else DECODER]
        return await self.batcher.submit(rows, plan if finish is None else [*plan, finish])

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Awaits `fn(*args, **kwargs)` on the model's worker thread, between batches (e.g. the warm-up)."""
        call = functools.partial(fn, *args, **kwargs)
        return await self.batcher.submit(0, (lambda _: call(),))

    def close(self) -> None:
        """Finishes the running pass, answers queued requests 503 and stops the worker thread."""
        self.batcher.close()
