"""The on-disk class-indexed store (src/data/store.py): built from an ImageFolder tree or a data
set, read back exactly, resumed after an interruption, refused when damaged, and sampled
like the in-memory pool."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from src.data import MappedPool, RealPool, load_dataset
from src.data.sources import Source, decode, folder_source, tensor_source
from src.data.store import IMAGES, MANIFEST, PROGRESS, build_store, open_store
from src.errors import DataError
from tests.helpers import TINY, assert_one_error_line, compose_cfg, run_module

SIZES = {"cat": [(40, 30), (30, 30), (50, 20)], "ant": [(20, 36)], "dog": [(33, 33), (18, 25)]}


@pytest.fixture
def folder(tmp_path):
    """A small ImageFolder tree: RGB images of odd shapes, one class in a sub-folder."""
    rng = np.random.default_rng(0)
    root = tmp_path / "tree"
    for name, sizes in SIZES.items():
        for i, (w, h) in enumerate(sizes):
            path = root / name / ("nested" if name == "dog" else "") / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return root


def test_a_store_of_an_image_folder_round_trips_every_image_and_label(folder, tmp_path):
    path = build_store(folder_source(folder, size=16, workers=2), tmp_path / "store", log=None)
    store = open_store(path)
    assert store.manifest["class_names"] == ["ant", "cat", "dog"]  # sorted folder names
    assert store.manifest["counts"] == [1, 3, 2] and store.manifest["offsets"] == [0, 1, 4, 6]
    assert store.labels.tolist() == [0, 1, 1, 1, 2, 2]
    expected = [decode(p, 16, 3) for name in ("ant", "cat", "dog")
                for p in sorted((folder / name).rglob("*.png"))]  # fmt: skip
    assert np.array_equal(store.images, np.stack(expected))
    # A 40 x 30 image: shorter side to 16 (21 x 16), then the centre 16 x 16.
    with Image.open(folder / "cat" / "0.png") as im:
        reference = im.resize((21, 16), Image.Resampling.BILINEAR).crop((2, 0, 18, 16))
    assert np.array_equal(store.images[1], np.asarray(reference).transpose(2, 0, 1))
    pixels = np.stack(expected).astype(np.float64) / 255
    assert store.manifest["mean"] == pytest.approx(pixels.mean(axis=(0, 2, 3)).tolist())
    assert store.manifest["std"] == pytest.approx(pixels.std(axis=(0, 2, 3)).tolist())
    chosen = folder_source(folder, size=16, classes=["dog", "ant"], workers=1)
    assert chosen.class_names == ["dog", "ant"] and chosen.counts == [2, 1]


def _counting(source: Source, fail_at: int | None, calls: list[int]) -> Source:
    def read(c: int) -> np.ndarray:
        calls.append(c)
        if c == fail_at:
            raise KeyboardInterrupt  # an interruption mid-build
        return source.read(c)

    return Source(source.description, source.class_names, source.counts, source.shape, read)


def test_an_interrupted_build_resumes_from_the_next_class_and_ends_as_an_uninterrupted_one(
    folder, tmp_path
):
    source = folder_source(folder, size=12, workers=1)
    calls: list[int] = []
    with pytest.raises(KeyboardInterrupt):
        build_store(_counting(source, 2, calls), tmp_path / "s", log=None)
    assert not (tmp_path / "s").exists()  # never a half-written store under its name
    progress = json.loads((tmp_path / "s.partial" / PROGRESS).read_text())
    assert sorted(progress["done"]) == ["0", "1"]
    with pytest.raises(DataError, match="interrupted build"):
        open_store(tmp_path / "s")
    calls.clear()
    build_store(_counting(source, None, calls), tmp_path / "s", log=None)
    assert calls == [2] and not (tmp_path / "s.partial").exists()
    whole = build_store(source, tmp_path / "whole", log=None)
    for name in (IMAGES, "labels.npy", MANIFEST):
        assert (tmp_path / "s" / name).read_bytes() == (whole / name).read_bytes()
    other = folder_source(folder, size=10, workers=1)  # a partial build of other data
    (tmp_path / "o.partial").mkdir()
    (tmp_path / "o.partial" / PROGRESS).write_text(json.dumps({"plan": {}, "done": {}}))
    with pytest.raises(DataError, match="partial store of other data"):
        build_store(other, tmp_path / "o", log=None)


def test_a_truncated_altered_or_mismatched_store_is_refused(folder, tmp_path):
    path = build_store(folder_source(folder, size=8, workers=1), tmp_path / "s", log=None)
    open_store(path)  # verified once
    images = path / IMAGES
    data = bytearray(images.read_bytes())
    images.write_bytes(data[:-5])
    with pytest.raises(DataError, match="truncated"):
        open_store(path)
    data[-1] ^= 0xFF  # same size, one byte of the last class changed
    images.write_bytes(data)
    with pytest.raises(DataError, match=r"class 2 \(dog\) does not match its checksum"):
        open_store(path)
    data[-1] ^= 0xFF
    images.write_bytes(data)
    open_store(path)
    manifest = json.loads((path / MANIFEST).read_text())
    manifest["shape"] = [3, 9, 9]
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="the manifest says"):
        open_store(path)


def test_a_damaged_store_stops_a_run_with_one_error_line(tmp_path):
    images = torch.randint(0, 256, (20, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(10).repeat(2)
    source = tensor_source("toy", images, labels, [str(c) for c in range(10)], (0.5,), (0.5,))
    store = build_store(source, tmp_path / "stores" / "fashion_mnist" / "train", log=None)
    (store / IMAGES).write_bytes((store / IMAGES).read_bytes()[:-1])
    result = run_module("src.distill", *TINY, "dataset.store=true",
                        f"paths.data_dir={tmp_path}", run_dir=tmp_path / "run")  # fmt: skip
    assert result.returncode != 0
    assert_one_error_line(result, "truncated or damaged")


def test_a_mapped_pool_draws_the_images_the_in_memory_pool_draws(tmp_path):
    _, memory = load_dataset("fashion_mnist", tmp_path, train=True)
    _, mapped = load_dataset("fashion_mnist", tmp_path, train=True, store=True)
    assert isinstance(mapped, MappedPool) and type(memory) is RealPool
    assert mapped.nbytes() == 0 and torch.equal(mapped.counts, memory.counts)
    for seed in (0, 1):
        first, second = (torch.Generator().manual_seed(seed) for _ in range(2))
        a, wa = memory.sample(32, first)
        b, wb = mapped.sample(32, second)
        # The store holds the classes contiguously: other indices, the same images.
        assert torch.equal(memory.get(a), mapped.get(b)) and torch.equal(wa, wb)
        assert torch.equal(memory.labels[a], mapped.labels[b])
    kept = mapped.subset(torch.tensor([5, 6000, 12000]))
    assert type(kept) is RealPool and torch.equal(kept.get(torch.arange(3)), mapped.get(
        torch.tensor([5, 6000, 12000])))  # fmt: skip


def test_distilling_from_the_store_gives_the_set_of_the_in_memory_pool(tmp_path):
    from src.pipelines.distill import run_distill

    sets = []
    for store in ("false", "true"):
        out = tmp_path / f"run_{store}"
        overrides = [*TINY, f"dataset.store={store}", "eval.final=false",
                     f"paths.data_dir={tmp_path}", f"paths.output_dir={out}"]  # fmt: skip
        cfg = compose_cfg("distill", overrides)
        sets.append(run_distill(cfg)["set_sha256"])
    assert sets[0] == sets[1]
    assert (tmp_path / "stores" / "fashion_mnist" / "train" / MANIFEST).is_file()


def test_prepare_builds_and_describes_a_folder_store(folder, tmp_path):
    out = tmp_path / "s"
    result = run_module("src.prepare", f"folder={folder}", "size=8", f"out={out}",
                        run_dir=tmp_path / "run")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"{out}: 6 images of 3 classes, 3x8x8" in result.stdout
    assert "store: class 3/3 (dog): 2 images" in result.stdout
    missing = run_module("src.prepare", f"folder={tmp_path / 'none'}", run_dir=tmp_path / "r2")
    assert missing.returncode != 0
    assert_one_error_line(missing, "does not exist")


@pytest.fixture
def split_tree(tmp_path):
    """An ImageFolder tree with train/ and val/ splits of 3 classes (val lists them too)."""
    rng = np.random.default_rng(1)
    for split, n in (("train", 4), ("val", 2)):
        for name in ("a", "b", "c"):
            for i in range(n):
                path = tmp_path / "tree" / split / name / f"{i}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                array = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
                Image.fromarray(array).save(path)
    return tmp_path / "tree"


def test_an_image_folder_data_set_distils_from_its_stores(split_tree, tmp_path):
    from src.pipelines.distill import run_distill

    folder = ["dataset=imagefolder", f"dataset.folder={split_tree}", "dataset.size=16",
              "dataset.workers=1", f"paths.data_dir={tmp_path / 'data'}"]  # fmt: skip
    overrides = [*TINY, *folder, "ipc=1", "method.batch_real=2", f"paths.output_dir={tmp_path}/o"]
    results = run_distill(compose_cfg("distill", overrides))
    assert results["dataset"] == "imagefolder" and results["ipc"] == 1
    stores = tmp_path / "data" / "stores" / "imagefolder-16px"
    train, test = open_store(stores / "train"), open_store(stores / "test")
    assert train.manifest["counts"] == [4, 4, 4] and test.manifest["counts"] == [2, 2, 2]
    assert train.manifest["class_names"] == test.manifest["class_names"] == ["a", "b", "c"]
    # A missing folder is one clear line before anything runs.
    bad = run_module("src.distill", *TINY, "dataset=imagefolder", f"dataset.folder={tmp_path}/x",
                     run_dir=tmp_path / "bad")  # fmt: skip
    assert bad.returncode != 0
    assert_one_error_line(bad, "does not exist")


def test_the_imagenet_presets_name_their_classes_size_and_statistics():
    woof = compose_cfg("distill", ["dataset=imagewoof"]).dataset
    nette = compose_cfg("distill", ["dataset=imagenette"]).dataset
    assert (woof.size, nette.size, len(woof.classes), len(nette.classes)) == (128, 128, 10, 10)
    assert nette.classes[0] == "n01440764" and woof.classes[0] == "n02096294"  # tench; terrier
    assert not set(woof.classes) & set(nette.classes)
    assert compose_cfg("distill", ["dataset=imagenet_64"]).dataset.size == 64
    from src.models import default_depth

    assert (default_depth((128, 128)), default_depth((64, 64)), default_depth((32, 32))) == (
        5,
        4,
        3,
    )
