"""Paper-style tables from run directories: rows dataset/IPC, columns method x loss; one
more table per architecture for runs evaluated across a pool."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from omegaconf.errors import OmegaConfBaseException  # noqa: E402

from src.errors import ConfigError, HDDError  # noqa: E402
from src.io.atomic import atomic_path, atomic_write_text  # noqa: E402
from src.io.hydra_callbacks import FAILED_FILE  # noqa: E402
from src.pipelines import arch_plot  # noqa: E402
from src.viz.bars import grouped_bars  # noqa: E402

RESULTS_FILE = "results.json"

COLUMN_ORDER = ["random real", "DM", "DM+HDD", "IDM", "IDM+HDD"]


def collect(
    dirs: list[Path], allow_empty: bool = False, architecture: str | None = None
) -> dict[tuple[str, int], dict[str, list[float]]]:
    """Accuracies per (dataset, ipc) and column, pooled over every run found under ``dirs``.

    ``architecture``: the evaluations of that network in runs evaluated across a pool
    (``results.json["architectures"]``) instead of each run's own evaluation.
    """
    cells: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    baseline_seen: set[tuple[str, int, object]] = set()
    found = 0
    for root in dirs:
        for path, r in run_results(root):
            try:
                row = (r["dataset"], int(r["ipc"]))
            except (KeyError, TypeError, ValueError):
                raise ConfigError(f"'{path}' is not a results file of this project") from None
            found += 1
            evaluated = evaluations(r, architecture)
            if "distilled" in evaluated:
                cells[row][r["label"]] += evaluated["distilled"]["accuracies"]
            # Every run of a seed evaluates the same baseline set; count each seed once.
            seen = (*row, r.get("seed"))
            if "random_real" in evaluated and seen not in baseline_seen:
                baseline_seen.add(seen)
                cells[row]["random real"] += evaluated["random_real"]["accuracies"]
    if not found and not allow_empty:
        raise ConfigError(f"no {RESULTS_FILE} under {', '.join(map(str, dirs))}")
    return {row: dict(cols) for row, cols in cells.items()}


def run_results(root: Path) -> Iterator[tuple[str, dict]]:
    """(where, results) of every run under a directory, or in a study record (a .json file)."""
    from src.pipelines.study import recorded_runs

    if not root.exists():
        raise ConfigError(f"'{root}' does not exist")
    if root.is_file():
        yield from ((f"{root}: {key}", r) for key, r in recorded_runs(root))
        return
    for path in sorted(root.rglob(RESULTS_FILE)):
        try:
            yield str(path), json.loads(path.read_text())
        except json.JSONDecodeError:
            raise ConfigError(f"'{path}' is not a results file of this project") from None


def evaluations(results: dict, architecture: str | None) -> dict:
    """A run's ``distilled`` / ``random_real`` evaluations: its own, or on ``architecture``."""
    source = results if architecture is None else results.get("architectures", {})
    source = source if architecture is None else source.get(architecture, {})
    return {k: source[k] for k in ("distilled", "random_real") if k in source}


def architectures(dirs: list[Path]) -> list[str]:
    """Every architecture some run under ``dirs`` was evaluated across, in first-seen order."""
    names: dict[str, None] = {}
    for root in dirs:
        for _, results in run_results(root):
            if isinstance(results, dict):
                names |= dict.fromkeys(results.get("architectures", {}))
    return list(names)


def robust_tables(dirs: list[Path]) -> str:
    """Each run evaluated across a pool: its architectures with the robust scores."""
    from src.pipelines.cross_arch import cross_table

    text = ""
    for _, r in (found for root in dirs for found in run_results(root)):
        if "architectures" in r:
            title = f"**{r['label']}**, {r['dataset']} IPC {r['ipc']}, seed {r.get('seed')}"
            text += "\n\n" + cross_table(r["architectures"], title)
    return text


def method_report(records: list[Path], out: Path | None, name: str) -> str:
    """The method x loss tables of study records, and their chart."""
    from src.pipelines import method_table

    cells: dict = {}
    for path in records:
        if not path.is_file():
            raise ConfigError(f"--by-method reads study records (.json files); '{path}' is not one")
        for key, rows in method_table.collect_cells(path).items():
            for method, cols in rows.items():
                for col, values in cols.items():
                    cells.setdefault(key, {}).setdefault(method, {}).setdefault(col, []).extend(
                        values
                    )
    table = method_table.to_markdown(cells)
    if out is not None:
        atomic_write_text(out / f"{name}.md", table + "\n")
        method_table.save_chart(out / f"{name}.png", cells)
    return table


def runs_report(records: list[Path], out: Path | None, name: str) -> str:
    """The per-run tables of study records (src/pipelines/run_table.py)."""
    from src.pipelines import run_table

    for path in records:
        if not path.is_file():
            raise ConfigError(f"--runs reads study records (.json files); '{path}' is not one")
    table = "\n\n".join(run_table.to_markdown(path) for path in records)
    if out is not None:
        atomic_write_text(out / f"{name}.md", table + "\n")
    return table


def settings_report(
    records: list[Path],
    out: Path | None,
    name: str,
    keys: list[str],
    pivot: str | None = None,
    diagnostics: bool = False,
    readme: Path | None = None,
) -> str:
    """The settings tables of one study record (src/pipelines/settings_table.py): written into
    the block named ``name`` of ``readme``, or else to ``<out>/<name>.md``."""
    from src.pipelines import settings_table

    if len(records) != 1 or not records[0].is_file():
        raise ConfigError("--table reads one study record (a .json file)")
    if pivot:
        table = settings_table.pivot_markdown(records[0], keys, pivot)
    else:
        table = settings_table.to_markdown(records[0], keys, diagnostics)
    if readme is not None:
        replace_block(readme, name, table)  # a block of a file, not a file of its own
    elif out is not None:
        atomic_write_text(out / f"{name}.md", table + "\n")
    return table


def replace_block(path: Path, name: str, text: str) -> None:
    """Replace what lies between ``<!-- name -->`` and ``<!-- /name -->`` in a file."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    content = path.read_text()
    if begin not in content or end not in content:
        raise ConfigError(f"'{path}' has no block {begin} ... {end}")
    start, stop = content.index(begin) + len(begin), content.index(end)
    atomic_write_text(path, content[:start] + "\n" + text + "\n" + content[stop:])


def collect_unfinished(dirs: list[Path]) -> dict[tuple[str, int], dict[str, dict[str, int]]]:
    """Jobs without results per (dataset, ipc) and column: ``failed`` (with a FAILED_FILE,
    written by a sweep job that stopped on an error) and ``missing`` (a Hydra job directory
    with neither file: killed, or still running)."""
    found: dict = defaultdict(lambda: defaultdict(lambda: {"failed": 0, "missing": 0}))
    for root in (d for d in dirs if d.is_dir()):
        for job in sorted({p.parent.parent for p in root.rglob(".hydra/config.yaml")}):
            if (job / RESULTS_FILE).is_file():
                continue
            failed = job / FAILED_FILE
            if failed.is_file():
                info = json.loads(failed.read_text())
                kind = "failed"
            else:
                try:
                    info = job_identity(OmegaConf.load(job / ".hydra" / "config.yaml"))
                except (OSError, yaml.YAMLError):
                    continue  # not a readable job record: nothing to count
                kind = "missing"
            if info.get("dataset") is None:
                continue
            found[(info["dataset"], int(info["ipc"]))][info["label"]][kind] += 1
    return {row: {c: dict(v) for c, v in cols.items()} for row, cols in found.items()}


def job_identity(cfg: DictConfig) -> dict:
    """Dataset, IPC and column label of a job from its config (for jobs without results);
    the label is the one the run would write, asked of its method and loss classes."""
    from src.pipelines.components import run_label

    try:
        return {"dataset": cfg.dataset.name, "ipc": int(cfg.ipc), "label": run_label(cfg)}
    except (AttributeError, KeyError, TypeError, ValueError, OmegaConfBaseException, HDDError):
        return {}  # a config without these keys: not a distillation job


def columns(cells: dict, unfinished: dict | None = None) -> list[str]:
    """Columns present, in the paper's order."""
    present = {c for cols in cells.values() for c in cols}
    present |= {c for cols in (unfinished or {}).values() for c in cols}
    return [c for c in COLUMN_ORDER if c in present] + sorted(present - set(COLUMN_ORDER))


def _unfinished_text(counts: dict[str, int] | None) -> str:
    counts = counts or {}
    return ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)


def _stats(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.pstdev(values) if len(values) > 1 else 0.0


def to_markdown(cells: dict, unfinished: dict | None = None) -> str:
    """| dataset | IPC | column... | with mean ± std (n) cells; jobs without results are
    counted in their cell (``1 failed``, ``2 missing``)."""
    unfinished = unfinished or {}
    cols = columns(cells, unfinished)
    lines = ["| dataset | IPC | " + " | ".join(cols) + " |", "|---|---|" + "---|" * len(cols)]
    for key in sorted(set(cells) | set(unfinished)):
        row, extra = cells.get(key, {}), unfinished.get(key, {})
        out = []
        for c in cols:
            text = _unfinished_text(extra.get(c))
            if c in row:
                mean, std = _stats(row[c])
                cell = f"{mean:.2f} ± {std:.2f} ({len(row[c])})"
                out.append(f"{cell}; {text}" if text else cell)
            else:
                out.append(text or "—")
        lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def to_csv(cells: dict) -> str:
    """One line per (dataset, ipc, column) with mean, std and count."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["dataset", "ipc", "method", "mean", "std", "n"])
    for (dataset, ipc), row in sorted(cells.items()):
        for c in columns(cells):
            if c in row:
                mean, std = _stats(row[c])
                writer.writerow([dataset, ipc, c, f"{mean:.4f}", f"{std:.4f}", len(row[c])])
    return buf.getvalue()


def save_bar_chart(path: Path, cells: dict) -> Path:
    """Grouped bars (one group per dataset/IPC) with std error bars."""
    cols = columns(cells)
    rows = sorted(cells)
    fig, ax = plt.subplots(figsize=(max(4, 1.5 * len(rows) * len(cols) / 2), 4))
    grouped_bars(
        ax,
        [f"{d}\nIPC {n}" for d, n in rows],
        cols,
        lambda i, c: _stats(cells[rows[i]][c]) if c in cells[rows[i]] else None,
    )
    ax.set_ylabel("test accuracy (%)")
    ax.legend(fontsize=8)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def run_report(
    dirs: list[Path],
    out: Path | None = None,
    name: str = "report",
    by_method: bool = False,
    runs: bool = False,
) -> str:
    """Build the table; with ``out`` also write <name>.md, .csv and .png there.

    ``dirs``: run or multirun directories, or study records (src/pipelines/study.py);
    ``by_method``: the records' method x loss tables instead (<name>.md and .png);
    ``runs``: the records' runs one by one (<name>.md).
    """
    if by_method:
        return method_report(dirs, out, name)
    if runs:
        return runs_report(dirs, out, name)
    unfinished = collect_unfinished(dirs)
    cells = collect(dirs, allow_empty=bool(unfinished))
    table = to_markdown(cells, unfinished)
    # Runs evaluated across a pool: one more table per architecture.
    for arch in architectures(dirs):
        table += f"\n\nEvaluated on {arch} (runs with eval.models):\n\n"
        table += to_markdown(collect(dirs, allow_empty=True, architecture=arch))
    table += robust_tables(dirs)
    if out is not None:
        atomic_write_text(out / f"{name}.md", table + "\n")
        atomic_write_text(out / f"{name}.csv", to_csv(cells))
        save_bar_chart(out / f"{name}.png", cells)
        runs = [r for root in dirs for _, r in run_results(root)]
        arch_plot.save_plot(runs, out / f"{name}_architectures.png")
    return table
