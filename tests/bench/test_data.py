"""bench.data: formats round-trip, bad inputs name their file, builds are deterministic and leak-free."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import bench.data as data
import cli
from bench import toyfaces
from bench.data import (build_benchmark, check_dataset, format_summary, image_files, load_image_folder,
                        load_test_set, read_gt_csv, read_image, stroke_mask, write_gt_csv)
from bench.errors import BenchError
from bench.session import default_benchmark_dir

N_DISTINCT, N_DUPLICATES, N_TEST, N_VAL = 30, 5, 6, 4


def random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def write_source(folder: Path, images: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i}.png")
    return folder


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def pixel_hashes(images) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """30 distinct images plus 5 exact copies of some of them, shuffled among the originals."""
    distinct = random_images(N_DISTINCT, seed=1)
    images = np.concatenate([distinct, distinct[[0, 3, 3, 7, 29]]])
    order = np.random.default_rng(2).permutation(len(images))
    return write_source(tmp_path_factory.mktemp("raw") / "images", images[order])


@pytest.fixture(scope="module")
def built(source, tmp_path_factory) -> Path:
    return build_benchmark(source, tmp_path_factory.mktemp("built") / "bench", seed=0,
                           n_test=N_TEST, n_val=N_VAL)


@pytest.fixture
def broken(built, tmp_path) -> Path:
    """A private copy of the benchmark to break."""
    return Path(shutil.copytree(built, tmp_path / "copy"))


# --- layout and round trips -------------------------------------------------------------------


def test_build_writes_the_lab_layout(built):
    test = built / "test"
    assert [p.name for p in image_files(test / "masked_image")] == [f"image_{i:03d}.png" for i in range(N_TEST)]
    assert [p.name for p in image_files(test / "mask64")] == [f"mask_{i:03d}.png" for i in range(N_TEST)]
    assert len(image_files(test / "gt")) == N_TEST
    train = image_files(built / "train")
    assert train[0].name == "image_00000.png" and len(train) == N_DISTINCT - N_TEST - N_VAL
    assert len(image_files(built / "val")) == N_VAL
    with Image.open(test / "mask64" / "mask_000.png") as mask:
        assert mask.mode == "L" and set(np.unique(np.asarray(mask))) == {0, 255}
    manifest = json.loads((built / "benchmark.json").read_text())
    assert manifest["images_found"] == N_DISTINCT + N_DUPLICATES
    assert manifest["duplicates_removed"] == N_DUPLICATES
    assert manifest["splits"] == {"train": 20, "val": N_VAL, "test": N_TEST}
    assert manifest["content_hash"] == load_test_set(built).content_hash()


def test_test_set_round_trips_through_files(built):
    test = load_test_set(built)
    assert test.masked.shape == (N_TEST, 3, 64, 64) and test.masked.dtype == torch.uint8
    assert test.holes.shape == (N_TEST, 64, 64) and test.holes.dtype == torch.bool
    assert test.names[0] == "image_000.png" and test.root == built / "test"
    holes = test.holes[:, None].expand(-1, 3, -1, -1)
    assert (test.masked[holes] == 128).all()
    assert torch.equal(test.masked[~holes], test.gt[~holes])
    assert torch.equal(test.gt, read_gt_csv(built / "test" / "test_gt.csv"))
    mask = np.asarray(Image.open(built / "test" / "mask64" / "mask_002.png"))
    assert np.array_equal(test.holes[2].numpy(), mask == 0)
    assert load_test_set(built / "test").content_hash() == test.content_hash()


def test_gt_csv_is_row_col_channel_with_header(tmp_path):
    images = torch.from_numpy(random_images(3, seed=4)).permute(0, 3, 1, 2).contiguous()
    write_gt_csv(tmp_path / "gt.csv", images)
    lines = (tmp_path / "gt.csv").read_text().splitlines()
    assert len(lines) == 4
    row = [int(v) for v in lines[2].split(",")]
    assert len(row) == 12288
    assert row[(5 * 64 + 7) * 3 + 2] == images[1, 2, 5, 7].item()  # image 1, row 5, col 7, blue
    assert torch.equal(read_gt_csv(tmp_path / "gt.csv"), images)


def test_image_folder_loads_in_natural_order(tmp_path):
    images = random_images(3, seed=5)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, image in zip(["2.png", "10.jpg", "1.png"], images):
        Image.fromarray(image).save(folder / name, quality=100)
    (folder / "notes.txt").write_text("ignored")
    loaded = load_image_folder(folder)
    assert loaded.shape == (3, 3, 64, 64)
    assert torch.equal(loaded[0], torch.from_numpy(images[2]).permute(2, 0, 1))  # 1.png
    assert torch.equal(loaded[1], torch.from_numpy(images[0]).permute(2, 0, 1))  # 2.png


def test_gt_folder_wins_over_csv_and_gt_may_be_absent(broken):
    test_dir = broken / "test"
    gt = load_test_set(broken).gt
    write_gt_csv(test_dir / "test_gt.csv", 255 - gt)
    assert torch.equal(load_test_set(broken).gt, gt)
    shutil.rmtree(test_dir / "gt")
    assert torch.equal(load_test_set(test_dir).gt, 255 - gt)
    (test_dir / "test_gt.csv").unlink()
    test = load_test_set(test_dir)
    assert test.gt is None and test.gt_source is None
    assert check_dataset(test_dir).gt_source is None


def test_subset_and_content_hash(built):
    test = load_test_set(built)
    first = test.subset(2)
    assert len(first) == 2 and first.names == test.names[:2] and torch.equal(first.gt, test.gt[:2])
    assert first.content_hash() != test.content_hash()
    changed = test.subset(len(test))
    changed.masked = changed.masked.clone()
    changed.masked[0, 0, 0, 0] ^= 1
    assert changed.content_hash() != test.content_hash()
    with pytest.raises(BenchError, match="at least 1"):
        test.subset(0)


# --- building ---------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_another_seed_differs(source, built, tmp_path):
    again = build_benchmark(source, tmp_path / "again", seed=0, n_test=N_TEST, n_val=N_VAL)
    assert tree_bytes(again) == tree_bytes(built)
    other = build_benchmark(source, tmp_path / "other", seed=1, n_test=N_TEST, n_val=N_VAL)
    assert load_test_set(other).content_hash() != load_test_set(built).content_hash()


def test_no_image_is_in_two_splits(built):
    splits = {"train": load_image_folder(built / "train"), "val": load_image_folder(built / "val"),
              "test": load_test_set(built).gt}
    hashes = [h for images in splits.values() for h in pixel_hashes(images.numpy())]
    assert len(hashes) == len(set(hashes)) == N_DISTINCT


def test_stroke_masks_stay_in_the_coverage_band():
    rng = np.random.default_rng(0)
    coverage = np.array([stroke_mask(rng).mean() for _ in range(300)])
    assert coverage.min() >= 0.15 and coverage.max() <= 0.40
    assert coverage.min() < 0.18 and coverage.max() > 0.37  # the whole band is used
    narrow = np.array([stroke_mask(rng, coverage_range=(0.05, 0.08)).mean() for _ in range(50)])
    assert narrow.min() >= 0.05 and narrow.max() <= 0.08


def test_stroke_masks_are_free_form_not_boxes():
    rng = np.random.default_rng(1)
    for _ in range(20):
        holes = stroke_mask(rng)
        rows, cols = np.nonzero(holes)
        box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert holes.sum() < 0.85 * box


def test_benchmark_masks_are_in_band(built):
    summary = check_dataset(built)
    assert 0.15 <= summary.hole_fraction.min <= summary.hole_fraction.max <= 0.40
    assert (summary.n_train, summary.n_val, summary.n_test) == (20, N_VAL, N_TEST)


def test_build_from_a_folder_of_numbered_jpegs(tmp_path):
    """The layout of the real cat-face folder (JPEGs named by number, with gaps): `limit` takes
    the first images in natural order (2.jpg before 10.jpg), as decoded from the JPEGs."""
    source = tmp_path / "images"
    source.mkdir()
    for number, face in zip(range(1, 100, 2), toyfaces.generate_toyfaces(50, seed=5)):
        Image.fromarray(face).save(source / f"{number}.jpg", quality=90)
    built_from_jpegs = build_benchmark(source, tmp_path / "faces", n_test=5, n_val=5, limit=40)
    summary = check_dataset(built_from_jpegs)
    assert (summary.n_train, summary.n_val, summary.n_test) == (30, 5, 5)
    first_40 = image_files(source)[:40]
    assert [p.name for p in first_40[:6]] == ["1.jpg", "3.jpg", "5.jpg", "7.jpg", "9.jpg", "11.jpg"]
    first_40_hashes = set(pixel_hashes(read_image(p, "RGB") for p in first_40))
    assert set(pixel_hashes(load_test_set(built_from_jpegs).gt.permute(0, 2, 3, 1).numpy())) <= first_40_hashes


def test_refuses_to_overwrite_unless_asked(source, built, tmp_path):
    out = Path(shutil.copytree(built, tmp_path / "existing"))
    with pytest.raises(BenchError, match="existing: folder is not empty"):
        build_benchmark(source, out, seed=3, n_test=N_TEST, n_val=N_VAL)
    build_benchmark(source, out, seed=3, n_test=N_TEST, n_val=N_VAL, overwrite=True)
    assert json.loads((out / "benchmark.json").read_text())["seed"] == 3
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "thesis.tex").write_text("precious")
    with pytest.raises(BenchError, match="stranger: not empty and not a benchmark"):
        build_benchmark(source, stranger, n_test=N_TEST, n_val=N_VAL, overwrite=True)
    assert (stranger / "thesis.tex").exists()


def test_too_few_or_no_source_images(source, tmp_path):
    with pytest.raises(BenchError, match=r"images: 30 distinct images, need at least 31"):
        build_benchmark(source, tmp_path / "out", n_test=20, n_val=10)
    (tmp_path / "empty").mkdir()
    with pytest.raises(BenchError, match="empty: no .png or .jpg images"):
        build_benchmark(tmp_path / "empty", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_crash_leaves_no_half_built_folder(source, tmp_path, monkeypatch):
    def crash(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(data, "write_gt_csv", crash)
    with pytest.raises(RuntimeError):
        build_benchmark(source, tmp_path / "out", n_test=N_TEST, n_val=N_VAL)
    assert list(tmp_path.iterdir()) == []


def test_default_benchmark_is_built_once_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKGIT_BENCH_HOME", str(tmp_path))
    builds = []
    real_build = toyfaces.build_toyfaces_benchmark

    def small_build(out):
        builds.append(out)
        return real_build(out, n_train=8, n_val=2, n_test=3)

    monkeypatch.setattr(toyfaces, "build_toyfaces_benchmark", small_build)
    first = default_benchmark_dir()
    assert first == tmp_path / toyfaces.BENCHMARK_NAME and check_dataset(first).n_test == 3
    assert default_benchmark_dir() == first and len(builds) == 1
    assert [p.name for p in tmp_path.iterdir()] == [toyfaces.BENCHMARK_NAME]


# --- bad inputs -------------------------------------------------------------------------------


def save_png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def rgb(path: Path) -> np.ndarray:
    return np.array(Image.open(path))


def convert(path: Path, mode: str) -> None:
    Image.open(path).convert(mode).save(path)


def break_mask_value(root):
    mask = np.array(Image.open(root / "test/mask64/mask_001.png"))
    mask[0, 0] = 17
    save_png(root / "test/mask64/mask_001.png", mask)


def break_hole_fill(root):
    image = rgb(root / "test/masked_image/image_001.png")
    holes = np.array(Image.open(root / "test/mask64/mask_001.png")) == 0
    image[holes] = 100
    save_png(root / "test/masked_image/image_001.png", image)


def break_known_pixel(root):
    image = rgb(root / "test/masked_image/image_004.png")
    known = np.array(Image.open(root / "test/mask64/mask_004.png")) == 255
    image[known] ^= 1
    save_png(root / "test/masked_image/image_004.png", image)


def truncate(root):
    path = root / "test/gt/image_002.png"
    path.write_bytes(path.read_bytes()[:200])


def use_csv_only(root):
    shutil.rmtree(root / "test/gt")
    return (root / "test/test_gt.csv").read_text().splitlines()


def break_csv_row_length(root):
    lines = use_csv_only(root)
    lines[2] = lines[2].rsplit(",", 1)[0]
    (root / "test/test_gt.csv").write_text("\n".join(lines) + "\n")


def break_csv_row_count(root):
    lines = use_csv_only(root)
    (root / "test/test_gt.csv").write_text("\n".join(lines[:-1]) + "\n")


def break_csv_value(root):
    lines = use_csv_only(root)
    lines[1] = "x" + lines[1]
    (root / "test/test_gt.csv").write_text("\n".join(lines) + "\n")


def break_csv_indices(root):
    """Images 1..5 with a 5-row CSV: row i must be image i, so image 5 has no row."""
    lines = use_csv_only(root)
    (root / "test/test_gt.csv").write_text("\n".join(lines[:-1]) + "\n")
    (root / "test/masked_image/image_000.png").unlink()
    (root / "test/mask64/mask_000.png").unlink()


BREAKAGES = {
    "missing mask folder": (lambda r: shutil.rmtree(r / "test/mask64"), "test/mask64: missing folder"),
    "mask missing": (lambda r: (r / "test/mask64/mask_003.png").unlink(),
                     r"test/masked_image/image_003.png: no file with index 3 in .*mask64 \(6 files vs 5\)"),
    "extra mask": (lambda r: shutil.copy(r / "test/mask64/mask_000.png", r / "test/mask64/mask_099.png"),
                   "test/mask64/mask_099.png: no file with index 99"),
    "gt missing": (lambda r: (r / "test/gt/image_005.png").unlink(), "image_005.png: no file with index 5 in .*gt"),
    "mask value": (break_mask_value, r"test/mask64/mask_001.png: mask has values other than 0/255 \(found 17\)"),
    "mask mode": (lambda r: convert(r / "test/mask64/mask_000.png", "RGB"),
                  "test/mask64/mask_000.png: image mode RGB, expected L"),
    "image mode": (lambda r: convert(r / "test/gt/image_000.png", "RGBA"),
                   "test/gt/image_000.png: image mode RGBA, expected RGB"),
    "image size": (lambda r: Image.new("RGB", (32, 32)).save(r / "test/masked_image/image_002.png"),
                   "test/masked_image/image_002.png: size 32x32, expected 64x64"),
    "truncated png": (truncate, r"test/gt/image_002.png: unreadable image \(image file is truncated"),
    "not gray in holes": (break_hole_fill, r"test/masked_image/image_001.png: \d+ hole pixels are not gray"),
    "differs from gt": (break_known_pixel, r"test/masked_image/image_004.png: differs from its ground truth "
                                           r"in .*test/gt at \d+ pixels outside the holes"),
    "csv row length": (break_csv_row_length, "test/test_gt.csv: line 3 has 12287 values, expected 12288"),
    "csv row count": (break_csv_row_count, r"test/test_gt.csv: 5 image rows, expected 6"),
    "csv not integer": (break_csv_value, "test/test_gt.csv: line 2 has a value that is not an integer"),
    "train image size": (lambda r: Image.new("RGB", (64, 63)).save(r / "train/image_00003.png"),
                         "train/image_00003.png: size 64x63"),
    "manifest count": (lambda r: (r / "val/image_00001.png").unlink(), "benchmark.json: lists 4 val images"),
    "csv rows by position": (break_csv_indices, r"image_005.png: no row for index 5 in .*test_gt.csv"),
}


@pytest.mark.parametrize("case", BREAKAGES)
def test_broken_dataset_names_the_file(broken, case):
    breakage, message = BREAKAGES[case]
    breakage(broken)
    with pytest.raises(BenchError, match=message) as error:
        check_dataset(broken)
    assert "\n" not in str(error.value) and str(broken) in str(error.value)


def test_manifest_hash_mismatch_is_reported(broken):
    manifest = json.loads((broken / "benchmark.json").read_text())
    manifest["content_hash"] = "0" * 16
    (broken / "benchmark.json").write_text(json.dumps(manifest))
    with pytest.raises(BenchError, match="benchmark.json: content_hash 0{16} does not match"):
        check_dataset(broken)


def test_not_a_dataset(tmp_path):
    with pytest.raises(BenchError, match="nowhere: missing folder"):
        check_dataset(tmp_path / "nowhere")
    with pytest.raises(BenchError, match="not a dataset"):
        check_dataset(tmp_path)


# --- the lab's sample and the CLI -------------------------------------------------------------


@pytest.fixture
def lab_sample(tmp_path, lab_sample_mask_file) -> Path:
    """The lab's sample test case, its mask file as the lab ships it, on a toy face: masked_image/,
    mask64/ and gt/ with one image each, holes filled with (128, 128, 128)."""
    root = tmp_path / "lab-sample"
    face = toyfaces.generate_toyfaces(1, seed=3)[0]
    holes = np.asarray(Image.open(lab_sample_mask_file)) == 0
    for sub in ("masked_image", "mask64", "gt"):
        (root / sub).mkdir(parents=True)
    shutil.copyfile(lab_sample_mask_file, root / "mask64" / "mask_000.png")
    Image.fromarray(face).save(root / "gt" / "image_000.png")
    Image.fromarray(np.where(holes[..., None], np.uint8(128), face)).save(root / "masked_image" / "image_000.png")
    return root


def test_lab_sample_loads_and_checks(lab_sample):
    test = load_test_set(lab_sample)
    assert test.names == ["image_000.png"] and test.gt is not None
    summary = check_dataset(lab_sample)
    assert summary.tokens_masked.min == summary.tokens_masked.max == 99
    assert summary.hole_fraction.mean == pytest.approx(0.236, abs=5e-4)
    assert (summary.n_train, summary.n_val, summary.n_test) == (None, None, 1)
    assert any("99" in line for line in format_summary(summary))


def test_cli_check_prints_summary(built):
    result = CliRunner().invoke(cli.app, ["data", "check", str(built)])
    assert result.exit_code == 0, result.output
    assert "train 20, val 4, test 6" in result.stdout
    assert f"content hash: {load_test_set(built).content_hash()}" in result.stdout


def test_cli_check_broken_folder_is_one_line_exit_2(broken):
    break_mask_value(broken)
    result = CliRunner().invoke(cli.app, ["data", "check", str(broken)])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {broken / 'test/mask64/mask_001.png'}: mask has values other than 0/255 (found 17)"]


def test_cli_build_then_check(source, tmp_path):
    out = tmp_path / "cli-built"
    args = ["data", "build", "--source", str(source), "--out", str(out), "--n-test", "3", "--n-val", "2",
            "--seed", "5"]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    assert check_dataset(out).n_test == 3
    again = CliRunner().invoke(cli.app, args)
    assert again.exit_code == 2 and "folder is not empty" in again.stderr
