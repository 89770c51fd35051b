"""bench train and bench import-lab through the CLI."""

from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from bench.data import load_image_folder, pixels_hash
from cli import app
from maskgit.checkpoints import load_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_import_lab_makes_a_checkpoint_every_command_takes(tmp_path, lab_format):
    out = tmp_path / "lab"
    result = CliRunner().invoke(app, ["import-lab", "--vqgan", str(lab_format / "tiny_vqgan.pt"), "--transformer",
                                      str(lab_format / "tiny_transformer.pt"), "--lab-config", str(lab_format / "tiny_config.json"),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    model, config = load_checkpoint(out)
    expected = torch.load(lab_format / "tiny_transformer.pt", weights_only=True)
    assert torch.equal(model.transformer.bias, expected["bias"])
    assert config["meta"]["imported_from"]["vqgan"].endswith("tiny_vqgan.pt")


def test_import_lab_with_the_wrong_architecture_is_one_line(tmp_path, lab_format):
    result = CliRunner().invoke(app, ["import-lab", "--vqgan", str(lab_format / "tiny_vqgan.pt"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "tiny_vqgan.pt: keys do not fit the model" in result.output and "Traceback" not in result.output


class WritesAFile:
    """Pickled code: unpickling it with code execution would create the file."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_import_lab_refuses_pickled_code_without_running_it(tmp_path, lab_format):
    marker, evil = tmp_path / "ran", tmp_path / "VQGAN.pt"
    torch.save({"encoder.model.0.weight": torch.zeros(1), "hook": WritesAFile(marker)}, evil)
    result = CliRunner().invoke(app, ["import-lab", "--vqgan", str(evil), "--transformer", str(evil),
                                      "--lab-config", str(lab_format / "tiny_config.json"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "VQGAN.pt: not a plain state dict that loads with weights_only=True" in lines[0]
    assert not marker.exists() and not (tmp_path / "x").exists()


def test_train_refuses_a_folder_without_splits(tmp_path):
    result = CliRunner().invoke(app, ["train", "vqgan", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                      "--preset", "tiny", "--device", "cpu"])
    assert result.exit_code == 2 and "train: missing" in result.output


def test_train_refuses_an_unknown_preset(tmp_path):
    result = CliRunner().invoke(app, ["train", "vqgan", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                      "--preset", "huge"])
    assert result.exit_code == 2 and "--preset: preset 'huge' is unknown" in result.output


def test_train_both_stages_then_resume(tmp_path, tiny_test_set):
    data = tmp_path / "bench"
    from bench.toyfaces import build_toyfaces_benchmark

    build_toyfaces_benchmark(data, n_train=32, n_val=8, n_test=4)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--data", str(data), "--preset", "tiny", "--device", "cpu", "--batch-size", "16", "--tracking-uri", uri]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "vqgan", *common, "--out", str(tmp_path / "vq"), "--epochs", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["train", "vqgan", *common, "--out", str(tmp_path / "vq"), "--epochs", "1"])
    assert result.exit_code == 2 and "already holds checkpoints" in result.output
    result = runner.invoke(app, ["train", "vqgan", *common, "--out", str(tmp_path / "vq"), "--epochs", "2", "--resume"])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(tmp_path / "vq", require_transformer=False)[1]["meta"]["epoch"] == 2
    result = runner.invoke(app, ["train", "transformer", *common, "--vqgan", str(tmp_path / "vq"),
                                 "--out", str(tmp_path / "tr"), "--epochs", "1", "--warmup-steps", "1"])
    assert result.exit_code == 0, result.output
    model, config = load_checkpoint(tmp_path / "tr")
    assert config["meta"]["stage"] == "transformer" and model.transformer is not None
    images = [load_image_folder(data / split) for split in ("train", "val")]
    assert config["meta"]["data"] == "bench" and config["meta"]["data_hash"] == pixels_hash(*images)

    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["train-vqgan", "train-transformer"])
    assert len(runs) == 2  # the resumed vqgan run continued its own MLflow run
    vq_run = runs[runs["tags.mlflow.runName"].str.startswith("vqgan")].iloc[0]
    assert vq_run["params.data"] == "bench" and vq_run["params.data_hash"] == pixels_hash(*images)
    assert vq_run["metrics.val_psnr"] > 0
    artifacts = mlflow.MlflowClient().list_artifacts(vq_run["run_id"], "validation")
    assert len(artifacts) == 2


def test_codebook_size_replaces_the_presets_and_reaches_stage_two(tmp_path):
    from bench.toyfaces import build_toyfaces_benchmark

    data = tmp_path / "bench"
    build_toyfaces_benchmark(data, n_train=16, n_val=4, n_test=4)
    common = ["--data", str(data), "--preset", "tiny", "--device", "cpu", "--batch-size", "16", "--epochs", "1",
              "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "vqgan", *common, "--out", str(tmp_path / "vq"), "--codebook-size", "8"])
    assert result.exit_code == 0, result.output
    stage1, config = load_checkpoint(tmp_path / "vq", require_transformer=False)
    assert config["vqgan"]["num_codebook_vectors"] == 8 and config["meta"]["codebook_size"] == 8
    assert stage1.vqgan.codebook.embedding.weight.shape == (8, 16)  # the tiny preset has 32 codes of dim 16
    result = runner.invoke(app, ["train", "transformer", *common, "--vqgan", str(tmp_path / "vq"),
                                 "--out", str(tmp_path / "tr"), "--warmup-steps", "1"])
    assert result.exit_code == 0, result.output
    model, config = load_checkpoint(tmp_path / "tr")
    assert config["transformer"]["num_codebook_vectors"] == 8
    assert config["meta"]["vqgan"] == f"{tmp_path.name}/vq"  # its portable name, no machine path
    assert model.transformer.tok_emb.weight.shape[0] == 8 + 1  # the codes and the mask token


def test_codebook_size_below_two_is_refused(tmp_path):
    result = CliRunner().invoke(app, ["train", "vqgan", "--data", str(tmp_path), "--out", str(tmp_path / "run"),
                                      "--preset", "tiny", "--codebook-size", "1"])
    assert result.exit_code == 2 and "--codebook-size" in result.output


def test_resume_takes_the_codebook_size_from_the_checkpoint_and_refuses_a_contradiction(tmp_path):
    from bench.toyfaces import build_toyfaces_benchmark

    data = tmp_path / "bench"
    build_toyfaces_benchmark(data, n_train=16, n_val=4, n_test=4)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["train", "vqgan", "--data", str(data), "--out", str(tmp_path / "vq"), "--device", "cpu",
              "--batch-size", "16", "--tracking-uri", uri]
    runner = CliRunner()
    result = runner.invoke(app, [*common, "--preset", "tiny", "--codebook-size", "8", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*common, "--resume", "--epochs", "2"])  # neither --preset nor --codebook-size
    assert result.exit_code == 0, result.output
    stage1, config = load_checkpoint(tmp_path / "vq", require_transformer=False)
    assert config["meta"]["epoch"] == 2 and config["meta"]["preset"] == "tiny" and config["meta"]["codebook_size"] == 8
    assert stage1.vqgan.codebook.embedding.weight.shape == (8, 16)
    for option, value in (("--codebook-size", "16"), ("--preset", "small")):
        result = runner.invoke(app, [*common, "--resume", "--epochs", "3", option, value])
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1 and option in result.output

    import mlflow

    mlflow.set_tracking_uri(uri)
    runs = mlflow.search_runs(experiment_names=["train-vqgan"])
    assert list(runs["status"]) == ["FINISHED"]  # one run, resumed once, untouched by the refusals


def test_transformer_resume_takes_the_preset_from_the_checkpoint_and_refuses_another_vqgan(tmp_path):
    from bench.toyfaces import build_toyfaces_benchmark
    from maskgit.checkpoints import save_checkpoint
    from maskgit.model import MaskGIT
    from maskgit.presets import preset

    data = tmp_path / "bench"
    build_toyfaces_benchmark(data, n_train=16, n_val=4, n_test=4)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = ["--data", str(data), "--device", "cpu", "--batch-size", "16", "--tracking-uri", uri]
    runner = CliRunner()
    result = runner.invoke(app, ["train", "vqgan", *common, "--preset", "tiny", "--epochs", "1",
                                 "--out", str(tmp_path / "vq")])
    assert result.exit_code == 0, result.output
    stage2 = ["train", "transformer", *common, "--out", str(tmp_path / "tr"), "--warmup-steps", "1"]
    result = runner.invoke(app, [*stage2, "--vqgan", str(tmp_path / "vq"), "--preset", "tiny", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*stage2, "--vqgan", str(tmp_path / "vq"), "--epochs", "2", "--resume"])
    assert result.exit_code == 0, result.output
    _, config = load_checkpoint(tmp_path / "tr")
    assert config["meta"]["epoch"] == 2 and config["meta"]["preset"] == "tiny"
    save_checkpoint(tmp_path / "other-vq", MaskGIT(preset("tiny")[0], None), {})
    result = runner.invoke(app, [*stage2, "--vqgan", str(tmp_path / "other-vq"), "--epochs", "3", "--resume"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "--vqgan: " in result.output and "is not what the checkpoint resumed was trained with" in result.output

    import mlflow

    mlflow.set_tracking_uri(uri)
    assert list(mlflow.search_runs(experiment_names=["train-transformer"])["status"]) == ["FINISHED"]
