"""The tail every benchmark shares: its figures as one JSON object, or as aligned lines.

    from _report import report
    report(out, as_json=a.json)            # --json: one line of JSON on stdout
    report(out, as_json=True, human=True)  # JSON on stdout, the aligned lines on stderr

Scripts in benchmarks/ import it by name (they run as `python benchmarks/NAME.py`, which puts
this directory on `sys.path`).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Any


def lines(out: Mapping[str, Any], width: int = 30) -> list[str]:
    """`key: value` lines, keys right-aligned to `width`."""
    return [f"{k:>{width}}: {v}" for k, v in out.items()]


def report(out: Mapping[str, Any], *, as_json: bool, human: bool = False, width: int = 30) -> None:
    """Print `out`: JSON on stdout if `as_json`, else aligned lines on stdout; `human` also
    writes the aligned lines to stderr (for a JSON consumer that shows progress to a person)."""
    if as_json:
        print(json.dumps(out), flush=True)
        if human:
            print("\n".join(lines(out, width)), file=sys.stderr, flush=True)
    else:
        print("\n".join(lines(out, width)), flush=True)
