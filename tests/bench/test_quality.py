"""bench evaluate: the model-card numbers of a checkpoint, with the baselines beside them."""

import json
from types import SimpleNamespace

import pytest
import torch
from typer.testing import CliRunner

from bench.data import load_test_set
from bench.fid import fid_score
from bench.model_card import measured_section, readme_row
from bench.quality import masked_token_accuracy, model_quality
from bench.session import open_evaluator
from bench.trial import TrialSettings
from cli import app
from maskgit.decoding import DecodeConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_evaluate_reports_every_model_card_number(tiny_checkpoint, tiny_test_set, bench_home, tmp_path):
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_test_set),
                                      "--steps", "2", "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert report["n_test_images"] == 6 and report["protocol"] == "tf"
    data_hash = load_test_set(tiny_test_set).content_hash()
    # generated, portable (the card is committed): the folder's last two components, content hash, count
    assert report["data"] == f"{tiny_test_set.parent.name}/test (content hash {data_hash}, 6 test images)"
    assert report["data_hash"] == data_hash
    assert report["checkpoint"] == f"{tiny_checkpoint.parent.name}/tiny"  # a folder: its last two components
    assert str(tiny_test_set) not in out.read_text() and str(tiny_checkpoint) not in out.read_text()
    assert 0 < report["codebook_usage"] <= 1 and 0 <= report["masked_token_accuracy"] <= 1
    assert report["reconstruction_psnr"] > 0 and report["reconstruction_fid"] > 0
    rows = report["inpainting"]
    assert set(rows) == {"grey", "harmonic", "oracle_off", "one_step_off", "best_off", "oracle_hard",
                         "one_step_hard", "best_hard", "oracle_seamless", "one_step_seamless", "best_seamless"}
    assert rows["oracle_off"]["fid"] == report["reconstruction_fid"]  # the same images, scored once
    for composite in ("off", "hard", "seamless"):
        one_step, best = rows[f"one_step_{composite}"], rows[f"best_{composite}"]
        assert one_step["settings"]["steps"] == 1 and best["settings"]["steps"] == 2
        assert one_step["settings"]["composite"] == best["settings"]["composite"] == composite
        assert best["best_step"] in (1, 2)
    assert rows["best_seamless"]["fid"] != rows["best_hard"]["fid"]
    # the classical fill beats grey holes on the toy faces, as it must for the baseline to mean anything
    assert rows["harmonic"]["fid"] < rows["grey"]["fid"]
    assert "harmonic" in result.output and "masked-token accuracy" in result.output
    # the model card's generated tables take what bench evaluate writes: two headers with their rules,
    # four tokenizer rows (a tiny checkpoint's meta has no validation accuracy), one line per inpainting row
    config = json.loads((tiny_checkpoint / "config.json").read_text())
    assert measured_section(report, config).count("\n| ") == 2 * 2 + 4 + len(rows)
    assert readme_row("tiny", report).count(" / ") == 4


def test_off_rows_score_the_decoded_images_and_the_pasted_rows_the_same_tokens_pasted(tiny_checkpoint,
                                                                                       tiny_test_set, instant_fid):
    """Known answer, recomputed outside the Evaluator: `off` scores the detokenized images as they are
    (its oracle is the reconstruction, scored once), `hard` the same pixels pasted into the holes of
    the masked input; the oracle rows decode the ground truth's tokens, the decoding rows the tokens
    the transformer filled in at the scored step."""
    evaluator = open_evaluator(str(tiny_checkpoint), str(tiny_test_set), None, "cpu", progress=False)
    best = TrialSettings(DecodeConfig(steps=2), sweet_spot=2)
    report = model_quality(evaluator, best, ("off", "hard"))
    model, test, rows = evaluator.model, evaluator.test, report["inpainting"]

    def scored(images):
        result = fid_score(evaluator.reference, images, extractor=evaluator.extractor)
        return {"fid": result.fid, "kid": result.kid_mean}

    def pasted(images):
        return torch.where(test.holes[:, None], images, test.masked)

    with torch.no_grad():
        reconstruction = model.detokenize(model.tokenize(test.gt))
        filled = model.detokenize(evaluator.decode(best).filled[1])  # step 2 of 2
    assert rows["oracle_off"] == scored(reconstruction)
    assert report["reconstruction_fid"] == rows["oracle_off"]["fid"]
    assert rows["oracle_hard"] == pytest.approx(scored(pasted(reconstruction)))
    assert rows["best_off"]["fid"] == pytest.approx(scored(filled)["fid"])
    assert rows["best_hard"]["fid"] == pytest.approx(scored(pasted(filled))["fid"])
    assert rows["best_off"]["settings"]["composite"] == "off" and rows["best_off"]["best_step"] == 2
    assert rows["best_off"]["fid"] != rows["best_hard"]["fid"]


def test_evaluate_with_argmax_scores_the_argmax_decoding(tiny_checkpoint, tiny_test_set, bench_home, tmp_path):
    """--sampling off: both decoding rows decode argmax tokens (recorded in their settings), and the
    multi-step row's FID is that of the same argmax settings evaluated directly."""
    out = tmp_path / "quality.json"
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tiny_checkpoint), "--data", str(tiny_test_set),
                                      "--steps", "2", "--sweet-spot", "2", "--composite", "hard", "--sampling", "off",
                                      "--device", "cpu", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["inpainting"]
    assert rows["best_hard"]["settings"]["sampling"] is False and rows["one_step_hard"]["settings"]["sampling"] is False
    evaluator = open_evaluator(str(tiny_checkpoint), str(tiny_test_set), None, "cpu", progress=False)
    argmax = TrialSettings(DecodeConfig(steps=2, sampling=False), sweet_spot=2, composite="hard")
    sampled = TrialSettings(DecodeConfig(steps=2, sampling=True), sweet_spot=2, composite="hard")
    assert rows["best_hard"]["fid"] == pytest.approx(evaluator.evaluate(argmax).best_fid)
    assert rows["best_hard"]["fid"] != pytest.approx(evaluator.evaluate(sampled).best_fid)


@pytest.mark.parametrize("option, value, message", [
    ("--sampling", "maybe", "sampling: expected on or off, got 'maybe'"),
    ("--sampling-temperature", "0", "sampling_temperature must be > 0, got 0.0"),
])
def test_evaluate_refuses_a_bad_sampling_setting(option, value, message):
    result = CliRunner().invoke(app, ["evaluate", option, value])
    assert result.exit_code == 2
    assert "--sampling-temperature" in result.output and message in result.output
    assert "Traceback" not in result.output


def test_evaluate_refuses_an_unknown_composite(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--composite", "hard,blur"])
    assert result.exit_code == 2
    assert "--composite: composite 'blur' is unknown" in result.output and "Traceback" not in result.output


def test_evaluate_refuses_a_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "nope")])
    assert result.exit_code == 2
    assert "nope: no such checkpoint" in result.output and "Traceback" not in result.output


class ScriptedTransformer(torch.nn.Module):
    """Predicts the given tokens (one-hot logits), batch after batch, and keeps what it was shown."""

    def __init__(self, predictions: torch.Tensor, vocabulary: int):
        super().__init__()
        self.predictions, self.vocabulary, self.shown = predictions, vocabulary, []

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        start = sum(len(batch) for batch in self.shown)
        self.shown.append(tokens)
        return torch.nn.functional.one_hot(self.predictions[start:start + len(tokens)], self.vocabulary).float()


def test_masked_token_accuracy_counts_hole_tokens_only():
    """Known answer: the holes touch 1, 4 and 2 tokens of three images (7 in all); the predictions
    are right at 4 of them and wrong at every known token, so the accuracy is 4/7, whatever the
    batching. The transformer sees the mask token at exactly the hole tokens."""
    mask_id, gt = 8, torch.arange(3 * 256).reshape(3, 256) % 8
    holes = torch.zeros(3, 64, 64, dtype=torch.bool)
    holes[0, 0, 0] = True  # token 0
    holes[1, :8, :8] = True  # tokens 0, 1, 16, 17
    holes[2, 63, 63] = holes[2, 21, 13] = True  # tokens 255 and 5 * 16 + 3 = 83
    predictions = (gt + 1) % 8  # wrong everywhere...
    for image, token in ((0, 0), (1, 0), (1, 17), (2, 255)):  # ...but at four hole tokens
        predictions[image, token] = gt[image, token]
    transformer = ScriptedTransformer(predictions, vocabulary=mask_id + 1)
    evaluator = SimpleNamespace(model=SimpleNamespace(transformer=transformer, mask_token_id=mask_id),
                                test=SimpleNamespace(holes=holes), batch_size=2, device="cpu")
    assert masked_token_accuracy(evaluator, gt) == pytest.approx(4 / 7)
    shown = torch.cat(transformer.shown)
    assert [len(batch) for batch in transformer.shown] == [2, 1]
    assert (shown == mask_id).sum().item() == 7 and torch.equal(shown[shown != mask_id], gt[shown != mask_id])
