"""What every route needs, built once by the app factory and passed to each route module."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from avatarcast.api.auth import NonceBook, verify
from avatarcast.settings import Settings
from avatarcast.stream.clock import Clock, MonotonicClock

if TYPE_CHECKING:
    from avatarcast.sessions.registry import SessionRegistry
    from avatarcast.sessions.store import Store


@dataclass
class ApiContext:
    settings: Settings
    store: Store
    manager: SessionRegistry
    clock: Clock = field(default_factory=MonotonicClock)  # timers, pacing
    now_unix: Callable[[], float] = time.time  # signature timestamps, usage records
    nonces: NonceBook = field(default_factory=NonceBook)  # setting replay_nonce

    def authenticate(self, query: Mapping[str, str]) -> str:
        """Check `appkey`, `timestamp`, `signature` of a request's query; return the appkey.

        With the setting `replay_nonce`, also its `nonce` (each signed URL is used once).
        Raises AuthError (wire code 100005).
        """
        now = self.now_unix()
        appkey = verify(query, self.store.accesstoken_of, now)
        if self.settings.replay_nonce:
            self.nonces.use(appkey, query, now)
        return appkey
