"""Runs inference off the event loop, one call at a time, on a thread of its own per loaded model.

One thread per device keeps the model single-user (no locks in the engine) and the event loop free
for health checks and uploads; a dynamic-batching worker can replace `run` without touching routes.

    runner = ModelRunner(engine)
    images = await runner.run(engine.sample, 16, temperature=1.0, hard=False, seed=0)
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from .inference import InferenceEngine

P = ParamSpec("P")
T = TypeVar("T")


class ModelRunner:
    def __init__(self, engine: InferenceEngine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gvae-{engine.device.type}")

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Awaits `fn(*args, **kwargs)` on the model's thread; calls are served in arrival order."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Finishes the running call, drops queued ones and stops the thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)
