"""Avatars by name. One instance per (name, size) per process, shared by every session.

Avatars cache their rendered layers (tens of MB), so sessions must share them: `load_avatar`
builds each (name, size) once, under a lock, and hands the same object to every caller.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from avatarcast.avatars.base import Avatar
from avatarcast.avatars.builtin import BuiltinAvatar
from avatarcast.errors import SettingsError, UnknownAvatarError

# name → factory(data_dir, width, height). Custom avatars (image/asset sets under data_dir)
# register here when they arrive; `available_avatars` lists what a data dir offers.
_FACTORIES: dict[str, Callable[[Path | None, int, int], Avatar]] = {
    "default": lambda _data_dir, w, h: BuiltinAvatar(w, h),
}

_instances: dict[tuple[str, int, int], Avatar] = {}
_lock = threading.Lock()


def available_avatars(data_dir: Path | None = None) -> list[str]:
    """Names `load_avatar` accepts. Hook: custom avatars found in `data_dir` join this list."""
    return sorted(_FACTORIES)


def load_avatar(
    name: str, data_dir: Path | None = None, width: int = 540, height: int = 960
) -> Avatar:
    """The shared avatar `name` at `width`×`height`; raises UnknownAvatarError if no such name."""
    factory = _FACTORIES.get(name)
    if factory is None:
        names = ", ".join(available_avatars(data_dir))
        raise UnknownAvatarError(f"unknown avatar {name!r}; available: {names}")
    key = (name, width, height)
    with _lock:  # building takes a moment: make sure only one thread does it
        avatar = _instances.get(key)
        if avatar is None:
            try:
                avatar = factory(data_dir, width, height)
            except ValueError as exc:  # an unsupported video size
                raise SettingsError(str(exc)) from exc
            _instances[key] = avatar
    return avatar
