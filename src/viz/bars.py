"""Grouped bar charts with error bars (report tables as pictures)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from matplotlib.axes import Axes


def grouped_bars(
    ax: Axes,
    groups: Sequence[str],
    series: Sequence[str],
    cell: Callable[[int, str], tuple[float, float] | None],
) -> None:
    """One group of bars per ``groups`` entry, one bar per ``series`` with (mean, std) from
    ``cell(group index, series)`` (None: no bar), labelled for a legend."""
    width = 0.8 / max(len(series), 1)
    for j, name in enumerate(series):
        bars = [(i, cell(i, name)) for i in range(len(groups))]
        bars = [(i + j * width, stats) for i, stats in bars if stats is not None]
        xs = [x for x, _ in bars]
        ax.bar(
            xs,
            [m for _, (m, _) in bars],
            width,
            yerr=[s for _, (_, s) in bars],
            capsize=3,
            label=name,
        )
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))])
    ax.set_xticklabels(list(groups))
