"""Fan-out: a healthy subscriber gets everything, a stalled one stays bounded, nobody waits."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from avatarcast.stream.fanout import FanOut, FanOutClosed


@dataclass(frozen=True)
class Pic:
    n: int
    key: bool


def test_stalled_subscriber_is_bounded_and_healthy_one_gets_every_item() -> None:
    async def main() -> None:
        fan: FanOut[int] = FanOut()
        healthy = fan.subscribe(max_queue=4)
        stalled = fan.subscribe(max_queue=4)
        got: list[int] = []

        async def reader() -> None:
            while True:
                try:
                    got.append(await healthy.get())
                except FanOutClosed:
                    return

        task = asyncio.create_task(reader())
        for i in range(1000):
            fan.publish(i)  # never awaits: the producer cannot be slowed by anyone
            await asyncio.sleep(0)
        fan.close()
        await asyncio.wait_for(task, 5)
        assert got == list(range(1000))
        assert healthy.dropped == 0
        assert stalled.queued == 4
        assert stalled.dropped == 996
        # drop-oldest: what is left is the newest
        assert [stalled.get_nowait() for _ in range(4)] == [996, 997, 998, 999]
        with pytest.raises(FanOutClosed):
            stalled.get_nowait()

    asyncio.run(main())


def test_keyframe_stream_starts_at_a_keyframe_and_skips_to_the_next_one_on_overflow() -> None:
    async def main() -> None:
        fan: FanOut[Pic] = FanOut(is_keyframe=lambda p: p.key)
        fan.publish(Pic(0, True))
        sub = fan.subscribe(max_queue=3)
        for n in range(1, 20):  # a GOP of 10: keyframes at 10
            fan.publish(Pic(n, n % 10 == 0))
        # Joined after frame 0: frames 1..9 are useless until keyframe 10; 10,11,12 fill the
        # queue; 13 overflows → queue emptied, skip to the next keyframe (none before 20).
        assert sub.queued == 0
        fan.publish(Pic(20, True))
        fan.publish(Pic(21, False))
        assert [sub.get_nowait(), sub.get_nowait()] == [Pic(20, True), Pic(21, False)]
        assert sub.get_nowait() is None
        assert sub.dropped == 9 + 4 + 6  # before 10; 10..13 on overflow; 14..19 waiting

    asyncio.run(main())


def test_overflow_on_a_keyframe_keeps_that_keyframe() -> None:
    fan: FanOut[Pic] = FanOut(is_keyframe=lambda p: p.key)
    sub = fan.subscribe(max_queue=2)
    for n, key in enumerate([True, False, True]):
        fan.publish(Pic(n, key))
    assert sub.get_nowait() == Pic(2, True)


def test_unsubscribe_wakes_a_waiting_reader_and_stops_delivery() -> None:
    async def main() -> None:
        fan: FanOut[int] = FanOut()
        sub = fan.subscribe(max_queue=2)
        waiting = asyncio.create_task(sub.get())
        await asyncio.sleep(0)
        sub.close()
        with pytest.raises(FanOutClosed):
            await asyncio.wait_for(waiting, 1)
        fan.publish(1)
        assert fan.subscribers == 0 and sub.queued == 0

    asyncio.run(main())


def test_close_lets_subscribers_drain_then_ends() -> None:
    async def main() -> None:
        fan: FanOut[int] = FanOut()
        sub = fan.subscribe(max_queue=8)
        fan.publish(1)
        fan.publish(2)
        fan.close()
        assert [await sub.get(), await sub.get()] == [1, 2]
        with pytest.raises(FanOutClosed):
            await sub.get()
        late = fan.subscribe(max_queue=1)
        assert late.closed
        with pytest.raises(FanOutClosed):
            fan.publish(3)

    asyncio.run(main())


def test_flush_empties_every_queue_and_video_resumes_at_a_keyframe() -> None:
    async def main() -> None:
        audio: FanOut[int] = FanOut()
        video: FanOut[Pic] = FanOut(is_keyframe=lambda p: p.key)
        a1, a2 = audio.subscribe(max_queue=10), audio.subscribe(max_queue=10)
        v1 = video.subscribe(max_queue=10)
        for n in range(6):
            audio.publish(n)
            video.publish(Pic(n, key=n == 0))
        assert await a1.get() == 0 and (await v1.get()).n == 0
        assert audio.flush() == 5 + 6 and video.flush() == 5
        assert (a1.queued, a2.queued, v1.queued) == (0, 0, 0)
        assert (a1.flushed, a2.flushed, v1.flushed) == (5, 6, 5)
        assert a1.flushes == a2.flushes == v1.flushes == 1
        for n in range(6, 9):
            audio.publish(n)
            video.publish(Pic(n, key=n == 7))  # a P-frame, then the forced keyframe
        assert [a1.get_nowait(), a1.get_nowait()] == [6, 7]  # audio: the next item on
        first = await v1.get()
        assert (first.n, first.key) == (7, True)  # 6 referenced what the flush dropped
        assert v1.dropped == 5 + 1
        assert (await v1.get()).n == 8

    asyncio.run(main())
