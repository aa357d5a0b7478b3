"""Which API key may use an avatar (**ours**).

`AssetVirtualmanKey` is the asset name `<VirtualmanName>-<8 hex>`, the hex being the first 8 of
sha256(appkey), so two keys' avatars never collide by name. An avatar made through the API
belongs to the key that made it: only that key sees its task, and `check_asset_access` (called
by createsessionbyasset) answers "no avatar" to every other key. Avatars without an owner (the
built-in one, those built with the CLI) are usable by every key.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from avatarcast.avatars.build_jobs import shared_store
from avatarcast.errors import UnknownAvatarError


def asset_key_for(appkey: str, name: str) -> str:
    """`<VirtualmanName>-<first 8 hex of sha256(appkey)>` (see the module's scoping rule)."""
    return f"{name}-{hashlib.sha256(appkey.encode()).hexdigest()[:8]}"


def asset_owner(db_path: Path, asset_key: str) -> str | None:
    """The key that made `asset_key` through the API, or None (built-in, CLI-built)."""
    return shared_store(db_path).owner_of(asset_key)


def check_asset_access(db_path: Path, appkey: str, asset_key: str) -> None:
    """UnknownAvatarError if `asset_key` was made through the API by another key."""
    owner = shared_store(db_path).owner_of(asset_key)
    if owner is not None and owner != appkey:
        raise UnknownAvatarError(f"AssetVirtualmanKey: no avatar {asset_key!r}")
