"""A study record's runs one by one: accuracy, the published figure it is held against, wall
time, precision and budget (``python -m src.report RECORD --runs``).

For a study of single runs at the field's full budget (``experiment=study/
fashion_mnist_full_cpu``) a mean over seeds hides what matters: how long each run took, in
which precision, and how far its accuracy lies from the paper's. The published figures are
the study config's ``study.published`` (``ipc<n>`` -> run label -> accuracy), stated once
there and carried by each run's settings.
"""

from __future__ import annotations

from pathlib import Path

from src.pipelines.study import load_record

HEADER = (
    "| IPC | run | seed | accuracy (%) | published | random real | distill (h) | "
    "evaluation | iterations | precision | threads |"
)


def published(settings: dict, ipc: int, label: str) -> str:
    """The published accuracy for ``label`` at ``ipc`` named by the study config, or '—'."""
    table = ((settings.get("study") or {}).get("published") or {}).get(f"ipc{ipc}") or {}
    value = table.get(label)
    return "—" if value is None else f"{value:.1f}"


def accuracy(node: dict | None) -> str:
    """mean ± std (n networks) of an accuracy node, or '—'."""
    if not node:
        return "—"
    return f"{node['mean']:.2f} ± {node['std']:.2f} ({len(node['accuracies'])})"


def row(entry: dict) -> tuple[int, str]:
    """The sort key and Markdown row of one recorded run."""
    results, settings = entry["results"], entry["settings"]
    ipc, label = int(results["ipc"]), results["label"]
    ev = settings["eval"]
    cells = [
        str(ipc), label, str(results["seed"]), accuracy(results.get("distilled")),
        published(settings, ipc, label), accuracy(results.get("random_real")),
        f"{results['distill_seconds'] / 3600:.2f}", f"{ev['num_models']} x {ev['epochs']} epochs",
        str(settings["iterations"]), str(settings["trainer"]["precision"]),
        str(results.get("threads", "—")),
    ]  # fmt: skip
    return ipc, "| " + " | ".join(cells) + " |"


def to_markdown(record_path: Path) -> str:
    """One row per run of the record, by IPC then run name."""
    runs = load_record(record_path)["runs"]
    rows = sorted(row(entry) + (key,) for key, entry in runs.items())
    lines = [HEADER, "|" + "---|" * HEADER.count(" | ") + "---|"]
    lines += [text for _, text, _ in rows]
    return "\n".join(lines)
