"""The batching window: a lone client never waits, concurrent sessions are gathered into one batch.

The model is a stand-in that takes a fixed time per batch and records the batch sizes: what is
tested is the batcher's scheduling, which does not depend on what the model computes (the
real-server tests in test_server.py batch a real agent).
"""

from __future__ import annotations

import asyncio
import time

from omniactor.serving.batcher import Batcher

MODEL_S = 0.05


class TimedModel:
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def act_batch(self, episodes, observations, details=False):
        self.sizes.append(len(episodes))
        time.sleep(MODEL_S)
        return [f"answer {e}" for e in episodes]


async def closed_loop(batcher: Batcher, clients: int, acts: int, think_s: float = 0.002) -> list[float]:
    """``clients`` sessions, starting 1 ms apart, each sending its next act ``think_s`` after its
    answer; the latencies."""
    latencies: list[float] = []

    async def client(index: int) -> None:
        await asyncio.sleep(index * 0.001)
        for step in range(acts):
            started = time.perf_counter()
            done = await batcher.act(f"episode {index}", {"step": step}, caller=f"session-{index}")
            assert done.error is None and done.decoded == f"answer episode {index}"
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(think_s)

    await asyncio.gather(*(client(i) for i in range(clients)))
    return latencies


def run(clients: int, acts: int, max_wait_ms: float, caller_aware: bool = True) -> tuple[list[int], list[float]]:
    async def main() -> tuple[list[int], list[float]]:
        model = TimedModel()
        batcher = Batcher(model, max_batch=64, max_wait_ms=max_wait_ms)
        batcher.start()
        try:
            if caller_aware:
                latencies = await closed_loop(batcher, clients, acts)
            else:  # stateless acts: nobody is expected back
                async def stateless(index: int) -> float:
                    started = time.perf_counter()
                    await batcher.act(f"episode {index}", {})
                    return time.perf_counter() - started
                latencies = [await stateless(i) for i in range(acts)]
        finally:
            await batcher.stop()
        return model.sizes, latencies

    return asyncio.run(main())


def test_a_lone_client_never_waits_for_the_window():
    sizes, latencies = run(clients=1, acts=6, max_wait_ms=500)
    assert sizes == [1] * 6
    # a 500 ms window would show in every act; the act itself takes 50 ms
    assert max(latencies) < MODEL_S + 0.25


def test_a_stateless_caller_is_not_waited_for():
    sizes, latencies = run(clients=1, acts=4, max_wait_ms=500, caller_aware=False)
    assert sizes == [1] * 4 and max(latencies) < MODEL_S + 0.25


def test_concurrent_sessions_are_gathered_into_one_batch():
    # the first act goes alone (nobody is expected yet); the 7 that queued behind it wait for the first
    # client to come back, and from then on all 8 act together (the last batch: the first client is done)
    sizes, _ = run(clients=8, acts=6, max_wait_ms=200)
    assert sum(sizes) == 48
    assert sizes[0] == 1 and sizes[1:-1] == [8] * 5 and sizes[-1] == 7, sizes


def test_without_a_window_the_clients_settle_into_batches_that_take_turns():
    sizes, _ = run(clients=8, acts=6, max_wait_ms=0)
    assert sum(sizes) == 48 and sizes[:2] == [1, 7]
    assert any(size < 8 for size in sizes[1:-1]), sizes


def test_a_closed_session_is_not_waited_for():
    async def main() -> list[float]:
        batcher = Batcher(TimedModel(), max_batch=64, max_wait_ms=500)
        batcher.start()
        try:
            await asyncio.gather(batcher.act("a", {}, caller="a"), batcher.act("b", {}, caller="b"))
            batcher.forget("b")  # b's session was closed; a acts on alone
            latencies = []
            for _ in range(2):
                started = time.perf_counter()
                await batcher.act("a", {}, caller="a")
                latencies.append(time.perf_counter() - started)
            return latencies
        finally:
            await batcher.stop()

    assert max(asyncio.run(main())) < MODEL_S + 0.25
