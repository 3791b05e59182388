"""Dynamic batching: concurrent acts gathered into one ``Agent.act_batch`` call.

Requests wait in a queue; the worker takes the first, then whatever else arrives within
``max_wait_ms`` up to ``max_batch``, and runs the batch on one inference thread, off the event
loop (so ``/healthz`` answers while the model works). A batch may mix domains: the MoE routes
each row. Every request was checked before it was queued; if a batch still fails, its
requests are retried one by one so that one bad request cannot fail the others.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Pending:
    episode: Any
    observation: dict[str, Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class Done:
    """One act's answer (``decoded``) or its error, with its timing."""

    decoded: Any = None
    error: BaseException | None = None
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: int = 0


class Batcher:
    def __init__(self, agent: Any, max_batch: int = 16, max_wait_ms: float = 1.0, on_batch: Any = None,
                 max_queue: int = 1024):
        self.agent, self.max_batch, self.max_wait = agent, max(1, max_batch), max_wait_ms / 1000
        self.on_batch = on_batch  # called with each batch's size
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=max(1, max_queue))
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniactor-inference")
        self.task: asyncio.Task | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def act(self, episode: Any, observation: dict[str, Any]) -> Done:
        """The decoded answer of one act (the episode's history grows by it)."""
        from .codec import RequestError

        if self.task is None or self.task.done():
            raise RequestError(503, "the inference worker is not running; restart the server")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Pending(episode, observation, future))
        except asyncio.QueueFull:
            raise RequestError(503, f"{self.queue.maxsize} acts are waiting for the model; retry shortly") from None
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            deadline = loop.time() + self.max_wait
            while len(batch) < self.max_batch:
                left = deadline - loop.time()
                if left <= 0 and self.queue.empty():
                    break
                try:
                    batch.append(await asyncio.wait_for(self.queue.get(), max(left, 0)) if left > 0
                                 else self.queue.get_nowait())
                except (TimeoutError, asyncio.QueueEmpty):
                    break
            batch = [p for p in batch if not p.future.done()]  # a client that went away
            if not batch:
                continue
            if self.on_batch is not None:
                self.on_batch(len(batch))
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self.executor, self._act, batch)
            except asyncio.CancelledError:
                raise
            except BaseException as err:  # noqa: BLE001 - the worker must outlive any one batch
                results = [Done(error=err) for _ in batch]
            for pending, done in zip(batch, results):
                done.queue_ms = (started - pending.queued) * 1000
                done.batch_size = len(batch)
                if not pending.future.done():
                    pending.future.set_result(done)

    def _act(self, batch: list[Pending]) -> list[Done]:
        started = time.perf_counter()
        try:
            decoded = self.agent.act_batch([p.episode for p in batch], [p.observation for p in batch], details=True)
            ms = (time.perf_counter() - started) * 1000
            return [Done(d, inference_ms=ms) for d in decoded]
        except Exception as err:  # noqa: BLE001 - one request's fault: find it, answer the others
            if len(batch) == 1:
                return [Done(error=err, inference_ms=(time.perf_counter() - started) * 1000)]
            return [self._act([p])[0] for p in batch]
