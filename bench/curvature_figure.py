"""The curvature study's diagnostic picture: levels and centroid shares of one class.

``python -m bench.curvature_figure [RUN_DIR ...] [--cls 0]``

For each finished run (by default the curvature study's three lifts at k 1, IPC 1, seed 0:
``experiment=study/curvature_hdd ipc=1 seed=0 loss.k=1``), one panel pair: the histogram of
the real features' levels under the run's lift with the synthetic images' levels at the end
of the run marked, and each real sample's share of the Lorentz centroid
against its level. The features come from the run's own geometry probe (the seeded random
network of its diagnostics), with the settings the run saved in its distilled set. Writes
``bench/results/curvature_geometry.png``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from src.data.factorize import expand  # noqa: E402
from src.hyperbolic import distance_to_origin, lift, lorentz_centroid  # noqa: E402
from src.hyperbolic.diagnostics import centroid_shares  # noqa: E402
from src.io import atomic_path, load_distilled  # noqa: E402
from src.pipelines.components import load_data  # noqa: E402
from src.pipelines.diagnostics import geometry_probe  # noqa: E402
from src.pipelines.distill import DISTILLED_FILE  # noqa: E402

STUDY = Path("outputs/studies/curvature/ipc1")
LIFTS = ("lorentz", "lorentz_exact", "lorentz_project")  # capped expmap, exact expmap, projection
DEFAULT_RUNS = [STUDY / loss / "k1" / "seed0" for loss in LIFTS]


def class_view(directory: Path, cls: int) -> dict:
    """Real levels and shares, and synthetic levels, of class ``cls`` of one finished run."""
    saved = load_distilled(directory / DISTILLED_FILE)
    cfg = OmegaConf.create(saved.meta["config"])
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
        "title": saved.meta["label"],
        "where": (cfg.ipc, cfg.seed),
    }


def main(argv: list[str] | None = None) -> None:
    """Draw the panels of the listed rows that have a finished run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--cls", type=int, default=0, help="the class shown")
    parser.add_argument("--results", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    views = {d: class_view(d, args.cls) for d in args.runs if (d / DISTILLED_FILE).is_file()}
    if not views:
        raise SystemExit(f"error: none of {[str(d) for d in args.runs]} holds a finished run")
    fig, axes = plt.subplots(2, len(views), figsize=(4.2 * len(views), 6.4), squeeze=False)
    for col, view in enumerate(views.values()):
        top, bottom = axes[0][col], axes[1][col]
        levels = view["real_levels"].numpy()
        lo = min(float(levels.min()), view["centroid_level"], *view["syn_levels"].tolist())
        hi = max(float(levels.max()), *view["syn_levels"].tolist())
        top.hist(levels, bins=60, range=(lo - 0.5, hi + 0.5), color="C0", label="real")
        top.axvline(view["centroid_level"], color="k", ls="--", lw=1.2, label="real centroid")
        for i, level in enumerate(view["syn_levels"].tolist()):
            top.axvline(level, color="C3", lw=1.5, label="synthetic (end)" if i == 0 else None)
        top.set_title(view["title"], fontsize=8)
        top.set_xlabel("level (distance to the origin)")
        top.legend(fontsize=7)
        bottom.scatter(levels, view["shares"].numpy() * len(levels), s=5, alpha=0.5)
        bottom.axhline(1.0, color="gray", lw=0.8)
        bottom.set_xlabel("level of the real sample")
        bottom.set_ylabel("share x n (1 = uniform)")
    ipc, seed = next(iter(views.values()))["where"]
    fig.suptitle(
        f"IPC {ipc}, class {args.cls}, seed {seed}: levels and shares of the real centroid",
        fontsize=9,
    )
    path = Path(args.results) / "curvature_geometry.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
