"""Behaviour of src.io (the distilled-set file) and src.viz's image grid."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import src.io.distilled as distilled_mod
from src.errors import DistilledFileError
from src.io import DistilledSet, check_matches, load_distilled, metadata_path, save_distilled
from src.viz import save_image_grid

META = {
    "dataset": "fashion_mnist",
    "ipc": 2,
    "method": "dm",
    "label": "DM+HDD",
    "iteration": 17,
    "seed": 3,
    "curvature": -1.5,
    "mean": [0.2861],
    "std": [0.353],
    "class_names": ["a", "b", "c"],
    "config": {"model": {"name": "convnet", "width": 8, "depth": None}, "eval_at": [1, 2]},
}


def a_set(n_classes: int = 3, ipc: int = 2, shape: tuple[int, ...] = (1, 6, 6), seed: int = 0):
    """Random float32 images and class-ordered int64 labels."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n_classes * ipc, *shape, generator=g)
    labels = torch.arange(n_classes).repeat_interleave(ipc)
    return images, labels


def raw_save(path: Path, tensors: dict[str, torch.Tensor], meta: dict | None) -> Path:
    """Write a safetensors file directly, bypassing save_distilled's checks."""
    header = None
    if meta is not None:
        header = {"hdd": json.dumps({"format": distilled_mod.FORMAT, **meta})}
    save_file(tensors, str(path), metadata=header)
    return path


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    """Files in ``folder`` other than ``keep`` (temporary files would show up here)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# --- round trip -------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    images, labels = a_set()
    path = save_distilled(tmp_path / "set.safetensors", images, labels, META)
    assert path == tmp_path / "set.safetensors"
    ds = load_distilled(path)
    assert isinstance(ds, DistilledSet)
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    assert torch.equal(ds.images, images)
    assert torch.equal(ds.labels, labels)
    for key, value in META.items():
        assert ds.meta[key] == value, key
    assert set(META) <= set(ds.meta)
    assert set(ds.meta) - set(META) == {"format"}


def test_save_converts_dtype_and_device_agnostic_inputs(tmp_path: Path) -> None:
    images, labels = a_set()
    grad_images = images.double().requires_grad_(True)
    path = save_distilled(tmp_path / "set.safetensors", grad_images, labels.int(), META)
    ds = load_distilled(path)
    assert ds.images.dtype == torch.float32 and ds.labels.dtype == torch.int64
    torch.testing.assert_close(ds.images, images)
    assert torch.equal(ds.labels, labels)


def test_json_beside_the_set_matches_its_metadata(tmp_path: Path) -> None:
    images, labels = a_set()
    path = save_distilled(tmp_path / "set.safetensors", images, labels, META)
    side = metadata_path(path)
    assert side == tmp_path / "set.json"
    assert side.is_file()
    assert json.loads(side.read_text()) == load_distilled(path).meta


def test_save_overwrites_a_previous_set(tmp_path: Path) -> None:
    path = tmp_path / "set.safetensors"
    save_distilled(path, *a_set(seed=0), META)
    images, labels = a_set(seed=1)
    save_distilled(path, images, labels, {**META, "iteration": 99})
    ds = load_distilled(path)
    assert torch.equal(ds.images, images)
    assert ds.meta["iteration"] == 99
    assert json.loads(metadata_path(path).read_text())["iteration"] == 99
    assert leftovers(tmp_path, {"set.safetensors", "set.json"}) == []


# --- atomic write -----------------------------------------------------------------------------


def test_failed_save_keeps_previous_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "set.safetensors"
    save_distilled(path, *a_set(seed=0), META)
    before = path.read_bytes()
    json_before = metadata_path(path).read_text()
    written_to: list[Path] = []

    def broken_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file" * 100)
        written_to.append(Path(filename))
        raise OSError("disk full")

    monkeypatch.setattr(distilled_mod, "save_file", broken_save_file)
    with pytest.raises(OSError, match="disk full"):
        save_distilled(path, *a_set(seed=1), {**META, "iteration": 1234})

    assert written_to, "save_distilled did not go through safetensors' save_file"
    assert written_to[0] != path  # it wrote to a temporary file, not the target
    assert written_to[0].parent == path.parent
    assert path.read_bytes() == before
    assert metadata_path(path).read_text() == json_before
    assert leftovers(tmp_path, {"set.safetensors", "set.json"}) == []
    load_distilled(path)  # still a valid set


def test_failed_first_save_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_save_file(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"garbage")
        raise RuntimeError("killed")

    monkeypatch.setattr(distilled_mod, "save_file", broken_save_file)
    with pytest.raises(RuntimeError):
        save_distilled(tmp_path / "out" / "set.safetensors", *a_set(), META)
    assert leftovers(tmp_path / "out", set()) == []


# --- rejected files ---------------------------------------------------------------------------


def assert_rejected(path: Path, *fragments: str) -> str:
    """load_distilled(path) raises DistilledFileError naming the file and ``fragments``."""
    with pytest.raises(DistilledFileError) as excinfo:
        load_distilled(path)
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)
    return message


def test_missing_file_is_rejected(tmp_path: Path) -> None:
    assert_rejected(tmp_path / "nope.safetensors", "does not exist")


def test_folder_is_rejected(tmp_path: Path) -> None:
    assert_rejected(tmp_path)


@pytest.mark.parametrize("keep", [0, 7, 0.5, -1], ids=["empty", "header-cut", "half", "last-byte"])
def test_truncated_file_is_rejected(tmp_path: Path, keep: float) -> None:
    path = save_distilled(tmp_path / "set.safetensors", *a_set(), META)
    data = path.read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    path.write_bytes(data[:n])
    assert_rejected(path)


@pytest.mark.parametrize(
    "content",
    [
        b"not a safetensors file, just text\n",
        bytes(range(256)) * 8,
        b"\x89PNG\r\n\x1a\n" + bytes(64),
    ],
    ids=["text", "bytes", "png"],
)
def test_non_safetensors_file_is_rejected(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "set.safetensors"
    path.write_bytes(content)
    assert_rejected(path)


def test_extra_tensor_is_rejected(tmp_path: Path) -> None:
    images, labels = a_set()
    path = raw_save(
        tmp_path / "x.safetensors",
        {"images": images, "labels": labels, "extra": images.clone()},
        META,
    )
    assert_rejected(path, "extra")


@pytest.mark.parametrize("missing", ["images", "labels"])
def test_missing_tensor_is_rejected(tmp_path: Path, missing: str) -> None:
    images, labels = a_set()
    tensors = {"images": images, "labels": labels}
    del tensors[missing]
    assert_rejected(raw_save(tmp_path / "x.safetensors", tensors, META), "images", "labels")


@pytest.mark.parametrize(
    ("images", "labels", "bad"),
    [
        (torch.zeros(6, 1, 4, 4, dtype=torch.float64), torch.zeros(6, dtype=torch.int64), "images"),
        (torch.zeros(6, 1, 4, 4, dtype=torch.float16), torch.zeros(6, dtype=torch.int64), "images"),
        (torch.zeros(6, 1, 4, 4, dtype=torch.uint8), torch.zeros(6, dtype=torch.int64), "images"),
        (torch.zeros(6, 16), torch.zeros(6, dtype=torch.int64), "images"),
        (torch.zeros(6, 1, 4, 4), torch.zeros(6, dtype=torch.int32), "labels"),
        (torch.zeros(6, 1, 4, 4), torch.zeros(6, dtype=torch.float32), "labels"),
        (torch.zeros(6, 1, 4, 4), torch.zeros(5, dtype=torch.int64), "labels"),
        (torch.zeros(6, 1, 4, 4), torch.zeros(6, 1, dtype=torch.int64), "labels"),
    ],
    ids=[
        "images-f64",
        "images-f16",
        "images-u8",
        "images-2d",
        "labels-i32",
        "labels-f32",
        "labels-short",
        "labels-2d",
    ],
)
def test_wrong_dtype_or_shape_is_rejected(
    tmp_path: Path, images: torch.Tensor, labels: torch.Tensor, bad: str
) -> None:
    path = raw_save(tmp_path / "x.safetensors", {"images": images, "labels": labels}, META)
    assert_rejected(path, bad)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_images_are_rejected(tmp_path: Path, value: float) -> None:
    images, labels = a_set()
    images[2, 0, 1, 3] = value
    path = raw_save(tmp_path / "x.safetensors", {"images": images, "labels": labels}, META)
    assert_rejected(path, "NaN")


def test_missing_metadata_is_rejected(tmp_path: Path) -> None:
    images, labels = a_set()
    path = raw_save(tmp_path / "x.safetensors", {"images": images, "labels": labels}, None)
    assert_rejected(path, "metadata")


def test_invalid_metadata_json_is_rejected(tmp_path: Path) -> None:
    images, labels = a_set()
    path = tmp_path / "x.safetensors"
    save_file({"images": images, "labels": labels}, str(path), metadata={"hdd": "{not json"})
    assert_rejected(path, "metadata")


def test_foreign_format_is_rejected(tmp_path: Path) -> None:
    images, labels = a_set()
    path = tmp_path / "x.safetensors"
    header = {"hdd": json.dumps({"format": "someone-else/7", "dataset": "cifar10"})}
    save_file({"images": images, "labels": labels}, str(path), metadata=header)
    assert_rejected(path, "someone-else/7")


# --- check_matches ----------------------------------------------------------------------------


def test_check_matches_accepts_a_fitting_set() -> None:
    images, labels = a_set(n_classes=10, ipc=1, shape=(1, 28, 28))
    check_matches(DistilledSet(images, labels, dict(META)), 1, (28, 28), 10, "x.safetensors")


@pytest.mark.parametrize(
    ("shape", "channels", "im_size"),
    [((3, 32, 32), 1, (28, 28)), ((1, 28, 28), 3, (28, 28)), ((1, 28, 28), 1, (32, 32))],
)
def test_check_matches_rejects_other_image_shape(
    shape: tuple[int, ...], channels: int, im_size: tuple[int, int]
) -> None:
    images, labels = a_set(n_classes=10, ipc=1, shape=shape)
    ds = DistilledSet(images, labels, dict(META))
    with pytest.raises(DistilledFileError) as excinfo:
        check_matches(ds, channels, im_size, 10, "x.safetensors")
    message = str(excinfo.value)
    assert str(shape) in message
    assert str((channels, *im_size)) in message


@pytest.mark.parametrize("bad_label", [-1, 10, 57])
def test_check_matches_rejects_labels_outside_the_classes(bad_label: int) -> None:
    images, labels = a_set(n_classes=10, ipc=1, shape=(1, 28, 28))
    labels[4] = bad_label
    with pytest.raises(DistilledFileError, match="labels"):
        check_matches(DistilledSet(images, labels, dict(META)), 1, (28, 28), 10)


# --- image grid -------------------------------------------------------------------------------


def test_image_grid_is_a_png_with_one_row_per_class(tmp_path: Path) -> None:
    num_classes, h, w = 4, 5, 7
    # Class c has c+1 images (class 3 has 4: the widest row); every pixel of class c is
    # the grey level c/4. Labels are shuffled so the grid has to order them.
    labels = torch.tensor([3, 0, 2, 3, 1, 2, 3, 1, 2, 3])
    images = (labels.float() / num_classes).view(-1, 1, 1, 1).expand(-1, 3, h, w).clone()
    path = save_image_grid(tmp_path / "grid.png", images, labels, num_classes)
    assert path == tmp_path / "grid.png"
    assert path.stat().st_size > 0
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as im:
        assert im.format == "PNG"
        pixels = np.asarray(im.convert("L"), dtype=np.int64)
    per_row = 4
    assert pixels.shape == (num_classes * (h + 2) + 2, per_row * (w + 2) + 2)
    for c in range(num_classes):
        top = 2 + c * (h + 2)
        for k in range(per_row):
            left = 2 + k * (w + 2)
            cell = pixels[top : top + h, left : left + w]
            # Class c's first c+1 cells show its grey; the rest of the row is blank (white).
            expected = round(255 * c / num_classes) if k <= c else 255
            assert np.abs(cell - expected).max() <= 1, (c, k)
    assert leftovers(tmp_path, {"grid.png"}) == []


def test_image_grid_of_single_channel_images(tmp_path: Path) -> None:
    images, labels = a_set(n_classes=3, ipc=2, shape=(1, 6, 6))
    path = save_image_grid(tmp_path / "g.png", images.sigmoid(), labels, 3)
    with Image.open(path) as im:
        assert im.size == (2 * (6 + 2) + 2, 3 * (6 + 2) + 2)  # PIL: (width, height)


def test_settings_added_after_a_run_was_saved_are_not_differences():
    from src.io.checkpoint import setting_differences

    saved = {"ipc": 1, "eval": {"epochs": 300}, "removed": 2}
    added = {"ipc": 1, "eval": {"epochs": 300, "models": []}, "removed": 2, "new": 1}
    assert setting_differences(saved, added) == []
    # A key the run had and the project dropped (or renamed) still counts.
    assert setting_differences(saved, {"ipc": 1, "eval": {"epochs": 300}}) == ["removed"]
    now = added | {"ipc": 10}
    assert setting_differences(saved, now) == ["ipc"]
    assert setting_differences(saved, now, ignore=("ipc",)) == []


def test_both_metadata_formats_read_through_the_accessors(tmp_path: Path) -> None:
    images, labels = a_set()
    old = {**META, "format": "hdd-distilled/1", "method": "idm", "factor": 2, "loss": "lorentz",
           "k": 2.4, "scale": 100.0, "lift": "expmap", "max_radius": 10.0}  # fmt: skip
    tensors = {"images": images, "labels": labels}
    save_file(tensors, str(tmp_path / "v1.safetensors"), metadata={"hdd": json.dumps(old)})
    v1 = load_distilled(tmp_path / "v1.safetensors")
    new_meta = {**META, "method": {"name": "idm", "factor": 2}, "loss": v1.loss}
    v2 = load_distilled(save_distilled(tmp_path / "v2.safetensors", images, labels, new_meta))
    assert v2.meta["format"] == "hdd-distilled/2"
    for ds in (v1, v2):
        assert (ds.method["name"], ds.factor) == ("idm", 2)
        assert ds.loss == {
            "name": "lorentz", "k": 2.4, "scale": 100.0, "lift": "expmap", "max_radius": 10.0
        }  # fmt: skip
