"""A study's reports from its record alone (src.report --table / --pivot / --study), and the
committed records: every entry holds for its study config as it composes today."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from src.errors import ConfigError
from src.io.checkpoint import EXECUTION_SETTINGS, setting_differences
from src.pipelines import settings_table
from src.pipelines.report import replace_block
from src.pipelines.study import RECORD_FORMAT, study_reports
from tests.helpers import REPO, compose_cfg

STUDIES = ["accuracy", "curvature", "pruning", "cross_arch_table", "dm_family"]


def _entry(seed: int, acc: float, k: float | None, cap: float | None, sha: str) -> dict:
    loss = {"k": k, "max_radius": cap} if k is not None else {"squared": True}
    label = "DM" if k is None else f"DM+HDD (k {k:g})"
    results = {"label": label, "dataset": "toy", "ipc": 1, "seed": seed,
               "distilled": {"mean": acc}, "set_sha256": sha}  # fmt: skip
    if k is None:
        results["random_real"] = {"mean": 40.0 + seed}
    return {"settings": {"loss": loss, "seed": seed}, "results": results}


def _record(tmp_path: Path) -> Path:
    """Two seeds of DM, and of HDD at k 1 and 16 with and without the cap (k 16: the same sets)."""
    runs = {}
    for seed in (0, 1):
        runs[f"dm/{seed}"] = _entry(seed, 70.0 + seed, None, None, f"dm{seed}")
        for k in (1.0, 16.0):
            for cap in (10.0, None):
                sha = f"k{k}{cap if k == 1 else ''}s{seed}"  # at k 16 the cap never binds
                runs[f"hdd/{k}/{cap}/{seed}"] = _entry(seed, 60.0 + k / 4 + seed, k, cap, sha)
    path = tmp_path / "record.json"
    path.write_text(json.dumps({"format": RECORD_FORMAT, "runs": runs}))
    return path


def test_a_settings_table_has_a_row_per_setting_in_natural_order_with_seed_statistics(tmp_path):
    text = settings_table.to_markdown(_record(tmp_path), ["loss.max_radius"])
    lines = text.splitlines()
    assert lines[2] == "Random real subset (the init set): 40.50 ± 0.71."
    rows = [line.split(" | ")[0][2:] for line in lines[6:]]
    assert rows == [
        "DM",
        "DM+HDD (k 1), max_radius 10",
        "DM+HDD (k 1), max_radius null",
        "DM+HDD (k 16), max_radius 10",
        "DM+HDD (k 16), max_radius null (= DM+HDD (k 16), max_radius 10: bitwise the same sets)",
    ]  # k 16 after k 1 although "16" < "1 " as text; only the k-16 twins share their sets
    assert lines[6] == "| DM | 70.50 ± 0.71 | 70.00 / 71.00 | 2 |"


def test_a_pivot_spreads_one_setting_over_the_columns_and_marks_twins_by_their_difference(
    tmp_path,
):
    text = settings_table.pivot_markdown(_record(tmp_path), ["loss.max_radius"], "loss.k")
    lines = text.splitlines()
    assert "DM: 70.50 ± 0.71 (2)." in lines
    head = lines.index("| setting | k 1 | k 16 |")
    assert lines[head + 2 :] == [
        "| DM+HDD, max_radius 10 | 60.75 ± 0.71 (2) | 64.50 ± 0.71 (2) |",
        "| DM+HDD, max_radius null | 60.75 ± 0.71 (2) | 64.50 ± 0.71 (2, = max_radius 10) |",
    ]


def test_a_readme_block_is_replaced_and_a_missing_block_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- t -->\nold\n<!-- /t -->\nrest\n")
    replace_block(readme, "t", "new table")
    assert readme.read_text() == "intro\n<!-- t -->\nnew table\n<!-- /t -->\nrest\n"
    with pytest.raises(ConfigError, match="no block <!-- u -->"):
        replace_block(readme, "u", "x")


@pytest.mark.parametrize("study", STUDIES)
def test_a_committed_study_report_regenerates_its_committed_files(study, tmp_path):
    from src.report import main

    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    for argv in study_reports([study]):
        argv = [str(readme) if a == "README.md" else a for a in argv]
        argv = [REPO / argv[0], *argv[1:-1], str(tmp_path)]  # --out: the temporary folder
        main([str(a) for a in argv])
    written = [p for p in tmp_path.glob("*.md") if p.name != "README.md"]
    assert written
    for path in written:
        assert path.read_text() == (REPO / "bench" / "results" / path.name).read_text(), path
    assert readme.read_text() == (REPO / "README.md").read_text()  # the generated blocks too


def _configs(record: dict) -> dict[str, list[str]]:
    return {key: entry["overrides"] for key, entry in record["runs"].items()}


@pytest.mark.parametrize("study", ["accuracy", "curvature", "pruning", "cross_arch_table"])
def test_every_entry_of_a_converted_record_holds_for_its_config_as_composed_today(study):
    """A fresh clone's sweep reuses an entry only if today's config composes its settings."""
    record_path = compose_cfg("distill", [f"experiment=study/{study}"]).study.record
    record = json.loads((REPO / record_path).read_text())
    assert record["format"] == RECORD_FORMAT
    seen: set[tuple] = set()
    for key, overrides in _configs(record).items():
        shape = tuple(o for o in overrides if not o.startswith("seed="))
        if shape in seen:  # seeds differ only in the seed: one composition per setting
            continue
        seen.add(shape)
        now = compose_cfg("distill", [*overrides, f"paths.output_dir={key}"])
        from omegaconf import OmegaConf

        changed = setting_differences(
            record["runs"][key]["settings"], OmegaConf.to_container(now, resolve=True),
            ignore=EXECUTION_SETTINGS,
        )  # fmt: skip
        assert not changed, (key, changed)
        assert key.startswith(f"outputs/studies/{study}/")


def test_an_unknown_study_or_one_without_reports_is_one_clear_error():
    with pytest.raises(ConfigError, match="no study config"):
        study_reports(["nonexistent"])
