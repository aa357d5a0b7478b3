"""Avatars by name. One instance per (name, size) per process, shared by every session.

Avatars cache their rendered layers (tens of MB), so sessions must share them: `load_avatar`
builds each (name, size) once, under a lock, and hands the same object to every caller.

"default" is the built-in avatar; any other name is a custom avatar built into
`<data_dir>/avatars/<name>/` (see `avatars.asset`). A custom avatar's shared instance is
keyed by its manifest's modification time too, so deleting and rebuilding a name serves the
new avatar without a restart.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from avatarcast.avatars.base import Avatar
from avatarcast.avatars.builtin import BuiltinAvatar
from avatarcast.errors import AvatarcastError, AvatarLoadError, SettingsError, UnknownAvatarError

# name → factory(data_dir, width, height) for avatars that need no files.
_FACTORIES: dict[str, Callable[[Path | None, int, int], Avatar]] = {
    "default": lambda _data_dir, w, h: BuiltinAvatar(w, h),
}

_instances: dict[tuple[str, int, int, int], Avatar] = {}
_lock = threading.Lock()


def available_avatars(data_dir: Path | None = None) -> list[str]:
    """Names `load_avatar` accepts: the built-in ones and the custom ones in `data_dir`."""
    from avatarcast.avatars.asset import list_assets

    return sorted(set(_FACTORIES) | set(list_assets(data_dir)))


def load_avatar(
    name: str, data_dir: Path | None = None, width: int = 540, height: int = 960
) -> Avatar:
    """The shared avatar `name` at `width`×`height` (a video avatar: at its built size, so
    callers take the size from the avatar they get).

    Raises UnknownAvatarError if no such name, AvatarLoadError if its files are damaged,
    SettingsError for a size it cannot render."""
    factory = _FACTORIES.get(name)
    stamp = 0
    if factory is None:
        custom = _custom_path(name, data_dir)
        if custom is None:
            names = ", ".join(available_avatars(data_dir))
            raise UnknownAvatarError(f"unknown avatar {name!r}; available: {names}")
        path, stamp = custom
        factory = _custom_loader(name, path)
        width, height = native_size(path) or (width, height)
    key = (name, width, height, stamp)
    with _lock:  # building takes a moment: make sure only one thread does it
        avatar = _instances.get(key)
        if avatar is None:
            try:
                avatar = factory(data_dir, width, height)
            except ValueError as exc:  # an unsupported video size
                raise SettingsError(str(exc)) from exc
            except AvatarLoadError:
                raise
            except (AvatarcastError, OSError) as exc:
                raise AvatarLoadError(f"cannot load avatar {name!r}: {exc}") from exc
            # a rebuilt custom avatar replaces its old instance (and frees its caches)
            for old in [k for k in _instances if k[:3] == key[:3]]:
                del _instances[old]
            _instances[key] = avatar
    return avatar


def native_size(path: Path) -> tuple[int, int] | None:
    """The one size a custom avatar renders at (video avatars: their built size), or None if
    it renders at any size of its aspect (photo avatars) or the manifest is unreadable (the
    loader then reports what is wrong)."""
    import json

    try:
        manifest = json.loads((path / "manifest.json").read_text("utf-8"))
        if manifest.get("kind") != "video":
            return None
        return int(manifest["size"]["width"]), int(manifest["size"]["height"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _custom_path(name: str, data_dir: Path | None) -> tuple[Path, int] | None:
    """The asset directory of custom avatar `name` and its manifest's mtime, if it exists."""
    from avatarcast.avatars.asset import NAME_RE, avatars_dir

    if data_dir is None or not NAME_RE.match(name):
        return None
    path = avatars_dir(data_dir) / name
    try:
        return path, (path / "manifest.json").stat().st_mtime_ns
    except OSError:
        return None


def _custom_loader(name: str, path: Path) -> Callable[[Path | None, int, int], Avatar]:
    def build(_data_dir: Path | None, width: int, height: int) -> Avatar:
        from avatarcast.avatars.asset import load_asset
        from avatarcast.avatars.custom import CustomAvatar

        return CustomAvatar(name, load_asset(path), width, height)

    return build


def forget_avatar(name: str) -> None:
    """Drop the shared instances of `name` (after deleting it)."""
    with _lock:
        for key in [k for k in _instances if k[0] == name]:
            del _instances[key]
