"""Dynamic micro-batching: concurrent requests share forward passes, on one worker thread per device.

A request becomes a `Job` with a *plan*: per-request steps (callables, e.g. drawing its Gumbel noise from its
own generator) alternating with the names of batched networks (e.g. "encoder", "decoder"). The worker thread
takes the queued jobs, concatenates the rows of every job waiting for the same network (up to
`max_batch_size` rows per pass, in arrival order; a job with more rows is split over several passes), runs
the network once, splits the output back by job (row counts are checked) and moves each job on to its
next step. Results go back to the event loop with `loop.call_soon_threadsafe`, one callback per pass.

When the worker is idle and its last pass was shared by several requests (concurrent traffic), it waits up to
`max_wait_s` after the first request for others to join; a lone client is served at once. When it is busy,
requests queue up during a pass and form the next batch without waiting. At most `max_queue`
requests are queued or running; one more raises `QueueFull` (503 with Retry-After) at once.

    batcher = Batcher({"decoder": decode}, max_batch_size=64, max_wait_s=0.001, max_queue=1024)
    images = await batcher.submit(n, (draw_latents, "decoder"))       # n rows through the decoder
    batcher.close()

An exception in a per-request step fails that request only; one in a network fails the requests of that
pass (InferenceFailed, logged with its traceback); the worker carries on either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from .exceptions import InferenceFailed, NotReady, QueueFull, ServiceError
from .metrics import Metrics

log = logging.getLogger(__name__)

Network = Callable[[torch.Tensor], torch.Tensor]  # (rows, ...) -> (rows, ...), row-independent
Step = Callable[[Any], Any] | str  # a per-request function of the previous value, or a network's name


@dataclass(eq=False)
class Job:
    """One request on its way through its plan; touched by the worker thread only (after `submit`)."""

    rows: int  # rows each network step of the plan takes and gives
    plan: Sequence[Step]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    submitted: float
    started: bool = False
    network: str | None = None  # the network the job waits for
    position: int = 0  # index of that network in the plan
    value: Any = None  # the network's input: (rows, ...) on the device
    taken: int = 0  # rows of `value` already put into a batch
    parts: list[torch.Tensor] = field(default_factory=list)  # outputs of the batches so far
    done: bool = False


@dataclass
class _Outcome:
    job: Job
    result: Any = None
    error: BaseException | None = None


class Batcher:
    def __init__(self, networks: dict[str, Network], *, max_batch_size: int = 64, max_wait_s: float = 0.001,
                 max_queue: int = 1024, metrics: Metrics | None = None, name: str = "gvae-batcher") -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size and max_queue must be >= 1 and max_wait_s >= 0")
        self.networks = networks
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics or Metrics()
        self._cond = threading.Condition()
        self._incoming: deque[Job] = deque()  # guarded by _cond, like the three fields below
        self._incoming_rows = 0
        self._wake_at = 1  # queued rows at which `submit` wakes the worker: 1 when idle, the batch size while it
        #                    waits for a batch to fill, never while it runs (it looks at the queue before waiting)
        self._pending = 0  # jobs submitted and not finished
        self._closing = False
        self._outcomes: list[_Outcome] = []  # worker thread only, like the next one
        self._shared = False  # whether the last pass served several requests: only then is waiting worth it
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------ event-loop side
    async def submit(self, rows: int, plan: Sequence[Step]) -> Any:
        """Runs `plan` for a request of `rows` rows and returns the value of its last step."""
        unknown = [step for step in plan if isinstance(step, str) and step not in self.networks]
        if unknown:
            raise ValueError(f"no network named {unknown[0]!r}; this batcher runs {list(self.networks)}")
        loop = asyncio.get_running_loop()
        job = Job(rows, plan, loop, loop.create_future(), time.perf_counter())
        with self._cond:
            if self._closing:
                raise NotReady("the service is shutting down: retry on another instance")
            if self._pending >= self.max_queue:
                raise QueueFull(f"the model's queue is full ({self.max_queue} requests, GVAE_MAX_QUEUE): "
                                f"retry in a moment")
            self._pending += 1
            self._incoming.append(job)
            self._incoming_rows += max(rows, 1)  # a job without rows (`run`) still needs the worker
            if self._incoming_rows >= self._wake_at:  # a wake-up is a futex call and a context switch: only when needed
                self._cond.notify()
        self.metrics.queue_depth.inc()
        return await job.future

    def close(self) -> None:
        """Stops the worker after its current pass; requests still queued answer NotReady (503)."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    # ------------------------------------------------------------------------------ worker thread
    def _work(self) -> None:
        active: list[Job] = []
        with torch.inference_mode():
            while self._take_new(active):
                self._start_jobs(active)
                for network in self.networks:
                    self._run_network(network, active)
                active = [job for job in active if not job.done]
                self._deliver()
        for job in active:
            self._finish(job, error=NotReady("the service is shutting down: retry on another instance"))
        with self._cond:
            leftover, self._incoming = list(self._incoming), deque()
        for job in leftover:
            self._finish(job, error=NotReady("the service is shutting down: retry on another instance"))
        self._deliver()

    def _take_new(self, active: list[Job]) -> bool:
        """Moves queued jobs to `active`, first waiting for some when idle; False once closing."""
        with self._cond:
            while not self._incoming and not active and not self._closing:
                self._wake_at = 1
                self._cond.wait()
            if not active and self.max_wait_s > 0 and self._shared:  # idle under concurrent load: give the
                #                                                        requests in flight a moment to join
                deadline = self._incoming[0].submitted + self.max_wait_s if self._incoming else 0.0
                self._wake_at = self.max_batch_size
                while (self._incoming_rows < self.max_batch_size and not self._closing
                       and (remaining := deadline - time.perf_counter()) > 0):
                    self._cond.wait(remaining)
            self._wake_at = sys.maxsize
            if self._closing:
                return False
            active.extend(self._incoming)
            self._incoming.clear()
            self._incoming_rows = 0
        return True

    def _start_jobs(self, active: list[Job]) -> None:
        """Runs the first per-request steps of new jobs, in order, while the rows started fit one batch."""
        started_rows = sum(job.rows for job in active if job.started and not job.done)
        for job in active:
            if job.started or job.done:
                continue
            if job.future.cancelled():  # the client went away while it was queued
                self._finish(job)
                continue
            if job.rows and started_rows >= self.max_batch_size:
                break
            job.started = True
            started_rows += job.rows
            self.metrics.queue_wait.observe(time.perf_counter() - job.submitted)
            self._advance(job, None, 0)

    def _advance(self, job: Job, value: Any, position: int) -> None:
        """Runs the job's per-request steps from `position` up to its next network, or to its result."""
        try:
            while position < len(job.plan) and not isinstance(job.plan[position], str):
                step = job.plan[position]
                assert callable(step)
                value = step(value)
                position += 1
        except ServiceError as exc:  # e.g. InvalidInput: this request's own inputs
            self._finish(job, error=exc)
            return
        except Exception as exc:  # noqa: BLE001 - this request's own step failed: it alone fails
            log.exception("step %d of a request failed", position)
            self._finish(job, error=InferenceFailed(f"the model failed on this request ({type(exc).__name__}); "
                                                    f"it is logged: report it if it persists"))
            return
        if position == len(job.plan):
            self._finish(job, result=value)
            return
        if not isinstance(value, torch.Tensor) or value.shape[0] != job.rows:
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            self._finish(job, error=InferenceFailed(f"internal error: step {position} expected {job.rows} rows, "
                                                    f"got {got}"))
            return
        job.network, job.position, job.value, job.taken, job.parts = str(job.plan[position]), position, value, 0, []

    def _run_network(self, network: str, active: list[Job]) -> None:
        """One forward pass of `network` over the rows that jobs waiting for it have not yet had run."""
        budget = self.max_batch_size
        batch: list[tuple[Job, int, int]] = []
        for job in active:
            if job.done or not job.started or job.network != network or job.taken >= job.rows:
                continue
            if job.future.cancelled():  # the client went away
                self._finish(job)
                continue
            take = min(job.rows - job.taken, budget)
            batch.append((job, job.taken, job.taken + take))
            job.taken += take
            budget -= take
            if not budget:
                break
        if not batch:
            return
        inputs = [job.value[start:stop] for job, start, stop in batch]
        x = inputs[0] if len(inputs) == 1 else torch.cat(inputs)
        began = time.perf_counter()
        try:
            out = self.networks[network](x)
            if out.shape[0] != x.shape[0]:
                raise RuntimeError(f"{network} returned {out.shape[0]} rows for {x.shape[0]}")
        except Exception as exc:  # noqa: BLE001 - the whole pass failed: its requests fail, the worker goes on
            log.exception("%s failed on a batch of %d rows from %d requests", network, x.shape[0], len(batch))
            for job, _, _ in batch:
                self._finish(job, error=InferenceFailed(f"the model failed on a batch of {len(batch)} requests "
                                                        f"this one was part of ({type(exc).__name__}); it is "
                                                        f"logged: retry, and report it if it persists"))
            return
        self.metrics.observe_batch(network, x.shape[0], len(batch), time.perf_counter() - began)
        self._shared = len(batch) > 1
        sizes = [stop - start for _, start, stop in batch]
        for (job, _, stop), part in zip(batch, out.split(sizes), strict=True):
            job.parts.append(part)
            if stop == job.rows:  # its last rows: on to the next step
                value = job.parts[0] if len(job.parts) == 1 else torch.cat(job.parts)
                self._advance(job, value, job.position + 1)

    def _finish(self, job: Job, result: Any = None, error: BaseException | None = None) -> None:
        job.done = True
        job.value = job.parts = None  # type: ignore[assignment]  # free the tensors now
        with self._cond:
            self._pending -= 1
        self._outcomes.append(_Outcome(job, result, error))

    def _deliver(self) -> None:
        """Hands finished jobs' results to their event loops: one thread-safe callback per loop."""
        if not self._outcomes:
            return
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = defaultdict(list)
        for outcome in self._outcomes:
            by_loop[outcome.job.loop].append(outcome)
        self._outcomes = []
        for loop, outcomes in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits for these answers any more
                loop.call_soon_threadsafe(self._resolve, outcomes)

    def _resolve(self, outcomes: list[_Outcome]) -> None:
        self.metrics.queue_depth.dec(len(outcomes))
        for outcome in outcomes:
            future = outcome.job.future
            if future.done():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.result)
