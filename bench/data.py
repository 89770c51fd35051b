"""Datasets in the lab's layout: read them, validate them, build them from raw images.

Layout (what `write_benchmark` writes; readers take ROOT or a test-only folder like ROOT/test):

    ROOT/train/image_00000.png ...        plain 64x64 RGB images
    ROOT/val/image_00000.png ...
    ROOT/test/masked_image/image_000.png  holes filled with (128, 128, 128)
    ROOT/test/mask64/mask_000.png         mode L, 0 = hole, 255 = known
    ROOT/test/gt/image_000.png            ground truth (wins over test_gt.csv when both exist)
    ROOT/test/test_gt.csv                 the lab's ground truth: a header row, then one row of
                                          12,288 ints per image in (row, col, channel) order
    ROOT/benchmark.json                   manifest: source, seed, counts, content hash

In memory: images are uint8 tensors [N, 3, 64, 64]; hole masks are bool tensors [N, 64, 64],
True = hole.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from bench.errors import BenchError
from bench.files import staged_folder
from maskgit.decoding import pixel_holes_to_token_unknown
from maskgit.holes import COVERAGE_RANGE, IMAGE_SIZE, stroke_mask

TOKEN_SIZE = 4  # a VQGAN token covers 4x4 pixels
HOLE_FILL = 128  # gray that replaces hole pixels in masked images
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MANIFEST = "benchmark.json"
GT_CSV = "test_gt.csv"
VALUES_PER_IMAGE = IMAGE_SIZE * IMAGE_SIZE * 3


# --- in-memory test set ---------------------------------------------------------------------


@dataclass
class TestSet:
    """Masked images and their holes (what inpainting takes) and ground truth (what FID compares)."""

    __test__ = False  # a pytest that imports this class must not collect it

    masked: Tensor  # uint8 [N, 3, 64, 64]
    holes: Tensor  # bool [N, 64, 64], True = hole
    gt: Tensor | None  # uint8 [N, 3, 64, 64], or None when the folder has no ground truth
    names: list[str]  # masked image file names, e.g. "image_000.png"
    root: Path  # the folder holding masked_image/ and mask64/
    gt_source: Path | None = None  # the gt/ folder or test_gt.csv the ground truth came from

    def __len__(self) -> int:
        return len(self.names)

    def subset(self, limit: int) -> TestSet:
        """The first `limit` images: quick runs on a prefix of the test set."""
        if limit < 1:
            raise BenchError(f"--limit must be at least 1 (got {limit})")
        gt = None if self.gt is None else self.gt[:limit]
        return replace(self, masked=self.masked[:limit], holes=self.holes[:limit], gt=gt,
                       names=self.names[:limit])

    def content_hash(self) -> str:
        """Identifies the pixels a run used, whatever the folder is called."""
        return pixels_hash(self.masked, self.holes, self.gt)


def pixels_hash(*tensors: Tensor | None) -> str:
    """Short sha256 (16 hex digits) of a test set's masked images, holes and ground truth (None: no
    ground truth), or of training splits' images."""
    digest = hashlib.sha256()
    for tensor in tensors:
        if tensor is not None:
            digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


# --- reading files --------------------------------------------------------------------------


def natural_key(name: str) -> list:
    """Sort key that puts image_2 before image_10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def image_files(folder: Path) -> list[Path]:
    """The .png/.jpg files of a folder in natural order; hidden files are ignored."""
    if not folder.is_dir():
        raise BenchError(f"{folder}: missing folder")
    files = [path for path in folder.iterdir()
             if path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")]
    if not files:
        raise BenchError(f"{folder}: no .png or .jpg images")
    return sorted(files, key=lambda path: natural_key(path.name))


def read_image(path: Path, mode: str) -> np.ndarray:
    """A 64x64 image in PIL mode `mode` ("RGB" -> [64, 64, 3], "L" -> [64, 64]), uint8."""
    try:
        with Image.open(path) as image:
            image.load()
            pixels = np.asarray(image)
            found_mode, size = image.mode, image.size
    except (OSError, SyntaxError, ValueError) as exc:
        reason = " ".join(str(exc).split())
        raise BenchError(f"{path}: unreadable image ({reason})") from None
    if found_mode != mode:
        raise BenchError(f"{path}: image mode {found_mode}, expected {mode}")
    if size != (IMAGE_SIZE, IMAGE_SIZE):
        raise BenchError(f"{path}: size {size[0]}x{size[1]}, expected {IMAGE_SIZE}x{IMAGE_SIZE}")
    return pixels


def read_mask(path: Path) -> np.ndarray:
    """A mask PNG as bool [64, 64], True = hole (pixel 0); any value but 0/255 is an error."""
    pixels = read_image(path, "L")
    stray = pixels[(pixels != 0) & (pixels != 255)]
    if stray.size:
        raise BenchError(f"{path}: mask has values other than 0/255 (found {stray[0]})")
    return pixels == 0


def _progress(items: Sequence, desc: str) -> Iterable:
    """A progress bar on terminals, silent elsewhere (logs, tests)."""
    return tqdm(items, desc=desc, unit="img", disable=None, leave=False)


def _read_rgb_stack(paths: Sequence[Path], desc: str) -> np.ndarray:
    return np.stack([read_image(path, "RGB") for path in _progress(paths, desc)])


def _to_tensor(images: np.ndarray) -> Tensor:
    """uint8 [N, 64, 64, 3] (PIL's layout) -> uint8 tensor [N, 3, 64, 64]."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def _to_pil_layout(images: Tensor) -> np.ndarray:
    """uint8 tensor [N, 3, 64, 64] -> uint8 [N, 64, 64, 3]."""
    return images.permute(0, 2, 3, 1).contiguous().numpy()


def load_image_folder(path: str | Path) -> Tensor:
    """All .png/.jpg images of a folder, natural order, as uint8 [N, 3, 64, 64]."""
    folder = Path(path)
    return _to_tensor(_read_rgb_stack(image_files(folder), f"reading {folder}"))


def write_gt_csv(path: str | Path, images: Tensor) -> None:
    """The lab's test_gt.csv: a header row, then one row per image in (row, col, channel) order."""
    rows = _to_pil_layout(images).reshape(len(images), -1)
    text = [str(value) for value in range(256)]
    lines = [",".join(str(column) for column in range(rows.shape[1]))]
    lines += [",".join([text[value] for value in row]) for row in rows.tolist()]
    Path(path).write_text("\n".join(lines) + "\n")


def read_gt_csv(path: str | Path) -> Tensor:
    """Images from a test_gt.csv (header row skipped) as uint8 [N, 3, 64, 64]."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchError(f"{path}: unreadable ({' '.join(str(exc).split())})") from None
    rows = [(number, line) for number, line in enumerate(lines[1:], start=2) if line.strip()]
    if not rows:
        raise BenchError(f"{path}: no image rows after the header")
    images = np.stack([_parse_csv_row(path, number, line) for number, line in rows])
    return _to_tensor(images.astype(np.uint8).reshape(-1, IMAGE_SIZE, IMAGE_SIZE, 3))


def _parse_csv_row(path: Path, number: int, line: str) -> np.ndarray:
    try:
        values = np.array(line.split(","), dtype=np.int64)
    except ValueError:
        raise BenchError(f"{path}: line {number} has a value that is not an integer") from None
    if values.size != VALUES_PER_IMAGE:
        raise BenchError(f"{path}: line {number} has {values.size} values, expected "
                         f"{VALUES_PER_IMAGE} (64x64x3)")
    if values.min() < 0 or values.max() > 255:
        raise BenchError(f"{path}: line {number} has values outside 0..255")
    return values


# --- test sets ------------------------------------------------------------------------------


def _test_dir(path: Path) -> Path:
    """ROOT/test for a benchmark root, the folder itself for a test-only folder."""
    if not path.is_dir():
        raise BenchError(f"{path}: missing folder")
    if (path / "test").is_dir():
        return path / "test"
    if (path / "masked_image").is_dir():
        return path
    raise BenchError(f"{path}: not a dataset (no test/ or masked_image/ folder)")


def _indexed_files(folder: Path) -> dict[int, Path]:
    """A folder's images keyed by the number ending their name (image_007.png -> 7)."""
    indexed: dict[int, Path] = {}
    for path in image_files(folder):
        match = re.search(r"(\d+)$", path.stem)
        if match is None:
            raise BenchError(f"{path}: file name has no index number (expected e.g. image_000.png)")
        index = int(match.group(1))
        if index in indexed:
            raise BenchError(f"{path}: same index as {indexed[index].name}")
        indexed[index] = path
    return indexed


def _require_pairs(files: dict[int, Path], partners: dict[int, Path]) -> None:
    """Every file has a partner with the same index in the other folder, both ways."""
    for mine, theirs in ((files, partners), (partners, files)):
        unpaired = sorted(mine.keys() - theirs.keys())
        if unpaired:
            index, their_folder = unpaired[0], next(iter(theirs.values())).parent
            raise BenchError(f"{mine[index]}: no file with index {index} in {their_folder} "
                             f"({len(mine)} files vs {len(theirs)})")


def load_test_set(path: str | Path) -> TestSet:
    """A test set from a benchmark ROOT (uses ROOT/test) or a test-only folder.

    Checks what reading needs (pairing, sizes, modes, 0/255 masks); `check_dataset` checks the rest.
    """
    root = _test_dir(Path(path))
    masked_files = _indexed_files(root / "masked_image")
    mask_files = _indexed_files(root / "mask64")
    _require_pairs(masked_files, mask_files)
    indices = sorted(masked_files)
    masked = _read_rgb_stack([masked_files[i] for i in indices], f"reading {root}")
    holes = np.stack([read_mask(mask_files[i]) for i in indices])
    gt, gt_source = _load_gt(root, masked_files)
    return TestSet(masked=_to_tensor(masked), holes=torch.from_numpy(holes), gt=gt,
                   names=[masked_files[i].name for i in indices], root=root, gt_source=gt_source)


def _load_gt(root: Path, masked_files: dict[int, Path]) -> tuple[Tensor | None, Path | None]:
    """Ground truth in the masked images' order from gt/ or else test_gt.csv; None if neither."""
    folder, csv = root / "gt", root / GT_CSV
    indices = sorted(masked_files)
    if folder.is_dir():
        gt_files = _indexed_files(folder)
        _require_pairs(masked_files, gt_files)
        return _to_tensor(_read_rgb_stack([gt_files[i] for i in indices], f"reading {folder}")), folder
    if not csv.is_file():
        return None, None
    gt = read_gt_csv(csv)
    if len(gt) != len(indices):
        raise BenchError(f"{csv}: {len(gt)} image rows, expected {len(indices)} (one per masked image)")
    if indices[-1] >= len(gt):  # same count, unique indices: only 0..N-1 pair with rows by position
        raise BenchError(f"{masked_files[indices[-1]]}: no row for index {indices[-1]} in {csv} "
                         f"(row i is image i; {len(gt)} rows)")
    return gt, csv


# --- checking -------------------------------------------------------------------------------


class Spread(NamedTuple):
    min: float
    mean: float
    max: float


def _spread(values: Tensor) -> Spread:
    values = values.double()
    return Spread(values.min().item(), values.mean().item(), values.max().item())


@dataclass(frozen=True)
class DatasetSummary:
    """What `bench data check` reports about a valid dataset."""

    root: Path  # the folder checked
    n_test: int
    n_train: int | None  # None: no train/ folder (a test-only folder)
    n_val: int | None
    gt_source: Path | None  # gt/ folder or test_gt.csv; None: no ground truth
    hole_fraction: Spread  # of the 64x64 pixels, per image
    tokens_masked: Spread  # of the 256 tokens, per image (see `masked_tokens`)
    content_hash: str


def check_dataset(path: str | Path) -> DatasetSummary:
    """Validate a benchmark ROOT or test-only folder; raise BenchError naming the first bad file."""
    path = Path(path)
    test = load_test_set(path)
    _check_masked_pixels(test)
    counts = {"test": len(test)}
    if test.root != path:
        counts |= {name: _count_valid_images(path / name)
                   for name in ("train", "val") if (path / name).is_dir()}
    if (path / MANIFEST).is_file():
        _check_manifest(path / MANIFEST, counts, test.content_hash())
    return DatasetSummary(
        root=path, n_test=len(test), n_train=counts.get("train"), n_val=counts.get("val"),
        gt_source=test.gt_source, hole_fraction=_spread(test.holes.float().mean(dim=(1, 2))),
        tokens_masked=_spread(pixel_holes_to_token_unknown(test.holes, TOKEN_SIZE).sum(dim=1)),
        content_hash=test.content_hash())


def _check_masked_pixels(test: TestSet) -> None:
    """Holes hold (128, 128, 128); outside them the masked image equals the ground truth."""
    not_gray = ((test.masked != HOLE_FILL).any(dim=1) & test.holes).sum(dim=(1, 2))
    for name, count in zip(test.names, not_gray.tolist()):
        if count:
            raise BenchError(f"{test.root / 'masked_image' / name}: {count} hole pixels are not "
                             f"gray ({HOLE_FILL},{HOLE_FILL},{HOLE_FILL})")
    if test.gt is None:
        return
    differs = ((test.masked != test.gt).any(dim=1) & ~test.holes).sum(dim=(1, 2))
    for name, count in zip(test.names, differs.tolist()):
        if count:
            raise BenchError(f"{test.root / 'masked_image' / name}: differs from its ground truth "
                             f"in {test.gt_source} at {count} pixels outside the holes")


def _count_valid_images(folder: Path) -> int:
    files = image_files(folder)
    for path in _progress(files, f"checking {folder}"):
        read_image(path, "RGB")
    return len(files)


def _check_manifest(path: Path, counts: dict[str, int], content_hash: str) -> None:
    try:
        manifest = json.loads(path.read_text())
        listed = manifest["splits"]
        listed_hash = manifest["content_hash"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BenchError(f"{path}: unreadable manifest ({' '.join(str(exc).split())})") from None
    for split, count in counts.items():
        if listed.get(split) != count:
            raise BenchError(f"{path}: lists {listed.get(split)} {split} images, "
                             f"{path.parent / split} has {count}")
    if listed_hash != content_hash:
        raise BenchError(f"{path}: content_hash {listed_hash} does not match the test set "
                         f"({content_hash}); its files changed after the build")


def format_summary(summary: DatasetSummary) -> list[str]:
    """The summary as lines for the terminal."""
    splits = [f"{name} {count}" for name, count in
              (("train", summary.n_train), ("val", summary.n_val), ("test", summary.n_test))
              if count is not None]
    holes, tokens = summary.hole_fraction, summary.tokens_masked
    return [
        f"dataset: {summary.root} (valid)",
        f"images: {', '.join(splits)} ({IMAGE_SIZE}x{IMAGE_SIZE} RGB)",
        f"ground truth: {summary.gt_source or 'none'}",
        f"hole pixels per image: min {holes.min:.1%}, mean {holes.mean:.1%}, max {holes.max:.1%}",
        f"masked tokens per image (of 256; any hole pixel in its 4x4): min {tokens.min:.0f}, "
        f"mean {tokens.mean:.1f}, max {tokens.max:.0f}",
        f"content hash: {summary.content_hash}",
    ]


# --- building -------------------------------------------------------------------------------


def build_benchmark(source: str | Path, out: str | Path, seed: int = 0, n_test: int = 747,
                    n_val: int = 1000, n_train: int | None = None, limit: int | None = None,
                    overwrite: bool = False) -> Path:
    """A lab-layout benchmark from a folder of raw 64x64 RGB images (see `write_benchmark`).

    `limit` takes only the first images of the folder (natural order): quick builds and tests.
    """
    source, out = Path(source), Path(out)
    _require_writable(out, overwrite)
    if limit is not None and limit < 1:
        raise BenchError(f"--limit must be at least 1 (got {limit})")
    files = image_files(source)[:limit]
    images = _read_rgb_stack(files, f"reading {source}")
    return write_benchmark(images, out, source=str(source.resolve()), seed=seed, n_test=n_test,
                           n_val=n_val, n_train=n_train, overwrite=overwrite)


def write_benchmark(images: np.ndarray, out: str | Path, *, source: str, seed: int = 0,
                    n_test: int = 747, n_val: int = 1000, n_train: int | None = None,
                    overwrite: bool = False) -> Path:
    """Split uint8 images [N, 64, 64, 3] into train/val/test, mask the test set, write the layout.

    Exact duplicates are dropped before splitting so no image sits in two splits. The split
    and the masks come from `seed` alone: the same images and seed give byte-identical files.
    `n_train` None takes every image left after test and val. The folder appears complete or
    not at all.
    """
    out = Path(out)
    _require_writable(out, overwrite)
    distinct = _distinct(images)
    split_seed, mask_seed = np.random.SeedSequence(seed).spawn(2)
    splits = _split(len(distinct), np.random.default_rng(split_seed), source=source,
                    n_test=n_test, n_val=n_val, n_train=n_train)
    mask_rng = np.random.default_rng(mask_seed)
    holes = np.stack([stroke_mask(mask_rng) for _ in range(n_test)])
    gt = distinct[splits["test"]]
    masked = np.where(holes[..., None], np.uint8(HOLE_FILL), gt)
    manifest = {
        "format": "maskgit-bench benchmark 1",
        "source": source,
        "seed": seed,
        "images_found": len(images),
        "duplicates_removed": len(images) - len(distinct),
        "splits": {name: len(indices) for name, indices in splits.items()},
        "mask_coverage": list(COVERAGE_RANGE),
        "content_hash": pixels_hash(_to_tensor(masked), torch.from_numpy(holes), _to_tensor(gt)),
    }
    with staged_folder(out, overwrite) as staging:
        for name in ("train", "val"):
            if len(splits[name]):
                _write_pngs(staging / name, "image_", 5, distinct[splits[name]])
        _write_pngs(staging / "test" / "masked_image", "image_", 3, masked)
        _write_pngs(staging / "test" / "mask64", "mask_", 3, np.where(holes, 0, 255).astype(np.uint8))
        _write_pngs(staging / "test" / "gt", "image_", 3, gt)
        write_gt_csv(staging / "test" / GT_CSV, _to_tensor(gt))
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return out


def _distinct(images: np.ndarray) -> np.ndarray:
    """The images without exact pixel duplicates, first occurrences in their original order."""
    seen: set[bytes] = set()
    keep = []
    for index, image in enumerate(images):
        digest = hashlib.sha256(image.tobytes()).digest()
        if digest not in seen:
            seen.add(digest)
            keep.append(index)
    return images[keep]


def _split(count: int, rng: np.random.Generator, *, source: str, n_test: int, n_val: int,
           n_train: int | None) -> dict[str, np.ndarray]:
    """Indices of each split from one random permutation (test first, then val, then train)."""
    for option, value, least in (("--n-test", n_test, 1), ("--n-val", n_val, 0),
                                  ("--n-train", n_train, 1)):
        if value is not None and value < least:
            raise BenchError(f"{option} must be at least {least} (got {value})")
    needed = n_test + n_val + (n_train or 1)
    if count < needed:
        raise BenchError(f"{source}: {count} distinct images, need at least {needed} "
                         f"(test {n_test} + val {n_val} + train {n_train or 'at least 1'})")
    order = rng.permutation(count)
    end_val = n_test + n_val
    end_train = count if n_train is None else end_val + n_train
    return {"train": order[end_val:end_train], "val": order[n_test:end_val], "test": order[:n_test]}


def _write_pngs(folder: Path, prefix: str, min_digits: int, images: np.ndarray) -> None:
    """images[i] -> folder/{prefix}{i}.png, i zero-padded to min_digits or as wide as needed."""
    folder.mkdir(parents=True)
    digits = max(min_digits, len(str(len(images) - 1)))
    for index, image in enumerate(_progress(images, f"writing {folder.name}")):
        Image.fromarray(image).save(folder / f"{prefix}{index:0{digits}d}.png")


def _require_writable(out: Path, overwrite: bool) -> None:
    """A non-empty OUT is replaced only with overwrite, and only if it is a benchmark itself."""
    if out.exists() and not out.is_dir():
        raise BenchError(f"{out}: exists and is not a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not overwrite:
        raise BenchError(f"{out}: folder is not empty (--overwrite replaces an existing benchmark)")
    if not (out / MANIFEST).is_file():
        raise BenchError(f"{out}: not empty and not a benchmark (no {MANIFEST}); refusing to replace it")
