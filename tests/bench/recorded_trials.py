"""Trial runs with synthetic uncertainty.npz files, logged to an MLflow store as a sweep records them
(the layout of docs/architecture.md#uncertainty), for tests of what reads them: compare, the report.

A trial's FID at step s is the mean of per-image scores x[k, s, i] (seed k, image i); its bootstrap
replicates are the same mean over the shared resample indices of the test set's key, so two
trials' replicates pair exactly as real ones do.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow.entities import Metric, Param, RunTag

from bench.stats import bootstrap_indices, interval, seed_mean

KEY = "0123456789abcdef"
REPLICATES = 200


def uncertainty_arrays(scores: np.ndarray, key: str = KEY) -> dict[str, np.ndarray]:
    """uncertainty.npz's arrays from per-image scores [K seeds, S steps, N images] (steps 1..S)."""
    seeds, steps, n = scores.shape
    indices = bootstrap_indices(key, n, REPLICATES)
    seed_fid = scores.mean(axis=2)  # [K, S]
    seed_replicates = scores[:, :, indices].mean(axis=3)  # [K, S, B]
    means = [seed_mean(seed_fid[:, s], seed_replicates[:, s], key) for s in range(steps)]
    return {"steps": np.arange(1, steps + 1), "fid": np.array([m[0] for m in means]),
            "replicates": np.stack([m[1] for m in means]), "seed_fid": seed_fid, "seed_replicates": seed_replicates,
            "key": np.array(key)}


def log_trial(client, experiment_id: str, parent_id: str, study: str, number: int | None, scores: np.ndarray,
              *, key: str = KEY, checkpoint_sha: str = "c" * 64, data_hash: str = KEY, settings: dict | None = None,
              extra_tags: dict | None = None, with_uncertainty: bool = True) -> str:
    """A COMPLETE trial run (number None: a run without a trial number, e.g. a confirmation) whose
    curve, intervals and uncertainty.npz come from `scores` [K, S, N]."""
    arrays = uncertainty_arrays(scores, key)
    tags = {"mlflow.parentRunId": parent_id, "optuna_study_name": study, "optuna_state": "COMPLETE",
            "checkpoint_sha": checkpoint_sha, "data_hash": data_hash, "protocol": "tf", "bootstrap_key": key,
            **({} if number is None else {"optuna_trial_number": str(number)}), **(extra_tags or {})}
    run_id = client.create_run(experiment_id, tags=tags).info.run_id
    steps = len(arrays["steps"])
    params = {"schedule": "cosine", "steps": steps, "choice_temperature": 4.5, "composite": "seamless", "seed": 0,
              "n_images": scores.shape[2], "data": "toy", "checkpoint": "toy", "protocol": "tf",
              "seeds": len(scores), "seed_list": ",".join(map(str, range(len(scores)))), **(settings or {})}
    now = int(time.time() * 1000)
    metrics = []
    for row, step in enumerate(arrays["steps"]):
        lo, hi = interval(arrays["fid"][row], arrays["replicates"][row])
        metrics += [Metric(name, float(value), now, int(step))
                    for name, value in (("fid", arrays["fid"][row]), ("fid_ci_low", lo), ("fid_ci_high", hi))]
    best = int(np.argmin(arrays["fid"]))
    lo, hi = interval(arrays["fid"][best], arrays["replicates"][best])
    metrics += [Metric(name, float(value), now, 0) for name, value in
                (("best_fid", arrays["fid"][best]), ("best_step", best + 1), ("final_fid", arrays["fid"][-1]),
                 ("best_fid_ci_low", lo), ("best_fid_ci_high", hi), ("n_images", scores.shape[2]))]
    client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in params.items()],
                     tags=[RunTag("cached", "false")])
    if with_uncertainty:
        with tempfile.TemporaryDirectory() as folder:
            np.savez(Path(folder) / "uncertainty.npz", **arrays)
            client.log_artifact(run_id, str(Path(folder) / "uncertainty.npz"))
    client.set_terminated(run_id, "FINISHED")
    return run_id


def per_image_scores(rng: np.random.Generator, curve: list[float], n: int, seeds: int = 1,
                     image_spread: float = 4.0, seed_spread: float = 0.5,
                     images: np.ndarray | None = None) -> np.ndarray:
    """Scores [K, S, N]: `curve[s]` plus an image effect shared by every trial given the same `images`
    (what makes pairing worthwhile) plus independent noise per seed."""
    images = rng.normal(0, image_spread, n) if images is None else images
    noise = rng.normal(0, seed_spread, (seeds, len(curve), n))
    return np.asarray(curve)[None, :, None] + images[None, None, :] + noise
