"""bench.trial: settings, batched decoding, the FID curve, the sweet spot and the result cache.

A tiny random MaskGIT on six toy faces; each FID costs seconds here, so only three are computed.
"""

from __future__ import annotations

import pytest
import torch

from bench.data import load_test_set
from bench.trial import AUTO, Evaluator, TrialSettings, latent_mask_image, masked_image_tokens
from maskgit.checkpoints import load_checkpoint
from maskgit.decoding import DecodeConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")

CURVE_SETTINGS = TrialSettings(DecodeConfig(schedule="cosine", steps=2), seed=7)


@pytest.fixture
def cold_home(tmp_path, inception_weights, monkeypatch):
    """An empty cache home: nothing evaluated before."""
    from bench import inception_weights as weights_lookup

    monkeypatch.setenv("MASKGIT_BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv(weights_lookup.WEIGHTS_ENV, str(inception_weights))
    return tmp_path / "home"


def make_evaluator(checkpoint, data, batch_size=4, cache=True, **options) -> Evaluator:
    model, config = load_checkpoint(checkpoint)
    return Evaluator(model, config["weights_sha256"], load_test_set(data), batch_size=batch_size, cache=cache,
                     progress=False, **options)


def test_settings_round_trip_through_recorded_params():
    settings = TrialSettings(DecodeConfig(schedule="pow2.5", steps=5, sampling=False, choice_temperature=0.0),
                             sweet_spot=3, composite="feather", feather=3, seed=11)
    params = settings.params()
    assert params["sweet_spot"] == 3 and params["schedule"] == "pow2.5" and params["sampling"] is False
    assert TrialSettings.from_params(params) == settings
    as_mlflow_stores_them = {name: str(value) for name, value in params.items()}
    assert TrialSettings.from_params(as_mlflow_stores_them) == settings
    assert TrialSettings().params()["sweet_spot"] == AUTO
    assert TrialSettings.from_params({"sweet_spot": "auto"}).sweet_spot is None


@pytest.mark.parametrize("params, message", [
    ({"steps": 4, "sweet_spot": 5}, "sweet spot"),
    ({"composite": "blend"}, "composite"),
    ({"feather": 0}, "feather"),
    ({"schedule": "nope"}, "schedule"),
    ({"flavour": "x"}, "unknown setting"),
])
def test_invalid_settings_are_refused(params, message):
    with pytest.raises(ValueError, match=message):
        TrialSettings.from_params(params)


def test_steps_needed():
    assert TrialSettings(DecodeConfig(steps=4)).steps_needed() == [1, 2, 3, 4]
    assert TrialSettings(DecodeConfig(steps=4), sweet_spot=2).steps_needed() == [2, 4]
    assert TrialSettings(DecodeConfig(steps=4), sweet_spot=4).steps_needed() == [4]


def test_decoding_does_not_depend_on_the_batch_size(bench_home, tiny_checkpoint, tiny_test_set):
    settings = TrialSettings(DecodeConfig(schedule="linear", steps=3), seed=3)
    by_four = make_evaluator(tiny_checkpoint, tiny_test_set, batch_size=4).decode(settings)
    by_one = make_evaluator(tiny_checkpoint, tiny_test_set, batch_size=1).decode(settings)
    assert by_four.filled.shape == (3, 6, 256)
    assert torch.equal(by_four.filled, by_one.filled)
    assert torch.equal(by_four.still_masked, by_one.still_masked)
    assert not by_four.still_masked[-1].any()


def test_composite_keeps_the_known_pixels(bench_home, tiny_checkpoint, tiny_test_set):
    evaluator = make_evaluator(tiny_checkpoint, tiny_test_set)
    test = evaluator.test
    for composite in ("hard", "feather", "seamless"):
        settings = TrialSettings(DecodeConfig(steps=2), composite=composite)
        images = evaluator.images(evaluator.decode(settings).filled[-1], settings)
        known = ~test.holes[:, None].expand_as(images)
        assert torch.equal(images[known], test.masked[known])


def test_tokens_are_cached_in_memory_and_on_disk(bench_home, tiny_checkpoint, tiny_test_set, monkeypatch):
    monkeypatch.setattr("bench.trial._TOKENS", {})  # an earlier test's tokens in memory would skip the disk write
    evaluator = make_evaluator(tiny_checkpoint, tiny_test_set)
    tokens = evaluator.tokens
    assert tokens.shape == (6, 256) and tokens.dtype == torch.long
    assert list((bench_home / "tokens").glob(f"{evaluator.checkpoint_sha}-*.pt"))
    again = masked_image_tokens(evaluator.model, evaluator.checkpoint_sha, evaluator.test, "cpu", 2)
    assert again is tokens


def test_latent_mask_image_shows_known_committed_and_masked_tokens():
    unknown = torch.zeros(1, 256, dtype=torch.bool)
    unknown[0, :2] = True
    masked = torch.zeros_like(unknown)
    masked[0, 0] = True
    image = latent_mask_image(unknown, masked)
    assert image.shape == (1, 3, 64, 64) and image.dtype == torch.uint8
    assert image[0, :, 0, 0].tolist() == [255] * 3  # still masked
    assert image[0, :, 0, 4].tolist() == [150] * 3  # committed by the decoder
    assert image[0, :, 0, 8].tolist() == [40] * 3  # known from the start


def test_a_trial_computes_the_curve_once_and_answers_again_from_the_cache(cold_home, tiny_checkpoint,
                                                                          tiny_test_set):
    evaluator = make_evaluator(tiny_checkpoint, tiny_test_set)
    seen = []
    result = evaluator.evaluate(CURVE_SETTINGS, on_step=seen.append)
    assert [score.step for score in seen] == [1, 2] and not result.cached
    assert sorted(result.curve) == [1, 2]
    best = min(result.curve.values(), key=lambda score: score.fid)
    assert result.best_step == best.step and result.best_fid == best.fid
    assert result.final_fid == result.curve[2].fid and result.kid == best.kid is not None
    assert set(result.seconds) == {"decode", "pixels", "fid", "uncertainty", "uncertainty_cpu", "total"}
    rows, columns = 4, 1 + 2 + 1  # masked input, each step, ground truth
    assert result.progression.shape == (3, 2 + rows * 66, 2 + columns * 66)
    assert result.latent_mask.shape == (3, 2 + rows * 66, 2 + 3 * 66)  # before decoding, after each step
    assert result.curve_csv().splitlines()[0] == "step,fid,fid_ci_low,fid_ci_high,fid_infinity,kid,kid_std"

    again = []
    cached = make_evaluator(tiny_checkpoint, tiny_test_set, batch_size=6).evaluate(CURVE_SETTINGS, on_step=again.append)
    assert cached.cached and again == seen and cached.curve == result.curve
    assert torch.equal(cached.progression, result.progression)

    chosen = TrialSettings(CURVE_SETTINGS.decode, sweet_spot=1, seed=CURVE_SETTINGS.seed)
    at_one = evaluator.evaluate(chosen)  # the sweet spot only picks steps of the same decode
    assert at_one.cached and at_one.best_step == 1 and at_one.best_fid == result.curve[1].fid
    assert at_one.final_fid == result.final_fid


def test_figures_are_the_same_whichever_steps_were_scored(bench_home, tiny_checkpoint, tiny_test_set):
    """The figures reuse the scored steps' pixels and decode the others: same picture either way."""
    evaluator = make_evaluator(tiny_checkpoint, tiny_test_set, cache=False)
    every_step = evaluator.evaluate(CURVE_SETTINGS)
    one_step = evaluator.evaluate(TrialSettings(CURVE_SETTINGS.decode, sweet_spot=2, seed=CURVE_SETTINGS.seed))
    assert sorted(one_step.curve) == [2]
    assert torch.equal(one_step.progression, every_step.progression)
    assert torch.equal(one_step.latent_mask, every_step.latent_mask)


def test_an_interrupted_trial_caches_nothing(cold_home, tiny_checkpoint, tiny_test_set, stand_in_features,
                                            monkeypatch):
    from bench import trial

    monkeypatch.setattr(trial, "InceptionFeatures", stand_in_features)  # its value does not matter here
    evaluator = make_evaluator(tiny_checkpoint, tiny_test_set)

    def stop(score):
        raise RuntimeError(f"stopped at step {score.step}")

    with pytest.raises(RuntimeError, match="step 1"):
        evaluator.evaluate(CURVE_SETTINGS, on_step=stop)
    assert not (cold_home / "trials").exists() or not any((cold_home / "trials").iterdir())


def test_curves_of_one_decode_merge_in_the_cache(instant_fid, tiny_checkpoint, tiny_test_set):
    evaluator = make_evaluator(tiny_checkpoint, tiny_test_set)
    decode = DecodeConfig(schedule="square", steps=3)
    at_three = evaluator.evaluate(TrialSettings(decode, sweet_spot=3))
    assert sorted(at_three.curve) == [3] and not at_three.cached
    auto = evaluator.evaluate(TrialSettings(decode))  # needs steps 1 and 2 too: computed, then merged
    assert sorted(auto.curve) == [1, 2, 3] and not auto.cached and auto.curve[3] == at_three.curve[3]
    at_two = evaluator.evaluate(TrialSettings(decode, sweet_spot=2))
    assert at_two.cached and sorted(at_two.curve) == [2, 3] and at_two.curve[2] == auto.curve[2]
    other_seed = evaluator.evaluate(TrialSettings(decode, sweet_spot=3, seed=1))
    assert not other_seed.cached


def test_a_compiled_evaluator_runs_compiled_networks_and_caches_its_trials_apart(instant_fid, tiny_checkpoint,
                                                                                 tiny_test_set):
    """Compiled and eager decoding give the same tokens; their floats cannot agree bit for bit on the
    CPU: inductor fuses the softmax and layer norms into loops of its own that sum in another order,
    so logits differ in their last bits (1.5e-7 of 0.45 measured). A token could only differ where
    a uniform or a confidence falls that close to a boundary, which none here does; decoded pixels
    may then differ by one grey level where a value sits on a rounding edge."""
    settings = TrialSettings(DecodeConfig(schedule="cosine", steps=2), seed=5)
    eager = make_evaluator(tiny_checkpoint, tiny_test_set)
    compiled = make_evaluator(tiny_checkpoint, tiny_test_set, compiled=True)
    assert isinstance(compiled.transformer, torch._dynamo.eval_frame.OptimizedModule)
    assert compiled.provenance() == {**eager.provenance(), "compiled": "torch.compile"}
    eager.evaluate(settings)
    first = compiled.evaluate(settings)
    assert not first.cached and compiled.evaluate(settings).cached  # never answered by the eager result
    decoded = compiled.decode(settings)
    assert torch.equal(decoded.filled, eager.decode(settings).filled)
    assert torch.equal(decoded.still_masked, eager.decode(settings).still_masked)
    inputs = decoded.filled[0].masked_fill(decoded.still_masked[0], compiled.model.mask_token_id)
    with torch.inference_mode():
        logits = {name: e.transformer(inputs) for name, e in (("eager", eager), ("compiled", compiled))}
    assert (logits["compiled"] - logits["eager"]).abs().max() <= 1e-5 * logits["eager"].abs().max()
    pixels = [e.images(decoded.filled[-1], settings).int() for e in (eager, compiled)]
    assert (pixels[0] - pixels[1]).abs().max() <= 1
