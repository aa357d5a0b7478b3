"""`MediaActor` as a Ray actor: the one module of the cluster that Ray's workers import.

The class adds what only Ray knows (the node the actor runs on) to the plain actor, and
quiets the worker process's logging to the settings' level.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from avatarcast.cluster.actor import MediaActor
from avatarcast.logmask import install_on_root
from avatarcast.settings import Settings


class RayMediaActor(MediaActor):
    def __init__(self, settings: Settings, name: str) -> None:
        logging.basicConfig(
            level=settings.log_level.upper(),
            format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
        )
        install_on_root()
        super().__init__(settings, name)
        import ray

        self.node = ray.get_runtime_context().get_node_id()

    async def report(self) -> dict[str, Any]:
        return {**(await super().report()), "Node": self.node}


@functools.cache
def remote_class() -> Any:
    """The Ray actor class (made once per process)."""
    import ray

    return ray.remote(RayMediaActor)
