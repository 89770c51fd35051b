"""benchmarks/gpu_train.py: what its checkpoints record of their data and tokenizer (they ship, with their model
card), and the model it ends with, in the shipped form."""

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from bench.data import pixels_hash
from benchmarks.gpu_train import checkpoint_meta


def test_checkpoints_record_the_data_as_bench_train_does_and_no_machine_path(tmp_path):
    args = SimpleNamespace(data=tmp_path / "data" / "catfaces", out=tmp_path / "runs" / "gpu", preset="medium",
                           fid_images=500)
    train_images, val_images = torch.zeros(2, 3, 64, 64, dtype=torch.uint8), torch.ones(1, 3, 64, 64, dtype=torch.uint8)
    meta = checkpoint_meta(args, train_images, val_images)
    assert meta["data"] == "catfaces" and meta["data_hash"] == pixels_hash(train_images, val_images)
    assert meta["preset"] == "medium"
    assert meta["gpu_train"] == {"data": "data/catfaces", "out": "runs/gpu", "preset": "medium", "fid_images": 500}
    assert str(tmp_path) not in json.dumps(meta)


def test_the_model_it_ends_with_is_in_the_shipped_form_and_its_stages_export(tmp_path, one_torch_thread):
    import importlib.util

    from bench.model_card import shipped_meta
    from bench.toyfaces import build_toyfaces_benchmark
    from benchmarks.gpu_train import main
    from maskgit.checkpoints import load_checkpoint

    build_toyfaces_benchmark(tmp_path / "faces", n_train=16, n_val=4, n_test=4)
    out = tmp_path / "runs" / "gpu"
    main(["--data", str(tmp_path / "faces"), "--out", str(out), "--preset", "tiny", "--device", "cpu",
          "--vqgan-minutes", "0.01", "--transformer-minutes", "0.01", "--vqgan-batch-size", "2",
          "--transformer-batch-size", "2"])
    _, stage1 = load_checkpoint(out / "vqgan", require_transformer=False)
    _, stage2 = load_checkpoint(out / "transformer" / "best")
    assert stage2["meta"]["vqgan"] == "gpu/vqgan" and stage2["meta"]["vqgan_sha256"] == stage1["weights_sha256"]
    about = f"the benchmark faces (content hash {stage1['meta']['data_hash']}): train split (16 images; val 4 for " \
            "the validation metrics)"
    _, model = load_checkpoint(out / "model")
    assert model["meta"] == shipped_meta("faces-tiny", about, stage1["meta"], stage2["meta"])
    assert not {"gpu_train"} & {*model["meta"]["vqgan_training"], *model["meta"]["transformer_training"]}
    assert str(tmp_path) not in json.dumps(model["meta"]) + json.dumps(stage2["meta"])

    script = Path(__file__).parents[2] / "scripts" / "export_model.py"
    spec = importlib.util.spec_from_file_location("export_model", script)
    export = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(export)
    assert export.main(["--transformer", str(out / "transformer" / "best"), "--vqgan", str(out / "vqgan"),
                        "--name", "faces-tiny", "--data", about, "--out", str(tmp_path / "shipped")]) == 0
    assert load_checkpoint(tmp_path / "shipped")[1]["meta"] == model["meta"]
