"""Measured quality of a trained model: the numbers its model card reports.

Tokenizer: reconstruction PSNR and FID on the test ground truth, codebook usage. Transformer:
masked-token accuracy on the real hole masks (one shot, from the ground truth's known tokens).
Inpainting FID on the whole test set for the reference rows that learn nothing (grey holes, the
harmonic fill) against one-step decoding and the best multi-step settings given, and the
tokenizer's bound on them: the ground truth's own tokens decoded and pasted (`oracle_*`). With
composite `off` (the whole decoded image scored, the lab's protocol) the oracle is the
reconstruction itself, so it is scored once.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import torch

from bench.fid import fid_score
from bench.files import checkpoint_params, portable_name
from bench.trial import Evaluator, TrialSettings
from maskgit.decoding import pixel_holes_to_token_unknown
from maskgit.training import encode_dataset, psnr


@torch.no_grad()
def tokenizer_quality(evaluator: Evaluator) -> tuple[dict[str, float], dict[str, float], torch.Tensor]:
    """Reconstruction metrics on the test ground truth, the reconstruction's FID row (the oracle of
    composite off: the same images), and the ground truth's tokens."""
    test, model = evaluator.test, evaluator.model
    tokens = encode_dataset(model, test.gt, evaluator.batch_size)
    recon = evaluator.images(tokens, TrialSettings())  # the trials' own decode path (composite off)
    row = fid_row(evaluator, recon)
    k = model.vqgan.cfg.num_codebook_vectors
    return {
        "reconstruction_psnr": psnr(recon, test.gt),
        "reconstruction_fid": row["fid"],
        "codebook_usage": tokens.unique().numel() / k,
    }, row, tokens


def fid_row(evaluator: Evaluator, images: torch.Tensor) -> dict[str, float]:
    """One row of quality.json: FID and mean KID of `images` against the test set's reference, with the
    evaluator's extractor (features of the reference computed once for every row)."""
    result = fid_score(evaluator.reference, images, extractor=evaluator.extractor)
    return {"fid": result.fid, "kid": result.kid_mean}


@torch.no_grad()
def oracle_row(evaluator: Evaluator, gt_tokens: torch.Tensor, composite: str) -> dict[str, float]:
    """FID of the ground truth's own tokens decoded and pasted into the holes: what a transformer that
    predicted every hole token right would score with this tokenizer."""
    return fid_row(evaluator, evaluator.images(gt_tokens, TrialSettings(composite=composite)))


@torch.no_grad()
def masked_token_accuracy(evaluator: Evaluator, gt_tokens: torch.Tensor) -> float:
    """Share of hole tokens whose one-shot argmax prediction equals the ground truth's token."""
    model = evaluator.model
    unknown = pixel_holes_to_token_unknown(evaluator.test.holes)
    correct = total = 0
    for tokens, mask in zip(gt_tokens.split(evaluator.batch_size), unknown.split(evaluator.batch_size)):
        inputs = torch.where(mask, model.mask_token_id, tokens).to(evaluator.device)
        predicted = model.transformer(inputs).argmax(-1).cpu()
        correct += (predicted[mask] == tokens[mask]).sum().item()
        total += mask.sum().item()
    return correct / max(total, 1)


def model_quality(evaluator: Evaluator, best: TrialSettings, composites: Sequence[str] = ("hard",)) -> dict:
    """Everything a model card reports, as a JSON-ready dict; the decoding rows once per composite
    (`oracle_hard`, `one_step_hard`, `best_hard`, ...)."""
    tokenizer, reconstruction, gt_tokens = tokenizer_quality(evaluator)
    one_step = dataclasses.replace(best, decode=dataclasses.replace(best.decode, steps=1), sweet_spot=None)
    rows = {name: dict(row) for name, row in evaluator.baselines.items()}
    for composite in composites:
        rows[f"oracle_{composite}"] = (dict(reconstruction) if composite == "off"
                                       else oracle_row(evaluator, gt_tokens, composite))
        for name, settings in (("one_step", one_step), ("best", best)):
            settings = dataclasses.replace(settings, composite=composite)
            result = evaluator.evaluate(settings)
            rows[f"{name}_{composite}"] = {"fid": result.best_fid, "kid": result.kid, "best_step": result.best_step,
                                           "settings": settings.params()}
    return {
        "n_test_images": len(evaluator.test),
        "protocol": evaluator.protocol,
        **tokenizer,
        "masked_token_accuracy": masked_token_accuracy(evaluator, gt_tokens),
        "inpainting": rows,
    }


def write_quality(report: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def format_quality(report: dict) -> list[str]:
    lines = [
        f"test images: {report['n_test_images']} (FID protocol {report['protocol']})",
        f"VQGAN reconstruction: PSNR {report['reconstruction_psnr']:.2f} dB, FID {report['reconstruction_fid']:.2f}, "
        f"codebook usage {100 * report['codebook_usage']:.1f}%",
        f"transformer masked-token accuracy (one shot, real holes): {100 * report['masked_token_accuracy']:.2f}%",
        "inpainting FID:",
    ]
    for name, row in report["inpainting"].items():
        extra = f" (best step {row['best_step']})" if "best_step" in row else ""
        lines.append(f"  {name:<18} FID {row['fid']:8.2f}  KID {row['kid']:.5f}{extra}")
    return lines


def data_description(evaluator: Evaluator) -> str:
    """The `data` a model card's numbers were measured on, always generated (never written by hand):
    the test set's portable name, content hash and size, e.g. `catfaces/test (content hash
    82aaa447417cd22d, 747 test images)`; the same on every machine, so the card can be committed."""
    test = evaluator.test
    return f"{portable_name(test.root.absolute())} (content hash {evaluator.data_hash}, {len(test)} test images)"


def evaluate_checkpoint(checkpoint: str, data: str | None, limit: int | None, device: str, batch_size: int | None,
                        best: TrialSettings, composites: Sequence[str], out: Path | None) -> dict:
    """`bench evaluate`: the model card's numbers for a checkpoint on a benchmark's test set."""
    from bench.session import open_evaluator

    evaluator = open_evaluator(checkpoint, data, limit, device, batch_size=batch_size)
    report = {"checkpoint": checkpoint_params(checkpoint)["checkpoint"], "weights_sha256": evaluator.checkpoint_sha,
              "data": data_description(evaluator), "data_hash": evaluator.data_hash,
              **model_quality(evaluator, best, composites)}
    if out is not None:
        write_quality(report, out)
    return report
