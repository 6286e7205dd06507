"""Shared behaviour of the entry points: user errors become one line and exit code 2."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from src.errors import HDDError


def report_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; an HDDError prints ``error: ...`` lines on stderr and exits (2 by default)."""
    try:
        return fn(*args)
    except HDDError as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            print(f"error: {line}", file=sys.stderr)
        sys.exit(getattr(exc, "exit_code", 2))
