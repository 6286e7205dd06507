"""The extension interface (docs/extending.md): a loss, a term and a method each say in their
own class how they are labelled, checked and recorded; features at intermediate layers come
from one API on every registry network."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from torch import Tensor

from src.errors import ConfigError
from src.matching import MatchingLoss
from src.matching.terms import EMBED, ClassFeatures, FeatureTerm, LossTerm, total
from src.models import MODELS, build_model
from src.models.stages import stage_outputs
from src.pipelines.components import run_label
from src.pipelines.diagnostics import diagnostic_lift
from src.pipelines.distill import run_distill
from src.pipelines.report import job_identity, run_report
from src.pipelines.validate import validate_distill
from tests.helpers import ROOT, TINY, compose_cfg

QUIET = ["eval.final=false", "eval.random_baseline=false", "geometry.enabled=false"]


class GaussianMMDLoss(MatchingLoss):
    """A loss a user adds: squared MMD with a Gaussian kernel of bandwidth ``sigma``."""

    name = "mmd"
    label_suffix = "+MMD"

    def __init__(self, sigma: float = 1.0) -> None:
        super().__init__()
        if not sigma > 0:
            raise ConfigError(f"loss.sigma must be > 0, got {sigma}")
        self.sigma = float(sigma)

    def kernel_mean(self, a: Tensor, wa: Tensor, b: Tensor, wb: Tensor) -> Tensor:
        """Per class sum_ij wa_i wb_j k(a_i, b_j) / (sum wa sum wb)."""
        k = torch.exp(-torch.cdist(a, b).pow(2) / (2 * self.sigma**2))
        weighted = wa.unsqueeze(-1) * k * wb.unsqueeze(-2)
        return weighted.sum(dim=(1, 2)) / (wa.sum(1) * wb.sum(1))

    def forward(self, real: Tensor, real_weights: Tensor, syn: Tensor) -> Tensor:
        """Per-class squared MMD between the weighted real and the synthetic features."""
        ws = torch.ones(syn.shape[:2], dtype=real.dtype)
        rr = self.kernel_mean(real, real_weights, real, real_weights)
        return (
            rr
            + self.kernel_mean(syn, ws, syn, ws)
            - 2 * self.kernel_mean(real, real_weights, syn, ws)
        )

    def settings(self) -> dict:
        """The bandwidth."""
        return {"sigma": self.sigma}


class SpreadTerm(FeatureTerm):
    """A term a user adds: mean squared distance of a class's synthetic features to their mean."""

    name = "spread"

    def per_class(self, features: ClassFeatures) -> Tensor:
        """Per class mean_j |s_j - mean(s)|^2."""
        syn = features.syn[EMBED]
        return (syn - syn.mean(dim=1, keepdim=True)).pow(2).sum(-1).mean(-1)


MMD = ["loss=euclidean", "loss._target_=tests.test_extending.GaussianMMDLoss"]
SPREAD = "+method.terms.spread={_target_:tests.test_extending.SpreadTerm,weight:0.5}"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_registry_network_composes_its_stages_into_its_embedding(name):
    for channels, size in ((1, (28, 28)), (3, (32, 32))):
        net = build_model(name, channels, 10, size).eval()
        x = torch.randn(3, channels, *size)
        outputs = stage_outputs(net, x)
        assert len(outputs) >= 2 and all(o.ndim == 4 for o in outputs)
        torch.testing.assert_close(outputs[-1].flatten(1), net.embed(x), rtol=0, atol=0)
        # The stages are the network's own modules: every embedding weight, none new.
        staged = {id(p) for stage in net.stages() for p in stage.parameters()}
        own = {id(p) for p in net.parameters()} - {id(p) for p in net.classifier.parameters()}
        assert staged == own


def test_a_new_loss_is_labelled_recorded_and_checked_by_its_own_class(tmp_path):
    assert run_label(compose_cfg("distill", MMD)) == "DM+MMD"
    assert run_label(compose_cfg("distill", [*MMD, "+loss.sigma=2.0"])) == "DM+MMD (sigma 2)"
    assert run_label(compose_cfg("distill", [*MMD, "method=idm"])) == "IDM+MMD"
    with pytest.raises(ConfigError, match="loss.sigma must be > 0"):
        validate_distill(
            compose_cfg("distill", [*MMD, "+loss.sigma=0.0", f"paths.output_dir={tmp_path}"])
        )
    # Not a curvature: the diagnostics keep the method's HDD lift.
    assert diagnostic_lift(compose_cfg("distill", MMD))["k"] == 1.0
    out = tmp_path / "run"
    results = run_distill(compose_cfg("distill", [*TINY, *MMD, *QUIET, f"paths.output_dir={out}"]))
    meta = json.loads((out / "distilled.json").read_text())
    assert results["label"] == meta["label"] == "DM+MMD"
    assert meta["loss"] == {"name": "mmd", "sigma": 1.0}
    assert meta["method"]["terms"]["match"]["loss"] == meta["loss"]


def test_the_example_loss_is_the_mmd_of_a_naive_double_loop():
    g = torch.Generator().manual_seed(0)
    real, syn = torch.randn(2, 5, 3, generator=g), torch.randn(2, 2, 3, generator=g)
    weights = torch.tensor([[1.0] * 5, [1.0, 1.0, 1.0, 0.0, 0.0]])  # class 1 padded
    got = GaussianMMDLoss(sigma=1.5)(real, weights, syn)
    for c in range(2):
        r = real[c][weights[c] > 0]

        def k(a, b):
            return torch.exp(-((a - b) ** 2).sum() / (2 * 1.5**2))

        mean = lambda xs, ys: sum(k(x, y) for x in xs for y in ys) / (len(xs) * len(ys))  # noqa: E731
        expected = mean(r, r) + mean(syn[c], syn[c]) - 2 * mean(r, syn[c])
        torch.testing.assert_close(got[c], expected)


def test_a_config_adds_a_term_to_any_method_logged_and_labelled(tmp_path):
    assert run_label(compose_cfg("distill", ["loss=euclidean", SPREAD])) == "DM (+spread)"
    label = run_label(compose_cfg("distill", ["loss=lorentz_project", SPREAD]))
    assert label == "DM+HDD (+spread; project, k 256, scale 20)"
    out = tmp_path / "run"
    overrides = [*TINY, "loss=euclidean", SPREAD, *QUIET, "logger=csv",
                 "trainer.log_every_n_steps=1", f"paths.output_dir={out}"]  # fmt: skip
    run_distill(compose_cfg("distill", overrides))
    with open(out / "csv" / "metrics.csv", newline="") as file:
        rows = [r for r in csv.DictReader(file) if r.get("train/loss")]
    assert len(rows) == 3
    for r in rows:  # the step's loss is the sum of its named terms
        parts = float(r["train/match"]) + float(r["train/spread"])
        assert float(r["train/loss"]) == pytest.approx(parts, rel=1e-5)
        assert float(r["train/spread"]) > 0
    meta = json.loads((out / "distilled.json").read_text())
    assert meta["method"]["terms"]["spread"] == {"name": "spread", "weight": 0.5}


def test_terms_add_per_class_in_order_and_a_loss_term_weighs_its_loss():
    from src.matching import EuclideanMeanLoss

    real, syn = torch.randn(3, 4, 5), torch.randn(3, 2, 5)
    f = ClassFeatures({EMBED: real}, torch.ones(3, 4), {EMBED: syn})
    dm = EuclideanMeanLoss()(real, torch.ones(3, 4), syn)
    assert torch.equal(LossTerm(EuclideanMeanLoss())(f), dm)
    torch.testing.assert_close(LossTerm(EuclideanMeanLoss(), weight=3.0)(f), 3.0 * dm)
    spread = SpreadTerm(weight=2.0)(f)
    torch.testing.assert_close(total({"match": dm, "spread": spread}), dm + spread)


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def test_every_method_and_loss_gets_its_own_report_column(tmp_path):
    labels = {}
    for method in _options("method"):
        for loss in _options("loss"):
            cfg = compose_cfg(
                "distill", ["dataset=fashion_mnist", "ipc=1"] + [f"method={method}", f"loss={loss}"]
            )
            labels[(method, loss)] = run_label(cfg)
            assert job_identity(cfg)["label"] == labels[(method, loss)]
    assert len(set(labels.values())) == len(labels), labels
    for i, label in enumerate(labels.values()):
        run = tmp_path / str(i)
        run.mkdir()
        result = {"dataset": "fashion_mnist", "ipc": 1, "seed": 0, "label": label,
                  "distilled": {"accuracies": [50.0 + i]}}  # fmt: skip
        (run / "results.json").write_text(json.dumps(result))
    header = run_report([tmp_path]).splitlines()[0]
    assert header.count("|") - 3 == len(labels)  # dataset, IPC, then one column per pair
    for label in labels.values():
        assert f"| {label} |" in header


def test_validation_asks_the_method_class_before_any_data(monkeypatch, tmp_path):
    import src.pipelines.components as components

    def validate(*overrides):
        validate_distill(compose_cfg("distill", [*overrides, f"paths.output_dir={tmp_path}"]))

    monkeypatch.setattr(components, "load_data", lambda *a, **k: pytest.fail("data loaded"))
    with pytest.raises(ConfigError) as err:
        validate("method=datadam", "method.power=0", "method.batch_real=0")
    lines = str(err.value).splitlines()
    assert "method.power must be a number > 0, got 0" in lines
    assert "method.batch_real must be an integer >= 1, got 0" in lines
    with pytest.raises(ConfigError, match="is not a distillation method class"):
        validate("method._target_=collections.OrderedDict")
    with pytest.raises(ConfigError, match="method.terms.bad"):
        validate("+method.terms.bad={_target_:no.such.Term}")


def test_diagnostics_read_the_lift_of_the_loss_class():
    assert diagnostic_lift(compose_cfg("distill", ["loss=lorentz_project"])) == {
        "k": 256.0, "kind": "project", "max_radius": None
    }  # fmt: skip
    assert diagnostic_lift(compose_cfg("distill", ["loss=euclidean", "hdd.k=4"]))["k"] == 4.0


def test_a_set_saved_in_the_first_metadata_format_still_evaluates(tmp_path: Path):
    from safetensors.torch import save_file

    from src.pipelines.evaluate import run_evaluate

    images, labels = torch.rand(10, 1, 28, 28), torch.arange(10)
    meta = {"format": "hdd-distilled/1", "dataset": "fashion_mnist", "ipc": 1, "method": "dm",
            "label": "DM", "loss": "euclidean", "factor": 1, "iteration": 5}  # fmt: skip
    path = tmp_path / "old.safetensors"
    save_file({"images": images, "labels": labels}, str(path), metadata={"hdd": json.dumps(meta)})
    cfg = compose_cfg("evaluate", [f"distilled={path}", "model.width=8", "eval.num_models=1",
                                   "eval.epochs=1", "logger=none",
                                   f"paths.output_dir={tmp_path}"])  # fmt: skip
    result = run_evaluate(cfg)
    assert 0.0 <= result.mean <= 100.0
