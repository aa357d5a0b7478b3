"""Encode once, fan out: one producer, many consumers, none of which can slow the others.

A `FanOut[T]` hands every published item to every `Subscription`. Each subscription owns a
bounded queue; `publish` never waits, so the session's frame loop runs at its own pace whatever
the viewers do. What a full queue does depends on the stream:

- plain items (audio): drop the oldest. A slow reader loses the stalest audio first and stays
  close to live.
- keyframe streams (H.264 video; pass `is_keyframe`): a decoder cannot use a P-frame whose
  predecessor was dropped, so on overflow the queue is emptied and the subscriber skips to the
  next keyframe. A new subscriber starts at a keyframe for the same reason.

`flush()` empties every subscriber's queue at once (an interrupt: what was queued is speech
that must not play any more). A keyframe stream's subscribers then wait for the next keyframe,
which the producer must send right away (the live stream forces one).

Everything runs on the event loop (publish, flush and get); no locks are needed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class FanOutClosed(Exception):
    """The producer has stopped; no more items will come."""


class Subscription(Generic[T]):
    """One consumer's bounded view of a `FanOut`."""

    def __init__(
        self,
        fanout: FanOut[T],
        max_queue: int,
        is_keyframe: Callable[[T], bool] | None,
    ) -> None:
        if max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        self._fanout = fanout
        self.max_queue = max_queue
        self._is_keyframe = is_keyframe
        self._items: deque[T] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        # Video subscribers wait for a keyframe before their first item and after an overflow.
        self._need_keyframe = is_keyframe is not None
        self.received = 0  # items queued for this subscriber
        self.dropped = 0  # items published but never delivered (overflow, keyframe wait, flush)
        self.flushed = 0  # of those, items dropped by `FanOut.flush`
        self.flushes = 0  # `FanOut.flush` calls seen (readers holding items of their own check it)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return len(self._items)

    def _offer(self, item: T) -> None:
        """Called by `FanOut.publish`: queue `item` under this subscription's overflow policy."""
        if self._closed:
            return
        if self._is_keyframe is not None:
            if self._need_keyframe:
                if not self._is_keyframe(item):
                    self.dropped += 1
                    return
                self._need_keyframe = False
            if len(self._items) >= self.max_queue:
                # The queued P-frames are useless without the ones about to be lost: drop them
                # all and resume at the next keyframe (at most one GOP later).
                self.dropped += len(self._items) + 1
                self._items.clear()
                self._need_keyframe = not self._is_keyframe(item)
                if self._need_keyframe:
                    return
        elif len(self._items) >= self.max_queue:
            self._items.popleft()
            self.dropped += 1
        self._items.append(item)
        self.received += 1
        self._wake()

    def _flush(self) -> None:
        """Drop every queued item; a keyframe stream resumes at its next keyframe."""
        if self._closed:
            return
        n = len(self._items)
        self.flushes += 1
        self._items.clear()
        self.dropped += n
        self.flushed += n
        if self._is_keyframe is not None:
            # The next P-frame would reference pictures this subscriber never decoded.
            self._need_keyframe = True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def get_nowait(self) -> T | None:
        """The next queued item, or None if none is queued (raises FanOutClosed when closed)."""
        if self._items:
            return self._items.popleft()
        if self._closed:
            raise FanOutClosed("stream closed")
        return None

    async def get(self) -> T:
        """Wait for the next item; raises FanOutClosed once the stream or this subscription ends.

        Items already queued when the producer stops are still delivered.
        """
        while True:
            item = self.get_nowait()
            if item is not None:
                return item
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def close(self) -> None:
        """Leave the fan-out; a pending `get` raises FanOutClosed."""
        self._fanout.unsubscribe(self)

    def _end(self, discard: bool) -> None:
        self._closed = True
        if discard:
            self._items.clear()
        self._wake()


class FanOut(Generic[T]):
    """Delivers each published item to every current subscriber, without ever blocking."""

    def __init__(self, is_keyframe: Callable[[T], bool] | None = None) -> None:
        self._is_keyframe = is_keyframe
        self._subs: list[Subscription[T]] = []
        self._closed = False
        self.published = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, max_queue: int) -> Subscription[T]:
        """A new consumer with a queue of at most `max_queue` items."""
        sub = Subscription(self, max_queue, self._is_keyframe)
        if self._closed:
            sub._end(discard=True)
        else:
            self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription[T]) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        sub._end(discard=True)

    def publish(self, item: T) -> None:
        """Queue `item` for every subscriber; O(subscribers), never waits."""
        if self._closed:
            raise FanOutClosed("publish after close")
        self.published += 1
        for sub in self._subs:
            sub._offer(item)

    def flush(self) -> int:
        """Drop what every subscriber has queued (not yet read); returns how many items.

        Items published after this are delivered as usual, from the next keyframe on for a
        keyframe stream, so the producer should publish one next.
        """
        before = sum(sub.queued for sub in self._subs)
        for sub in self._subs:
            sub._flush()
        return before

    def close(self) -> None:
        """No more items: subscribers drain what they have, then get FanOutClosed."""
        self._closed = True
        subs, self._subs = self._subs, []
        for sub in subs:
            sub._end(discard=False)
