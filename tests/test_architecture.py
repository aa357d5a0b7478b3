"""The import rules of docs/architecture.md, checked over every import statement of the package
(top level, inside functions, under TYPE_CHECKING: a deferred import is still an arrow).

- no cycle between modules;
- the stages (`speech`, `render`, `avatars`, `stream`, `engine`) import neither `sessions`
  nor `api` (nor the command line or the clients): the media path knows nothing of HTTP or of
  the session registry;
- `render` does not import `avatars` (avatars use the renderer, not the reverse);
- `stream` does not import `engine` (outputs and encoders consume packets, not the engine);
- `sessions` does not import `api`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import avatarcast

ROOT = Path(avatarcast.__file__).parent
STAGES = ("speech", "render", "avatars", "stream", "engine", "media")
UPPER = ("sessions", "api", "cli", "client")


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = ("avatarcast", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Modules of the package that `name` imports, resolved to the module (not the symbol)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" for a in node.names] + [module]
            # `from pkg import mod` names a module; `from mod import symbol` names `mod`
            targets = [t for t in targets if t in MODULES][:1] or [module]
        else:
            continue
        out.update(t for t in targets if t.startswith("avatarcast") and t in MODULES)
    out.discard(name)
    return out


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _top(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles() -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return found


def _arrows(frm: tuple[str, ...], to: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{a} -> {b}" for a, bs in GRAPH.items() for b in bs if _top(a) in frm and _top(b) in to
    )


def test_the_rules_see_the_package() -> None:
    # The checker itself: it finds the modules and resolves their arrows.
    assert len(MODULES) > 80
    assert "avatarcast.engine.timeline" in GRAPH["avatarcast.engine.host"]
    assert "avatarcast.sessions.handle" in GRAPH["avatarcast.sessions.drive"]


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_stages_know_no_sessions_and_no_api() -> None:
    assert _arrows(STAGES, UPPER) == []


def test_render_does_not_import_avatars() -> None:
    assert _arrows(("render",), ("avatars",)) == []


def test_stream_does_not_import_the_engine() -> None:
    assert _arrows(("stream",), ("engine",)) == []


def test_sessions_do_not_import_the_api() -> None:
    assert _arrows(("sessions",), ("api",)) == []


def test_a_planted_cycle_would_be_found() -> None:
    GRAPH["avatarcast.media"].add("avatarcast.engine.host")
    try:
        assert any("avatarcast.media" in c for c in _cycles())
        assert "avatarcast.media -> avatarcast.engine.host" not in _arrows(STAGES, UPPER)
    finally:
        GRAPH["avatarcast.media"].discard("avatarcast.engine.host")
