"""The curvature study's diagnostic picture: levels and centroid shares of one class.

``python -m bench.curvature_figure [--ipc 1] [--seed 0] [--cls 0] [--rows ROW ...]``

For each row (finished runs of ``bench.curvature`` under ``--out``), one panel pair: the
histogram of the real features' levels under the row's lift with the synthetic images'
levels at the end of the run marked, and each real sample's share of the Lorentz centroid
against its level. The features come from the run's own geometry probe (the seeded random
network of its diagnostics). Writes ``bench/results/curvature_geometry.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.curvature import DM_ROW, NAME, RELEASED, rows_for, run_dir  # noqa: E402
from src.data.factorize import expand  # noqa: E402
from src.hyperbolic import distance_to_origin, lift, lorentz_centroid  # noqa: E402
from src.hyperbolic.diagnostics import centroid_shares  # noqa: E402
from src.io import atomic_path, load_distilled  # noqa: E402
from src.pipelines.compare import compose_distill  # noqa: E402
from src.pipelines.components import load_data  # noqa: E402
from src.pipelines.diagnostics import geometry_probe  # noqa: E402
from src.pipelines.distill import DISTILLED_FILE  # noqa: E402

DEFAULT_ROWS = [f"{RELEASED}, k=1", "expmap, exact, k=1", "project, k=1"]


def class_view(cfg, directory: Path, cls: int) -> dict:
    """Real levels and shares, and synthetic levels, of class ``cls`` of one finished run."""
    saved = load_distilled(directory / DISTILLED_FILE)
    probe = geometry_probe(cfg, *load_data(cfg.dataset, train=True))
    k, kind, cap = probe.lift["k"], probe.lift["kind"], probe.lift["max_radius"]
    probe.measure(saved.images, saved.labels)  # embeds the real sample
    images, labels = expand(saved.images, saved.labels, saved.factor)
    syn = probe.embed(images[labels == cls], "cpu")
    x_real = lift(probe.real[cls], k, kind, cap)
    return {
        "real_levels": distance_to_origin(x_real, k),
        "shares": centroid_shares(x_real, k),
        "centroid_level": float(distance_to_origin(lorentz_centroid(x_real, k), k)),
        "syn_levels": distance_to_origin(lift(syn, k, kind, cap), k),
    }


def main(argv: list[str] | None = None) -> None:
    """Draw the panels of the listed rows that have a finished run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ipc", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cls", type=int, default=0, help="the class shown")
    parser.add_argument("--rows", nargs="+", default=DEFAULT_ROWS)
    parser.add_argument("--out", default=f"outputs/bench/{NAME}")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    specs = rows_for(args.ipc, [])
    base = ["experiment=fashion_mnist_bench", "logger=none", "geometry.enabled=false"]
    views = {}
    for row in args.rows:
        if row == DM_ROW or row not in specs:
            raise SystemExit(f"no HDD row '{row}' in the study; choose from {list(specs)[1:]}")
        directory = run_dir(Path(args.out), args.ipc, row, args.seed)
        if (directory / DISTILLED_FILE).is_file():
            overrides = [*base, f"ipc={args.ipc}", *specs[row][2], f"seed={args.seed}"]
            views[row] = class_view(compose_distill(overrides), directory, args.cls)
    if not views:
        raise SystemExit(f"none of the rows has a finished run under {args.out}")
    fig, axes = plt.subplots(2, len(views), figsize=(4.2 * len(views), 6.4), squeeze=False)
    for col, (row, view) in enumerate(views.items()):
        top, bottom = axes[0][col], axes[1][col]
        levels = view["real_levels"].numpy()
        lo = min(float(levels.min()), view["centroid_level"], *view["syn_levels"].tolist())
        hi = max(float(levels.max()), *view["syn_levels"].tolist())
        top.hist(levels, bins=60, range=(lo - 0.5, hi + 0.5), color="C0", label="real")
        top.axvline(view["centroid_level"], color="k", ls="--", lw=1.2, label="real centroid")
        for i, level in enumerate(view["syn_levels"].tolist()):
            top.axvline(level, color="C3", lw=1.5, label="synthetic (end)" if i == 0 else None)
        top.set_title(row, fontsize=8)
        top.set_xlabel("level (distance to the origin)")
        top.legend(fontsize=7)
        bottom.scatter(levels, view["shares"].numpy() * len(levels), s=5, alpha=0.5)
        bottom.axhline(1.0, color="gray", lw=0.8)
        bottom.set_xlabel("level of the real sample")
        bottom.set_ylabel("share x n (1 = uniform)")
    fig.suptitle(
        f"Fashion-MNIST IPC {args.ipc}, class {args.cls}, seed {args.seed}: levels and "
        "shares of the real centroid",
        fontsize=9,
    )
    path = Path(args.results) / f"{NAME}_geometry.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
