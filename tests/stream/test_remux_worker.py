"""The muxers' writer thread (`SerialWorker`): fed jobs run in order without a round trip per
job, at most `max_in_flight` wait, and only results that say something come back."""

from __future__ import annotations

import asyncio
import threading

from avatarcast.stream.remux import SerialWorker


def test_feed_keeps_order_bounds_the_backlog_and_returns_only_news() -> None:
    async def main() -> None:
        worker = SerialWorker("test-writer", max_in_flight=2)
        gate = threading.Event()
        ran: list[int] = []
        news: list[str] = []

        def job(i: int) -> str | None:
            if i == 0:
                gate.wait(10)  # a write that hangs
            ran.append(i)
            return f"event {i}" if i % 3 == 0 else None

        await worker.feed(lambda: job(0), news.append)
        await worker.feed(lambda: job(1), news.append)  # two pending: still room for none
        assert worker.pending == 2
        third = asyncio.ensure_future(worker.feed(lambda: job(2), news.append))
        await asyncio.sleep(0.2)
        assert not third.done(), "a third job was queued behind a hung write"
        gate.set()
        await asyncio.wait_for(third, 5)
        for i in range(3, 10):
            await worker.feed(lambda i=i: job(i), news.append)
        done = worker.submit(lambda: "flushed")  # runs after every fed job
        assert await asyncio.wait_for(done, 5) == "flushed"
        await asyncio.sleep(0.05)  # results are handed to the loop with call_soon_threadsafe
        assert ran == list(range(10))
        assert news == ["event 0", "event 3", "event 6", "event 9"]
        assert worker.pending == 0
        worker.close()
        assert worker.join(5)

    asyncio.run(asyncio.wait_for(main(), 30))
