"""bench/model_card.py, scripts/model_card.py and scripts/export_model.py: a shipped model's markdown
and targets, generated from known quality.json and config.json contents, and its fp16 export."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from bench.model_card import (inpainting_table, measured_section, numbers, pastes_explained, read_targets,
                              readme_header, readme_row, shipped_meta, target_result, targets_table, tokenizer_table)
from maskgit.checkpoints import load_checkpoint, save_checkpoint
from maskgit.model import MaskGIT
from maskgit.presets import preset

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def settings(steps: int, sweet_spot, composite: str, sampling: bool = True, sampling_temperature: float = 1.0) -> dict:
    return {"schedule": "cosine", "steps": steps, "choice_temperature": 4.5, "sampling": sampling,
            "sampling_temperature": sampling_temperature, "sweet_spot": sweet_spot, "composite": composite}


QUALITY = {
    "data": "catfaces/test (content hash 82aaa447417cd22d, 747 test images)", "n_test_images": 747, "protocol": "tf",
    "reconstruction_psnr": 23.456, "reconstruction_fid": 55.555, "codebook_usage": 0.998046875,
    "masked_token_accuracy": 0.0729,
    "inpainting": {
        "grey": {"fid": 109.821, "kid": 0.08121},
        "harmonic": {"fid": 41.349, "kid": 0.01985},
        "oracle_off": {"fid": 55.555, "kid": 0.03},
        "one_step_off": {"fid": 90.0, "kid": 0.06, "best_step": 1, "settings": settings(1, "auto", "off")},
        "best_off": {"fid": 79.994, "kid": 0.05, "best_step": 8, "settings": settings(8, 8, "off")},
        "oracle_seamless": {"fid": 15.36, "kid": 0.004},
        "one_step_seamless": {"fid": 38.356, "kid": 0.0165, "best_step": 1,
                              "settings": settings(1, "auto", "seamless")},
        "best_seamless": {"fid": 24.5, "kid": 0.0122, "best_step": 6,
                          "settings": settings(8, "auto", "seamless", sampling=False)},
    },
}
CONFIG = {"vqgan": {"num_codebook_vectors": 512},
          "meta": {"transformer_training": {"val_masked_accuracy": 0.0612},
                   "transformer_train_config": {"hole_masks": 0.5}}}
TARGETS = '''
[[target]]
quantity = "VQGAN reconstruction FID (PSNR beside it)"
old = "143.69 (21.52 dB)"
value = "reconstruction_fid"
op = "<="
limit = 60
shown = "{reconstruction_fid:.2f} ({reconstruction_psnr:.2f} dB)"
bounded_by = "the tokenizer"

[[target]]
quantity = "inpainting, `off`"
old = "not measured"
value = "inpainting.best_off.fid"
op = "<="
limit = 80
bounded_by = "oracle {inpainting.oracle_off.fid:.2f}"

[[target]]
quantity = "inpainting, `hard`"
old = "72.31"
value = "inpainting.best_hard.fid"
op = "<"
limit = "inpainting.harmonic.fid"
target = "below the harmonic fill ({inpainting.harmonic.fid:.2f})"

[[target]]
quantity = "inpainting, `seamless`"
old = "32.29"
value = "inpainting.best_seamless.fid"
op = "<="
limit = 25

[[target]]
quantity = "spread of the seed-report grid"
old = "about 1 FID"
value = "grid_sd"
op = ">="
limit = "seed_sd"
factor = 3
shown = "grid sd {grid_sd:.2f}, seed sd {seed_sd:.2f}"
target = "at least 3x the seed-to-seed sd"
'''


def test_inpainting_table_names_each_row_from_its_settings():
    assert inpainting_table(QUALITY) == [
        "| method | FID | KID |", "| --- | --- | --- |",
        "| grey holes (the masked input) | 109.82 | 0.0812 |",
        "| harmonic fill (learns nothing) | 41.35 | 0.0198 |",
        "| oracle: the ground truth's own tokens, `composite = off` | 55.55 | 0.0300 |",
        "| one-step decoding (T = 1), `composite = off` | 90.00 | 0.0600 |",
        "| cosine, T = 8, choice temperature 4.5, step 8, `composite = off` | 79.99 | 0.0500 |",
        "| oracle: the ground truth's own tokens, `composite = seamless` | 15.36 | 0.0040 |",
        "| one-step decoding (T = 1), `composite = seamless` | 38.36 | 0.0165 |",
        "| cosine, T = 8, choice temperature 4.5, argmax, best step 6, `composite = seamless` | 24.50 | 0.0122 |",
    ]


def test_a_sampling_temperature_other_than_one_is_named_in_the_row():
    quality = {**QUALITY, "inpainting": {"best_hard": {"fid": 70.0, "kid": 0.04, "best_step": 8,
                                                       "settings": settings(8, 8, "hard", sampling_temperature=0.5)}}}
    assert inpainting_table(quality)[2] == (
        "| cosine, T = 8, choice temperature 4.5, sampling temperature 0.5, step 8, `composite = hard` | 70.00 | 0.0400 |")


def test_tokenizer_table_takes_the_validation_accuracy_from_the_training_meta():
    assert tokenizer_table(QUALITY, CONFIG)[2:] == [
        "| VQGAN reconstruction PSNR (test ground truth) | 23.46 dB |",
        "| VQGAN reconstruction FID | 55.55 |",
        "| codebook usage (test ground truth) | 99.8% of 512 codes |",
        "| validation masked-token accuracy (random cosine and hole-shaped masks) | 6.1% |",
        "| masked-token accuracy, one shot on the real hole masks | 7.3% |",
    ]
    without_meta = tokenizer_table(QUALITY, {"vqgan": {"num_codebook_vectors": 512}})
    assert not any("validation" in line for line in without_meta) and len(without_meta) == 6
    section = measured_section(QUALITY, CONFIG)
    assert section.startswith("Test set catfaces/test (content hash 82aaa447417cd22d, 747 test images); "
                              "FID protocol `tf`")
    assert "| cosine, T = 8, choice temperature 4.5, step 8, `composite = off` | 79.99 | 0.0500 |" in section


def test_the_pastes_are_explained_for_the_rows_present_only():
    assert pastes_explained(QUALITY["inpainting"]) == (
        "Inpainting FID (`off` scores the whole decoded image, the lab's protocol; `seamless` pastes the decoded "
        "pixels by Poisson cloning; the oracle rows decode the ground truth's own tokens: the best any transformer "
        "could score with this tokenizer):")  # no hard rows: no words for hard
    assert pastes_explained({"grey": {}, "best_hard": {}}) == (
        "Inpainting FID (`hard` pastes the decoded pixels into the holes as they are):")
    assert "Inpainting FID (`off` scores" in measured_section(QUALITY, CONFIG)


def test_a_quality_json_without_multi_step_rows_has_no_readme_header_one_line(tmp_path, capsys):
    one_step_only = {**QUALITY, "inpainting": {k: v for k, v in QUALITY["inpainting"].items() if "best" not in k}}
    with pytest.raises(ValueError, match=r"no best_\* row"):
        readme_header(one_step_only)
    (tmp_path / "quality.json").write_text(json.dumps(one_step_only))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    assert run_script(["--model", str(tmp_path), "--label", "x"]) == 2
    captured = capsys.readouterr()
    assert "quality.json: no best_* row" in captured.err and len(captured.err.splitlines()) == 1 and not captured.out


def test_readme_row_bolds_the_lowest_fid_and_dashes_a_paste_not_measured():
    assert readme_header(QUALITY)[0] == ("| model, test images | reconstruction FID (PSNR) | grey holes | "
                                         "harmonic fill | one step, off / hard / seamless | "
                                         "T = 8, off / hard / seamless |")
    t13 = {"inpainting": {"best_hard": {"settings": settings(13, 13, "hard")}}}
    assert readme_header(t13, ("hard",))[0].endswith("| one step, hard | T = 13, hard |")
    assert readme_row("`catfaces`, all 747 real", QUALITY) == (
        "| `catfaces`, all 747 real | 55.55 (23.46 dB) | 109.82 | 41.35 | 90.00 / – / 38.36 "
        "| 79.99 / – / **24.50** |")
    harmonic_wins = {**QUALITY, "inpainting": {**QUALITY["inpainting"], "harmonic": {"fid": 20.0, "kid": 0.01}}}
    assert "| 109.82 | **20.00** | 90.00 / – / 38.36 | 79.99 / – / 24.50 |" in readme_row("x", harmonic_wins)


def test_targets_are_judged_against_quality_json_and_numbers_measured_elsewhere(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text(TARGETS)
    targets = read_targets(path)
    results = [target_result(target, numbers(QUALITY, {"grid_sd": 3.3, "seed_sd": 1.15})) for target in targets]
    assert [r["met"] for r in results] == [True, True, None, True, False]  # no best_hard row: not measured
    assert results[4]["value"] == 3.3 and results[4]["limit"] == pytest.approx(3.45)
    assert targets_table(results)[2:] == [
        "| VQGAN reconstruction FID (PSNR beside it) | 143.69 (21.52 dB) | <= 60 | 55.55 (23.46 dB) | met "
        "| the tokenizer |",
        "| inpainting, `off` | not measured | <= 80 | 79.99 | met | oracle 55.55 |",
        "| inpainting, `hard` | 72.31 | below the harmonic fill (41.35) | – | not measured |  |",
        "| inpainting, `seamless` | 32.29 | <= 25 | 24.50 | met |  |",
        "| spread of the seed-report grid | about 1 FID | at least 3x the seed-to-seed sd | grid sd 3.30, seed sd 1.15 "
        "| **not met** |  |",
    ]
    with pytest.raises(ValueError, match="target 'spread of the seed-report grid': 'grid_sd' names no number"):
        target_result(targets[4], numbers(QUALITY, {}))  # no --extra grid_sd: a mistake, not "not measured"


def test_a_target_measured_elsewhere_is_not_measured_until_its_numbers_are_given():
    target = {"quantity": "spread", "old": "1", "value": "grid_sd", "op": ">=", "limit": "seed_sd", "factor": 3,
              "shown": "grid sd {grid_sd:.2f}, seed sd {seed_sd:.2f}", "bounded_by": "seed sd {seed_sd:.2f}",
              "measured_elsewhere": ["grid_sd", "seed_sd"]}
    absent = target_result(target, numbers(QUALITY, {}))
    assert (absent["met"], absent["measured"], absent["target"], absent["bounded_by"]) == (None, "–", "–", "–")
    given = target_result(target, numbers(QUALITY, {"grid_sd": 3.6, "seed_sd": 1.15}))
    assert (given["met"], given["measured"], given["bounded_by"]) == (True, "grid sd 3.60, seed sd 1.15", "seed sd 1.15")
    with pytest.raises(ValueError, match="'grid_sd' names no number"):  # declared for another target only
        target_result({**target, "measured_elsewhere": ["seed_sd"]}, numbers(QUALITY, {"seed_sd": 1.15}))


@pytest.mark.parametrize(("change", "message"), [
    ({"value": "reconstruction_fd"}, "'reconstruction_fd' names no number"),
    ({"limit": "60"}, "'60' names no number"),
    ({"value": "inpainting.best_off"}, "'inpainting.best_off' names no number"),
    ({"value": "inpainting.best_off.fdi"}, "'inpainting.best_off.fdi' names no number"),
    ({"shown": "{reconstruction_fid:.2q}"}, "Unknown format code 'q'"),
    ({"bounded_by": "oracle {inpainting.orcale_off.fid:.2f}"}, "'inpainting.orcale_off.fid' names no number"),
    ({"target": "below {inpainting}"}, "'inpainting' names no number"),
    ({"factor": "3"}, "can't multiply"),
])
def test_a_target_naming_no_number_or_with_a_bad_format_is_an_error(tmp_path, capsys, change, message):
    target = {"quantity": "q", "old": "1", "value": "reconstruction_fid", "op": "<=", "limit": 60, **change}
    with pytest.raises(ValueError, match=f"target 'q': .*{message}"):
        target_result(target, numbers(QUALITY, {}))
    (tmp_path / "quality.json").write_text(json.dumps(QUALITY))
    (tmp_path / "config.json").write_text(json.dumps(CONFIG))
    toml = "".join(f"{key} = {json.dumps(value)}\n" for key, value in target.items())
    (tmp_path / "targets.toml").write_text("[[target]]\n" + toml)
    assert run_script(["--model", str(tmp_path), "--label", "x", "--targets", str(tmp_path / "targets.toml")]) == 2
    error = capsys.readouterr().err
    assert error.startswith("model_card: ") and "targets.toml: target 'q'" in error and len(error.splitlines()) == 1


def test_a_target_without_an_operator_names_the_file(tmp_path):
    path = tmp_path / "targets.toml"
    path.write_text('[[target]]\nquantity = "x"\nold = "1"\nvalue = "reconstruction_fid"\nlimit = 3\n')
    with pytest.raises(ValueError, match=r"targets.toml: target 'x' needs .* missing \['op'\]"):
        read_targets(path)


def run_script(argv: list[str], name: str = "model_card") -> int:
    spec = importlib.util.spec_from_file_location(f"{name}_script", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(argv)


def test_script_prints_the_sections_and_records_the_targets_in_quality_json(tmp_path, capsys):
    model = tmp_path / "catfaces"
    model.mkdir()
    (model / "quality.json").write_text(json.dumps(QUALITY))
    (model / "config.json").write_text(json.dumps(CONFIG))
    (tmp_path / "targets.toml").write_text(TARGETS)
    argv = ["--model", str(model), "--label", "`catfaces`", "--targets", str(tmp_path / "targets.toml"),
            "--extra", "grid_sd=3.3", "--extra", "seed_sd=1.15", "--write-targets"]
    for _ in range(2):  # a second run recomputes the rows instead of judging the first run's
        assert run_script(argv) == 0
        written = json.loads((model / "quality.json").read_text())
        assert {k: v for k, v in written.items() if k != "targets"} == QUALITY
        assert [r["met"] for r in written["targets"]] == [True, True, None, True, False]
    output = capsys.readouterr().out
    assert "## Measured" in output and readme_row("`catfaces`", QUALITY) in output and "## Targets" in output


def test_script_refuses_a_missing_quality_json_with_one_line(tmp_path, capsys):
    assert run_script(["--model", str(tmp_path), "--label", "x"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("model_card: ") and "quality.json" in error and len(error.splitlines()) == 1


def test_script_refuses_a_quality_json_measured_on_other_weights_with_one_line(tmp_path, capsys):
    (tmp_path / "quality.json").write_text(json.dumps({**QUALITY, "weights_sha256": "74afc7ad1d5c128d"}))
    (tmp_path / "config.json").write_text(json.dumps({**CONFIG, "weights_sha256": "ba7222b7f857a504"}))
    before = (tmp_path / "quality.json").read_text()
    assert run_script(["--model", str(tmp_path), "--label", "x", "--write-targets"]) == 2
    captured = capsys.readouterr()
    assert len(captured.err.splitlines()) == 1 and not captured.out
    assert all(text in captured.err for text in ("quality.json", "config.json", "74afc7ad1d5c128d", "ba7222b7f857a504"))
    assert (tmp_path / "quality.json").read_text() == before


VQGAN_META = {"data": "catfaces", "data_hash": "3d6f", "preset": "tiny", "fid_images": 300, "stage": "vqgan",
              "epoch": 24, "step": 10584, "train_config": {"epochs": 30, "lr": 0.0003}, "val_psnr": 25.19,
              "val_recon_fid": 45.1, "codebook_usage": 1.0, "epoch_seconds": 403.7,
              "gpu_train": {"preset": "tiny", "fid_images": 300}}  # a training script's options: not a number


def transformer_meta(vqgan_sha: str) -> dict:
    return {"data": "catfaces", "data_hash": "3d6f", "preset": "tiny", "vqgan": "runs/vq", "vqgan_sha256": vqgan_sha,
            "stage": "transformer", "epoch": 14, "step": 3080, "train_config": {"epochs": 14, "hole_masks": 0.5},
            "val_loss": 5.0, "val_masked_accuracy": 0.07, "epoch_seconds": 450.0}


def test_shipped_meta_keeps_each_stage_s_numbers_and_config_as_the_cards_read_them():
    assert shipped_meta("catfaces", "the real cat faces", VQGAN_META, transformer_meta("abc")) == {
        "name": "catfaces", "data": "the real cat faces", "data_hash": "3d6f", "preset": "tiny",
        "vqgan_training": {"fid_images": 300, "epoch": 24, "step": 10584, "val_psnr": 25.19, "val_recon_fid": 45.1,
                           "codebook_usage": 1.0, "epoch_seconds": 403.7},
        "transformer_training": {"epoch": 14, "step": 3080, "val_loss": 5.0, "val_masked_accuracy": 0.07,
                                 "epoch_seconds": 450.0},
        "vqgan_train_config": {"epochs": 30, "lr": 0.0003},
        "transformer_train_config": {"epochs": 14, "hole_masks": 0.5},
    }


@pytest.fixture
def two_stages(tmp_path) -> tuple[Path, Path]:
    """A tiny stage-1 checkpoint and a stage-2 checkpoint trained (in its meta) on it."""
    torch.manual_seed(0)
    model = MaskGIT(*preset("tiny"))
    vqgan_sha = save_checkpoint(tmp_path / "vq", MaskGIT(model.vqgan.cfg, None), VQGAN_META)
    save_checkpoint(tmp_path / "tr", model, transformer_meta(vqgan_sha))
    return tmp_path / "vq", tmp_path / "tr"


def test_export_writes_fp16_weights_that_load_as_the_model_rounded_to_fp16(two_stages, tmp_path, capsys):
    vqgan, transformer = two_stages
    out = tmp_path / "shipped"
    argv = ["--transformer", str(transformer), "--vqgan", str(vqgan), "--name", "cat", "--data", "cats",
            "--out", str(out)]
    assert run_script(argv, "export_model") == 0
    with safe_open(str(out / "model.safetensors"), "pt") as weights:
        dtypes = {weights.get_tensor(key).dtype for key in weights.keys()}
    assert torch.float16 in dtypes and torch.float32 not in dtypes
    original, _ = load_checkpoint(transformer)
    shipped, config = load_checkpoint(out)
    for key, value in original.state_dict().items():
        expected = value.half().float() if value.is_floating_point() else value
        assert torch.equal(shipped.state_dict()[key], expected), key
    assert config["meta"] == shipped_meta("cat", "cats", VQGAN_META, transformer_meta("not recorded"))
    assert f"sha256 prefix {config['weights_sha256']}" in capsys.readouterr().out


def test_export_refuses_a_vqgan_the_transformer_was_not_trained_on(two_stages, tmp_path, capsys):
    vqgan, transformer = two_stages
    torch.manual_seed(1)
    other = tmp_path / "other-vq"
    save_checkpoint(other, MaskGIT(preset("tiny")[0], None), VQGAN_META)
    argv = ["--transformer", str(transformer), "--vqgan", str(other), "--name", "cat", "--data", "cats",
            "--out", str(tmp_path / "shipped")]
    assert run_script(argv, "export_model") == 2
    error = capsys.readouterr().err
    assert "was trained on the VQGAN" in error and str(other) in error and len(error.splitlines()) == 1
    assert not (tmp_path / "shipped").exists()


def test_export_keeps_the_decoding_settings_of_the_config_it_replaces(two_stages, tmp_path, capsys):
    vqgan, transformer = two_stages
    out = tmp_path / "shipped"
    decoding = {"schedule": "cosine", "steps": 8, "choice_temperature": 4.5, "sweet_spot": 8, "composite": "seamless"}
    out.mkdir()
    (out / "config.json").write_text(json.dumps({"meta": {"name": "cat", "decoding": decoding}}))
    argv = ["--transformer", str(transformer), "--vqgan", str(vqgan), "--name", "cat", "--data", "cats",
            "--out", str(out)]
    assert run_script(argv, "export_model") == 0
    meta = load_checkpoint(out)[1]["meta"]
    assert meta == {**shipped_meta("cat", "cats", VQGAN_META, transformer_meta("x")), "decoding": decoding}
    assert "kept meta.decoding" in capsys.readouterr().out


@pytest.mark.parametrize(("meta", "message"), [
    ({"vqgan_sha256": None}, "records no VQGAN hash (vqgan_sha256)"),
    ({"data_hash": None, "train_config": None}, "the transformer checkpoint's meta has no data_hash, train_config"),
])
def test_export_refuses_a_transformer_meta_it_cannot_ship_with_one_line(two_stages, tmp_path, capsys, meta, message):
    vqgan, transformer = two_stages
    recorded = json.loads((transformer / "config.json").read_text())
    recorded["meta"] = {k: v for k, v in recorded["meta"].items() if k not in meta}
    (transformer / "config.json").write_text(json.dumps(recorded))
    argv = ["--transformer", str(transformer), "--vqgan", str(vqgan), "--name", "cat", "--data", "cats",
            "--out", str(tmp_path / "shipped")]
    assert run_script(argv, "export_model") == 2
    error = capsys.readouterr().err
    assert message in error and str(transformer) in error and len(error.splitlines()) == 1
    assert not (tmp_path / "shipped").exists()
