"""benchmarks/gpu_train.py: what its checkpoints record of their data (they ship, with their model card)."""

import json
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
