"""Dynamic batching: concurrent acts gathered into one ``Agent.act_batch`` call.

Requests wait in a queue; the worker takes the first and everything already queued, up to
``max_batch``, and runs the batch on one inference thread, off the event loop (so ``/healthz``
answers while the model works). A batch may mix domains: the MoE routes each row.

How long a batch waits for more is decided by who is calling. The sessions of the last two
batches are the callers expected back: while one of them is missing, the batch waits for it,
at most ``max_wait_ms``; once all are in, it goes at once. So a lone client never waits, and
concurrent clients, who come back a few milliseconds apart once their answers go out, are
gathered into one batch instead of settling into two half-size batches that take turns on the
model. Stateless acts (no session) are batched with whatever is queued but never waited for.

Every request was checked before it was queued; if a batch still fails, its requests are
retried one by one so that one bad request cannot fail the others.
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
    caller: str | None = None  # the session, if any: a caller the next batches expect back
    queued: float = field(default_factory=time.perf_counter)


@dataclass
class Done:
    """One act's answer (``decoded``) or its error, with its timing."""

    decoded: Any = None
    error: BaseException | None = None
    queue_ms: float = 0.0
    inference_ms: float = 0.0
    batch_size: int = 0


#: the server's defaults (``omniactor serve --max-batch / --max-wait-ms``)
DEFAULT_MAX_BATCH = 16
DEFAULT_MAX_WAIT_MS = 50.0


class Batcher:
    def __init__(self, agent: Any, max_batch: int = DEFAULT_MAX_BATCH, max_wait_ms: float = DEFAULT_MAX_WAIT_MS,
                 on_batch: Any = None,
                 max_queue: int = 1024):
        self.agent, self.max_batch, self.max_wait = agent, max(1, max_batch), max_wait_ms / 1000
        self.on_batch = on_batch  # called with each batch's size
        self.queue: asyncio.Queue[Pending] = asyncio.Queue(maxsize=max(1, max_queue))
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="omniactor-inference")
        self.task: asyncio.Task | None = None
        self.recent: list[set[str]] = [set(), set()]  # the callers of the last two batches

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        self.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def depth(self) -> int:
        return self.queue.qsize()

    async def act(self, episode: Any, observation: dict[str, Any], caller: str | None = None) -> Done:
        """The decoded answer of one act (the episode's history grows by it). ``caller``: the
        session, whose next act the batches after this one will wait for (``max_wait_ms`` at most)."""
        from .codec import RequestError

        if self.task is None or self.task.done():
            raise RequestError(503, "the inference worker is not running; restart the server")
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(Pending(episode, observation, future, caller))
        except asyncio.QueueFull:
            raise RequestError(503, f"{self.queue.maxsize} acts are waiting for the model; retry shortly") from None
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather(loop)
            batch = [p for p in batch if not p.future.done()]  # a client that went away
            if not batch:
                continue
            self.recent = [self.recent[1], {p.caller for p in batch if p.caller is not None}]
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

    def forget(self, caller: str) -> None:
        """``caller`` will not come back (its session was closed): no batch waits for it."""
        for callers in self.recent:
            callers.discard(caller)

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> list[Pending]:
        """The next batch: the first act, everything queued, and the expected callers still to come
        back (the sessions of the last two batches), for at most ``max_wait`` after the first."""
        batch = [await self.queue.get()]
        deadline = loop.time() + self.max_wait
        expected = self.recent[0] | self.recent[1]
        while len(batch) < self.max_batch:
            if not self.queue.empty():
                batch.append(self.queue.get_nowait())
                continue
            if expected <= {p.caller for p in batch}:
                break
            left = deadline - loop.time()
            if left <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self.queue.get(), left))
            except TimeoutError:
                break
        return batch

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
