"""Collecting config problems, and what a class's constructor defaults to.

Lower than every package that declares its own settings check (methods, losses, terms), so
each can report its problems in the one format validation prints.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from src.errors import CheckpointError, ConfigError


class Problems:
    """Collects one message per invalid value; ``raise_if_any`` reports them all at once."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, line: str) -> None:
        """Record a problem."""
        self.lines.append(line)

    def attempt(self, build: Callable[[], Any]) -> Any:
        """Run ``build``; a ConfigError (or CheckpointError) becomes a problem, None returned."""
        try:
            return build()
        except (ConfigError, CheckpointError) as exc:
            self.lines.extend(str(exc).splitlines())
            return None

    def int_at_least(self, value: object, key: str, low: int) -> None:
        """``value`` must be an integer >= ``low``."""
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            self.add(f"{key} must be an integer >= {low}, got {value!r}")

    def positive(self, value: object, key: str) -> None:
        """``value`` must be a number > 0."""
        if not is_number(value) or not value > 0:
            self.add(f"{key} must be a number > 0, got {value!r}")

    def in_range(self, value: object, key: str, low: float, high: float, closed: str) -> None:
        """``value`` must lie in the interval; ``closed`` names its closed ends ('l', 'r')."""
        ok = is_number(value) and (value >= low if "l" in closed else value > low)
        ok = ok and (value <= high if "r" in closed else value < high)
        if not ok:
            interval = (
                f"{'[' if 'l' in closed else '('}{low}, {high}{']' if 'r' in closed else ')'}"
            )
            self.add(f"{key} must lie in {interval}, got {value!r}")

    def one_of(self, value: object, key: str, allowed: tuple) -> None:
        """``value`` must be one of ``allowed``."""
        if value not in allowed:
            self.add(f"{key} must be one of {', '.join(map(str, allowed))}; got {value!r}")

    def raise_if_any(self) -> None:
        """Raise one ConfigError holding every problem, one per line."""
        if self.lines:
            raise ConfigError("\n".join(self.lines))


def is_number(value: object) -> bool:
    """A real number (int or float), not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def constructor_defaults(cls: type) -> dict[str, Any]:
    """The keyword defaults of ``cls``'s constructor, through ``**kwargs`` into its bases."""
    defaults: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        for name, param in inspect.signature(init).parameters.items():
            if param.default is not inspect.Parameter.empty:
                defaults[name] = param.default
    return defaults
