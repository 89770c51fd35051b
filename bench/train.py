"""`bench train`: the two training stages, logged to MLflow through maskgit's callback."""

from __future__ import annotations

import tempfile
from dataclasses import asdict
from pathlib import Path

import torch

from bench.data import load_image_folder, pixels_hash
from bench.defaults import DEFAULT_PRESET
from bench.devices import resolve_device
from bench.errors import BenchError
from bench.fid import FIDReference, InceptionFeatures, fid_score
from bench.files import checkpoint_params
from bench.tracking import environment_tags, setup_mlflow
from maskgit.checkpoints import CheckpointError, load_checkpoint, read_config
from maskgit.model import MaskGIT
from maskgit.presets import preset
from maskgit.training import (SELECTION_METRICS, TrainCallback, TrainConfig, latest_checkpoint, train_transformer,
                              train_vqgan)
from maskgit.transformer import TransformerConfig
from maskgit.vqgan import VQGANConfig

RUN_ID_FILE = "mlflow_run_id"


class ReconstructionFID:
    """Stage 1's val_recon_fid: FID (tf) of the reconstructions of the first `n` validation images
    against those images, whose features are computed once (and cached on disk by pixels)."""

    def __init__(self, n: int, device: str):
        self.n = n
        self.extractor = InceptionFeatures("tf", device=device, progress=False)
        self.reference: FIDReference | None = None

    def __call__(self, images: torch.Tensor, reconstructions: torch.Tensor) -> dict[str, float]:
        if self.reference is None:
            self.reference = FIDReference.load_or_compute(images[:self.n], "tf", extractor=self.extractor)
        result = fid_score(self.reference, reconstructions[:self.n], kid=False, extractor=self.extractor)
        return {"val_recon_fid": result.fid}


class MLflowCallback(TrainCallback):
    """Logs step metrics every `every` steps, epoch metrics and the validation figure; adds
    `recon_fid`'s metric to stage 1's validation when given."""

    def __init__(self, mlflow, every: int = 20, recon_fid: ReconstructionFID | None = None):
        self.mlflow, self.every, self.recon_fid = mlflow, every, recon_fid

    def validation_metrics(self, images, reconstructions):
        return self.recon_fid(images, reconstructions) if self.recon_fid else {}

    def on_step(self, step, metrics):
        if step % self.every == 0:
            self.mlflow.log_metrics({f"train_{k}": float(v) for k, v in metrics.items()}, step=step)

    def on_epoch(self, epoch, metrics, figure, checkpoint):
        from PIL import Image

        self.mlflow.log_metrics(metrics, step=epoch)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"validation_epoch_{epoch:03d}.png"
            Image.fromarray(figure.permute(1, 2, 0).numpy()).save(path)
            self.mlflow.log_artifact(str(path), artifact_path="validation")
        self.mlflow.set_tag("last_checkpoint", str(checkpoint))


def _load_split(data: Path, split: str) -> torch.Tensor:
    folder = Path(data) / split
    if not folder.is_dir():
        raise BenchError(f"{folder}: missing (--data must be a benchmark folder with train/ and val/)")
    return load_image_folder(folder)


def training_data(data: Path, train_images: torch.Tensor, val_images: torch.Tensor) -> dict[str, str]:
    """What a training run and its checkpoints record of their data: the benchmark folder's name (no
    machine path: model cards are committed) and the content hash of its train and val images."""
    return {"data": Path(data).absolute().name, "data_hash": pixels_hash(train_images, val_images)}


def _check_keep_best(stage: str, cfg: TrainConfig) -> None:
    if cfg.keep_best is not None and cfg.keep_best not in SELECTION_METRICS[stage]:
        raise BenchError(f"--keep-best: '{cfg.keep_best}' is not a {stage} validation metric; "
                         f"known: {', '.join(SELECTION_METRICS[stage])}")


def _run(stage: str, model: MaskGIT, data: Path, out: Path, cfg: TrainConfig, resume: bool,
         tracking_uri: str | None, params: dict, recon_fid: ReconstructionFID | None = None) -> Path:
    out = Path(out)
    _check_keep_best(stage, cfg)
    if not resume and latest_checkpoint(out) is not None:
        raise BenchError(f"{out}: already holds checkpoints; pass --resume to continue or choose another --out")
    if resume and latest_checkpoint(out) is None:
        raise BenchError(f"{out}: --resume given but there is no checkpoint to resume from")
    train_images, val_images = _load_split(data, "train"), _load_split(data, "val")
    mlflow = setup_mlflow(tracking_uri, f"train-{stage}")
    run_id_file = out / RUN_ID_FILE
    run_id = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
    train = train_vqgan if stage == "vqgan" else train_transformer
    with mlflow.start_run(run_id=run_id, run_name=f"{stage}:{out.name}") as run:
        out.mkdir(parents=True, exist_ok=True)
        run_id_file.write_text(run.info.run_id)
        data_params = training_data(data, train_images, val_images)
        if run_id is None:
            mlflow.log_params({**params, **asdict(cfg), **data_params, "n_train": len(train_images)})
            mlflow.set_tags(environment_tags(cfg.device))
        meta = {**data_params, **params}
        try:
            return train(model, train_images, val_images, out, cfg, MLflowCallback(mlflow, recon_fid=recon_fid),
                         resume=resume, meta=meta)
        except KeyboardInterrupt:
            mlflow.set_tag("interrupted", "true")
            raise


def _resumed_config(out: Path) -> tuple[Path, dict, VQGANConfig, TransformerConfig | None]:
    """The newest checkpoint in `out`, its config and model configs: what --resume continues, so that it
    needs no model option again."""
    last = latest_checkpoint(out)
    try:
        config = read_config(last)
        transformer = config.get("transformer")
        return (last, config, VQGANConfig(**config["vqgan"]),
                TransformerConfig(**transformer) if transformer else None)
    except (CheckpointError, KeyError, TypeError) as exc:
        raise BenchError(f"--resume: {last}: not a checkpoint bench train wrote ({exc})") from None


def _refuse_contradictions(last: Path, options: dict[str, tuple]) -> None:
    """Options given with --resume (`option: (given, the checkpoint's)`, None where not given) that
    contradict the checkpoint resumed, refused before an MLflow run is resumed: loading a checkpoint
    that does not fit inside the run would mark it FAILED."""
    for option, (given, recorded) in options.items():
        if given is not None and given != recorded:
            raise BenchError(f"{option}: {given} is not what the checkpoint resumed was trained with "
                             f"({last}: {recorded}); leave it out or give the same with --resume")


def _resumed_vqgan(out: Path, preset_name: str | None, codebook_size: int | None) -> tuple[VQGANConfig, dict]:
    """The newest checkpoint's VQGAN config and recorded options (preset, codebook_size)."""
    last, config, vq_cfg, tr_cfg = _resumed_config(out)
    if tr_cfg is not None:
        raise BenchError(f"--resume: {out} holds a transformer (stage 2), not a VQGAN to resume")
    _refuse_contradictions(last, {"--preset": (preset_name, config["meta"].get("preset")),
                                  "--codebook-size": (codebook_size, vq_cfg.num_codebook_vectors)})
    return vq_cfg, {name: config["meta"][name] for name in ("preset", "codebook_size") if name in config["meta"]}


def _preset(name: str) -> tuple[VQGANConfig, TransformerConfig]:
    """A new run's model configs; an unknown preset is --preset's one-line error."""
    try:
        return preset(name)
    except ValueError as exc:
        raise BenchError(f"--preset: {exc}") from None


def _new_vqgan(preset_name: str | None, codebook_size: int | None) -> tuple[VQGANConfig, dict]:
    """A fresh run's VQGAN config (the preset's, with --codebook-size's codes) and the options recorded."""
    preset_name = preset_name or DEFAULT_PRESET
    vq_cfg, _ = _preset(preset_name)
    if codebook_size is not None:
        vq_cfg.num_codebook_vectors = codebook_size
    return vq_cfg, {"preset": preset_name, **({"codebook_size": codebook_size} if codebook_size is not None else {})}


def train_vqgan_command(data: Path, out: Path, preset_name: str | None, cfg: TrainConfig, resume: bool,
                        tracking_uri: str | None, fid_images: int = 0, codebook_size: int | None = None) -> Path:
    """`preset_name` and `codebook_size` are None where not given: a resumed run takes both from its
    checkpoint, a new one the default preset and its codes."""
    if resume and latest_checkpoint(out) is not None:
        vq_cfg, params = _resumed_vqgan(Path(out), preset_name, codebook_size)
    else:
        vq_cfg, params = _new_vqgan(preset_name, codebook_size)
    if fid_images == 1:
        raise BenchError("--fid-images: FID needs at least 2 images (a covariance)")
    if cfg.keep_best == "val_recon_fid" and not fid_images:
        raise BenchError("--keep-best val_recon_fid needs --fid-images N (the validation images it is measured on)")
    cfg.device = resolve_device(cfg.device)
    model = MaskGIT(vq_cfg, None)
    recon_fid = ReconstructionFID(fid_images, cfg.device) if fid_images else None
    params = {**params, **({"fid_images": fid_images} if fid_images else {})}
    return _run("vqgan", model, data, out, cfg, resume, tracking_uri, params, recon_fid)


def stage1_record(vqgan: str | Path, stage1_config: dict) -> dict[str, str]:
    """What a stage-2 checkpoint records of the tokenizer it was trained on: the stage-1 checkpoint's
    portable name (no machine path: models ship) and its weights' hash, which export_model.py checks
    its --vqgan against."""
    return {"vqgan": checkpoint_params(str(vqgan))["checkpoint"], "vqgan_sha256": stage1_config["weights_sha256"]}


def train_transformer_command(data: Path, vqgan: Path, out: Path, preset_name: str | None, cfg: TrainConfig,
                              resume: bool, tracking_uri: str | None) -> Path:
    """`preset_name` is None where not given: a resumed run takes its checkpoint's, a new one the default."""
    try:
        stage1, stage1_config = load_checkpoint(vqgan, require_transformer=False)
    except CheckpointError as exc:
        raise BenchError(str(exc)) from None
    if resume and latest_checkpoint(out) is not None:
        last, config, _, tr_cfg = _resumed_config(Path(out))
        _refuse_contradictions(last, {"--preset": (preset_name, config["meta"].get("preset")),
                                      "--vqgan": (stage1_config["weights_sha256"], config["meta"].get("vqgan_sha256"))})
        preset_name = config["meta"].get("preset")
    else:
        preset_name = preset_name or DEFAULT_PRESET
        _, tr_cfg = _preset(preset_name)
    if tr_cfg is None:
        raise BenchError(f"--resume: {out} holds a VQGAN (stage 1), not a transformer to resume")
    tr_cfg.num_codebook_vectors = stage1.vqgan.cfg.num_codebook_vectors
    cfg.device = resolve_device(cfg.device)
    model = MaskGIT(stage1.vqgan.cfg, tr_cfg)
    model.vqgan.load_state_dict(stage1.vqgan.state_dict())
    params = {"preset": preset_name, **stage1_record(vqgan, stage1_config)}
    return _run("transformer", model, data, out, cfg, resume, tracking_uri, params)


def import_lab_checkpoint(vqgan_pt: Path, transformer_pt: Path | None, lab_config: Path | None, out: Path) -> str:
    """`bench import-lab`: the lab's `.pt` state dicts (loaded with weights_only=True) as one of our
    checkpoints, so every command takes it with --checkpoint."""
    import json

    from maskgit.checkpoints import load_lab_checkpoint, save_checkpoint

    config = None
    if lab_config is not None:
        try:
            config = json.loads(Path(lab_config).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise BenchError(f"{lab_config}: not a readable JSON config ({exc})") from None
    try:
        model = load_lab_checkpoint(vqgan_pt, transformer_pt, config)
    except (CheckpointError, KeyError, TypeError) as exc:
        raise BenchError(str(exc)) from None
    meta = {"imported_from": {"vqgan": str(vqgan_pt), "transformer": str(transformer_pt) if transformer_pt else None}}
    return save_checkpoint(out, model, meta)
