import math

import numpy as np
import pytest
import torch
from PIL import Image

from maskgit.decoding import (
    DecodeConfig,
    DecodeState,
    StepNoise,
    composite,
    decode_step,
    dilate_tokens,
    image_generators,
    inpaint_tokens,
    pixel_holes_to_token_unknown,
    sample_tokens,
)
from maskgit.schedules import masked_counts
from maskgit.transformer import BidirectionalTransformer, TransformerConfig

K = 16


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    cfg = TransformerConfig(num_codebook_vectors=K, dim=32, n_layers=1, hidden_dim=64, n_heads=4)
    return BidirectionalTransformer(cfg).eval()


@pytest.fixture(scope="module")
def batch():
    """Five images with different N0: none, one, a few, about half, almost all unknown."""
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, K, (5, 256), generator=g)
    unknown = torch.zeros(5, 256, dtype=torch.bool)
    for i, n in enumerate([0, 1, 7, 120, 250]):
        unknown[i, torch.randperm(256, generator=g)[:n]] = True
    return tokens, unknown


def decode(model, batch, seed=0, **settings):
    tokens, unknown = batch
    cfg = DecodeConfig(**settings)
    gens = image_generators(seed, len(tokens)) if cfg.needs_generator else None
    return inpaint_tokens(model, tokens, unknown, cfg, gens)


# -------------------------------------------------- invariants of docs/architecture.md#decoding


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"schedule": "linear", "steps": 5, "anneal": "none", "confidence": "prob"},
        {"schedule": "log", "steps": 12, "anneal": "cosine", "sampling_temperature": 0.5},
        {"schedule": "lab-cosine", "steps": 1},
        {"sampling": False, "choice_temperature": 0.0, "steps": 6},
    ],
)
def test_decoder_invariants(model, batch, settings):
    tokens, unknown = batch
    result = decode(model, batch, **settings)
    steps = DecodeConfig(**settings).steps
    assert result.filled.shape == (steps, 5, 256) and result.filled.dtype == torch.long
    assert result.still_masked.shape == (steps, 5, 256) and result.still_masked.dtype == torch.bool

    # known tokens never change, and every filled position holds a real codebook token
    assert (result.filled[:, ~unknown] == tokens[~unknown]).all()
    assert ((result.filled >= 0) & (result.filled < K)).all()
    # exactly n_t masked after step t, only unknown tokens, none after the last step
    expected_counts = masked_counts(settings.get("schedule", "cosine"), steps, unknown.sum(1))
    assert torch.equal(result.still_masked.sum(-1), expected_counts)
    assert not (result.still_masked & ~unknown).any()
    assert not result.still_masked[-1].any()
    # committed tokens never change: a position unmasked after step t keeps its token from then on
    for t in range(1, steps):
        committed = ~result.still_masked[t - 1]
        assert not (result.still_masked[t] & committed).any()
        assert torch.equal(result.filled[t][committed], result.filled[t - 1][committed])


def test_sweet_spot_is_filled_at_s_minus_one(model, batch):
    result = decode(model, batch, steps=4)
    assert torch.equal(result.at_sweet_spot(1), result.filled[0])
    assert torch.equal(result.at_sweet_spot(4), result.filled[3])
    with pytest.raises(ValueError, match=r"sweet spot must be in \[1, 4\], got 0"):
        result.at_sweet_spot(0)


def test_image_with_no_unknown_tokens_is_returned_unchanged(model, batch):
    tokens, _ = batch
    result = decode(model, batch)
    assert (result.filled[:, 0] == tokens[0]).all()
    assert not result.still_masked[:, 0].any()


def test_first_step_masks_the_lowest_confidence_positions(model, batch):
    # argmax, no choice noise: confidence is the log-probability of the argmax token.
    tokens, unknown = batch
    result = decode(model, batch, sampling=False, choice_temperature=0.0, steps=4)
    with torch.no_grad():
        logits = model(tokens.masked_fill(unknown, K))
    log_probs = torch.log_softmax(logits[..., :K], dim=-1)
    best, argmax = log_probs.max(dim=-1)
    assert torch.equal(result.filled[0][unknown], argmax[unknown])
    counts = masked_counts("cosine", 4, unknown.sum(1))[0]
    for b in range(5):
        confidence = best[b].masked_fill(~unknown[b], math.inf)
        expected = torch.zeros(256, dtype=torch.bool)
        expected[confidence.argsort(stable=True)[: counts[b]]] = True
        assert torch.equal(result.still_masked[0, b], expected)


def test_choice_noise_scale_follows_the_anneal():
    assert DecodeConfig(steps=4, choice_temperature=2.0).choice_noise_scale(1) == pytest.approx(1.0)
    assert DecodeConfig(steps=4, choice_temperature=2.0).choice_noise_scale(3) == 0.0
    assert DecodeConfig(steps=4, choice_temperature=2.0, anneal="none").choice_noise_scale(3) == 2.0
    cosine = DecodeConfig(steps=4, choice_temperature=2.0, anneal="cosine")
    assert cosine.choice_noise_scale(1) == pytest.approx(2.0 * math.cos(math.pi / 4))


@pytest.mark.parametrize(
    "confidence, choice_temperature, expected_masked",
    [("log", 1.0, [True, False]), ("prob", 1.0, [False, True]), ("prob", 0.0, [True, False])],
)
def test_confidence_is_score_plus_scaled_gumbel(confidence, choice_temperature, expected_masked):
    # Two masked tokens, argmax samples with p = 0.5 and p = 0.9, Gumbel noise 0.5 and 0.0:
    # log:  ln 0.5 + 0.5 = -0.19 < ln 0.9 = -0.11  -> the first stays masked
    # prob:    0.5 + 0.5 =  1.00 >    0.9         -> the second stays masked
    logits = torch.log(torch.tensor([[[0.5, 0.5, 0.0], [0.9, 0.1, 0.0]]]))
    state = DecodeState(torch.tensor([[2, 2]]), torch.tensor([[True, True]]))
    choice_u = torch.tensor([[math.exp(-math.exp(-0.5)), math.exp(-1.0)]], dtype=torch.float64)
    cfg = DecodeConfig(sampling=False, choice_temperature=choice_temperature, anneal="none", confidence=confidence)
    noise = StepNoise(None, choice_u if choice_temperature else None)
    next_state, filled = decode_step(state, logits, torch.tensor([1]), noise, cfg, mask_token_id=2)
    assert filled.tolist() == [[0, 0]]
    assert next_state.masked.tolist() == [expected_masked]
    assert next_state.tokens.tolist() == [[2 if m else 0 for m in expected_masked]]
    assert next_state.step == 1


# ---------------------------------------------------------------- randomness


def test_same_seed_same_tokens_different_seed_different_tokens(model, batch):
    a, b, c = decode(model, batch, seed=7), decode(model, batch, seed=7), decode(model, batch, seed=8)
    assert torch.equal(a.filled, b.filled) and torch.equal(a.still_masked, b.still_masked)
    assert not torch.equal(a.filled[-1], c.filled[-1])


def test_global_random_state_is_not_used(model, batch):
    before = torch.get_rng_state()
    decode(model, batch, seed=5)
    assert torch.equal(torch.get_rng_state(), before)


def test_argmax_without_noise_is_deterministic_without_generator(model, batch):
    tokens, unknown = batch
    cfg = DecodeConfig(sampling=False, choice_temperature=0.0)
    first = inpaint_tokens(model, tokens, unknown, cfg, None)
    second = inpaint_tokens(model, tokens, unknown, cfg, None)
    assert torch.equal(first.filled, second.filled)


@pytest.mark.parametrize("settings", [{}, {"sampling": False}, {"choice_temperature": 0.0}])
def test_randomness_without_generator_is_refused(model, batch, settings):
    tokens, unknown = batch
    with pytest.raises(ValueError, match="needs a generator"):
        inpaint_tokens(model, tokens, unknown, DecodeConfig(**settings), None)


def test_batch_equals_one_by_one_with_per_image_streams(model, batch):
    tokens, unknown = batch
    cfg = DecodeConfig(steps=6)
    whole = inpaint_tokens(model, tokens, unknown, cfg, image_generators(11, 5))
    for chunk in [slice(0, 1), slice(1, 3), slice(3, 5)]:
        indices = range(chunk.start, chunk.stop)  # dataset indices seed the per-image streams
        part = inpaint_tokens(model, tokens[chunk], unknown[chunk], cfg, image_generators(11, indices))
        assert torch.equal(part.filled, whole.filled[:, chunk])
        assert torch.equal(part.still_masked, whole.still_masked[:, chunk])


def test_stopping_after_s_steps_gives_the_first_s_steps_of_a_full_run(model, batch):
    tokens, unknown = batch
    cfg = DecodeConfig(steps=6)
    whole = inpaint_tokens(model, tokens, unknown, cfg, image_generators(3, 5))
    part = inpaint_tokens(model, tokens, unknown, cfg, image_generators(3, 5), stop_after=4)
    assert part.filled.shape[0] == 4
    assert torch.equal(part.filled, whole.filled[:4]) and torch.equal(part.still_masked, whole.still_masked[:4])
    with pytest.raises(ValueError, match="stop_after must be in 1..6"):
        inpaint_tokens(model, tokens, unknown, cfg, image_generators(3, 5), stop_after=7)


def test_single_generator_is_one_reproducible_batch_stream(model, batch):
    tokens, unknown = batch
    cfg = DecodeConfig()
    a = inpaint_tokens(model, tokens, unknown, cfg, torch.Generator().manual_seed(2))
    b = inpaint_tokens(model, tokens, unknown, cfg, torch.Generator().manual_seed(2))
    assert torch.equal(a.filled, b.filled)


def test_image_generators_are_distinct_per_seed_and_index():
    draws = {(s, i): torch.rand(4, generator=g).tolist() for s in (0, 1) for i, g in enumerate(image_generators(s, 3))}
    assert len({tuple(v) for v in draws.values()}) == 6
    assert torch.rand(4, generator=image_generators(1, [2])[0]).tolist() == draws[(1, 2)]


def test_generator_count_must_match_batch(model, batch):
    tokens, unknown = batch
    with pytest.raises(ValueError, match="got 2 generators for a batch of 5 images"):
        inpaint_tokens(model, tokens, unknown, DecodeConfig(), image_generators(0, 2))


def test_training_mode_is_refused(batch):
    cfg = TransformerConfig(num_codebook_vectors=K, dim=32, n_layers=1, hidden_dim=64, n_heads=4)
    tokens, unknown = batch
    with pytest.raises(ValueError, match="training mode"):
        inpaint_tokens(BidirectionalTransformer(cfg), tokens, unknown, DecodeConfig(), image_generators(0, 5))


# ---------------------------------------------------------------- sampling primitives


def test_sampling_never_picks_the_mask_token_or_impossible_tokens():
    logits = torch.full((2, 256, K + 1), -math.inf)
    logits[..., K] = 50.0  # the mask token would win every draw if it were allowed
    logits[..., 3] = 0.0
    logits[1, :, 5] = 0.0
    state = DecodeState(torch.full((2, 256), K), torch.ones(2, 256, dtype=torch.bool))
    u = torch.rand(2, 256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    u[0, :3] = torch.tensor([0.0, 0.5, 1 - 2**-53])
    _, filled = decode_step(state, logits, torch.tensor([10, 10]), StepNoise(u, None), DecodeConfig(), K)
    assert set(filled[0].tolist()) == {3}
    assert set(filled[1].tolist()) <= {3, 5} and len(set(filled[1].tolist())) == 2


def test_inverse_cdf_sampling_matches_the_distribution():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    u = torch.rand(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = sample_tokens(probs.log().expand(20000, 4), u)
    freq = torch.bincount(samples, minlength=4) / 20000
    assert freq.tolist() == pytest.approx(probs.tolist(), abs=0.015)
    assert freq[1] == 0


# ---------------------------------------------------------------- pixels -> tokens


def test_one_pixel_hole_marks_exactly_one_token():
    holes = torch.zeros(1, 64, 64, dtype=torch.bool)
    holes[0, 21, 46] = True  # token row 5, column 11
    unknown = pixel_holes_to_token_unknown(holes)
    assert unknown.shape == (1, 256)
    assert unknown.nonzero()[:, 1].tolist() == [5 * 16 + 11]


def test_lab_sample_mask_touches_99_tokens(lab_sample_mask_file):
    holes = torch.from_numpy(np.array(Image.open(lab_sample_mask_file)) == 0)[None]
    assert pixel_holes_to_token_unknown(holes).sum().item() == 99


def test_token_size_must_divide_the_mask():
    with pytest.raises(ValueError, match="token_size 5"):
        pixel_holes_to_token_unknown(torch.zeros(1, 64, 64, dtype=torch.bool), token_size=5)


def test_dilation_widens_by_whole_tokens():
    unknown = torch.zeros(2, 256, dtype=torch.bool)
    unknown[0, 5 * 16 + 7] = True  # interior token
    unknown[1, 0] = True  # corner token
    grown = dilate_tokens(unknown, 1).reshape(2, 16, 16)
    assert grown[0].sum() == 9 and grown[0, 4:7, 6:9].all()
    assert grown[1].sum() == 4 and grown[1, :2, :2].all()
    assert dilate_tokens(unknown, 2)[0].sum() == 25
    assert torch.equal(dilate_tokens(unknown, 0), unknown)
    with pytest.raises(ValueError, match="dilation radius must be an integer >= 0, got -1"):
        dilate_tokens(unknown, -1)


def test_decoder_applies_the_configured_dilation(model, batch):
    tokens, unknown = batch
    result = decode(model, batch, dilation=1, steps=3)
    dilated = dilate_tokens(unknown, 1)
    assert torch.equal(result.still_masked.sum(-1), masked_counts("cosine", 3, dilated.sum(1)))
    assert (result.filled[:, ~dilated] == tokens[~dilated]).all()


# ---------------------------------------------------------------- composite


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(4)
    decoded = torch.randint(0, 256, (2, 3, 64, 64), generator=g, dtype=torch.uint8)
    reference = torch.randint(0, 256, (2, 3, 64, 64), generator=g, dtype=torch.uint8)
    holes = torch.zeros(2, 64, 64, dtype=torch.bool)
    holes[0, 10:40, 20:50] = True
    holes[1, 0:16, 0:64] = True  # touches the image border
    return decoded, reference, holes


def test_hard_composite(images):
    decoded, reference, holes = images
    out = composite(decoded, reference, holes)
    inside = holes[:, None].expand_as(out)
    assert torch.equal(out[~inside], reference[~inside])
    assert torch.equal(out[inside], decoded[inside])


def test_feathered_composite_keeps_known_pixels_and_softens_the_border(images):
    decoded, reference, holes = images
    out = composite(decoded, reference, holes, "feather", feather=3)
    inside = holes[:, None].expand_as(out)
    assert torch.equal(out[~inside], reference[~inside])
    assert torch.equal(out[0, :, 14:36, 24:46], decoded[0, :, 14:36, 24:46])  # 4+ pixels deep
    edge = (decoded[0, :, 10, 30].float() + 3 * reference[0, :, 10, 30].float()) / 4  # depth 1 of 4
    assert out[0, :, 10, 30].float().tolist() == pytest.approx(edge.round().tolist())
    # the image border is not a seam: the hole along the top edge is decoded right up to it
    assert torch.equal(out[1, :, 0:12, 0:64], decoded[1, :, 0:12, 0:64])


def test_seamless_composite_keeps_the_decoded_detail_and_removes_the_seam(images):
    """Decoded = reference + a smooth offset inside the hole + detail: the offset (the seam) goes,
    the detail stays; with no offset the seamless paste is the hard paste."""
    _, reference, holes = images
    holes = holes[:1]
    g = torch.Generator().manual_seed(5)
    detail = torch.randint(-20, 21, (1, 3, 64, 64), generator=g)
    smooth = reference[:1].float().mean((2, 3), keepdim=True).expand(1, 3, 64, 64).round()
    truth = (smooth + detail).clamp(0, 215)
    reference = torch.where(holes[:, None], 128, truth).to(torch.uint8)
    decoded = (truth + 40).to(torch.uint8)  # the model's colour is off by 40 everywhere
    hard = composite(decoded, reference, holes, "hard")
    seamless = composite(decoded, reference, holes, "seamless")
    inside = holes[:, None].expand_as(hard)
    assert torch.equal(seamless[~inside], reference[~inside])
    assert (hard[inside].float() - truth[inside]).abs().mean() == pytest.approx(40, abs=0.5)
    assert (seamless[inside].float() - truth[inside]).abs().max() <= 1
    aligned = truth.to(torch.uint8)
    assert torch.equal(composite(aligned, reference, holes, "seamless"), composite(aligned, reference, holes, "hard"))


def test_composite_rejects_bad_inputs(images):
    decoded, reference, holes = images
    with pytest.raises(ValueError, match="feather must be an integer >= 1, got 0"):
        composite(decoded, reference, holes, "feather", feather=0)
    with pytest.raises(ValueError, match="composite 'blur' is unknown; known: hard, feather, seamless"):
        composite(decoded, reference, holes, "blur")
    with pytest.raises(ValueError, match="uint8"):
        composite(decoded.float(), reference, holes)
    with pytest.raises(ValueError, match="holes"):
        composite(decoded, reference, holes[:, :32])


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"steps": 0}, "steps must be >= 1, got 0"),
        ({"choice_temperature": -1.0}, "choice_temperature must be >= 0, got -1.0"),
        ({"sampling_temperature": 0.0}, "sampling_temperature must be > 0, got 0.0"),
        ({"sampling_temperature": -0.5}, "sampling_temperature must be > 0"),
        ({"schedule": "foo"}, "schedule 'foo' is unknown; known: linear, cosine"),
        ({"anneal": "step"}, "anneal 'step' is unknown; known: linear, none, cosine"),
        ({"confidence": "entropy"}, "confidence 'entropy' is unknown; known: log, prob"),
        ({"dilation": -2}, "dilation must be an integer >= 0, got -2"),
    ],
)
def test_config_validation(settings, message):
    with pytest.raises(ValueError, match=message):
        DecodeConfig(**settings)


def test_default_config_matches_the_design():
    cfg = DecodeConfig()
    assert (cfg.schedule, cfg.steps, cfg.choice_temperature, cfg.anneal) == ("cosine", 8, 4.5, "linear")
    assert (cfg.sampling_temperature, cfg.sampling, cfg.confidence, cfg.dilation) == (1.0, True, "log", 0)


# ---------------------------------------------------------------- sampling temperature


def test_sampling_temperature_divides_the_logits_before_sampling():
    """p = softmax(logits / T). Logits (0, ln 3) give p(token 0) = 1/10 at T = 1/2, 1/4 at T = 1 and
    1/(1 + sqrt 3) = 0.366 at T = 2; sampling by inverse CDF with u = 0.2 then picks token 1 only at
    T = 1/2, and with u = 0.3 token 0 only at T = 2. Token 2 is the mask token: never sampled."""
    logits = torch.tensor([[[0.0, math.log(3.0), 9.0]]])
    state = DecodeState(torch.tensor([[2]]), torch.tensor([[True]]))

    def sampled(temperature: float, uniform: float) -> int:
        cfg = DecodeConfig(steps=1, choice_temperature=0.0, sampling_temperature=temperature)
        noise = StepNoise(torch.tensor([[uniform]], dtype=torch.float64), None)
        _, filled = decode_step(state, logits, torch.tensor([0]), noise, cfg, mask_token_id=2)
        return filled.item()

    assert [sampled(t, 0.2) for t in (0.5, 1.0, 2.0)] == [1, 0, 0]
    assert [sampled(t, 0.3) for t in (0.5, 1.0, 2.0)] == [1, 1, 0]


def test_the_same_seed_and_temperature_reproduce_and_another_temperature_samples_other_tokens(model, batch):
    tokens, unknown = batch

    def filled(temperature: float) -> torch.Tensor:
        cfg = DecodeConfig(steps=4, sampling_temperature=temperature)
        return inpaint_tokens(model, tokens, unknown, cfg, image_generators(7, len(tokens))).filled

    assert torch.equal(filled(1.0), filled(1.0)) and torch.equal(filled(0.25), filled(0.25))
    differs = (filled(1.0)[-1] != filled(0.25)[-1])[unknown].float().mean().item()
    assert differs > 0.1  # same random numbers, other distributions: many of the hole tokens change
