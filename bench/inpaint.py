"""`bench inpaint`: one decoding configuration over a test set, written as PNGs, scored when possible.

Settings come, in this order of precedence, from the options given, from a recorded trial
(`--from-run RUN_ID`: its params, data, checkpoint and image count), from the checkpoint's model
card (`meta.decoding` in its config.json) and from the settings' defaults. The output is the
decoder's result at one sweet spot: the given one, else the recorded trial's best step, else T.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from bench.data import IMAGE_SUFFIXES
from bench.errors import BenchError
from bench.fid import FIDResult, fid_with_interval
from bench.defaults import DEFAULT_CHECKPOINT, DEFAULT_PROTOCOL, DEFAULT_TRACKING_URI
from bench.session import load_model, open_evaluator
from bench.tracking import recorded_store_client
from bench.trial import SETTING_TYPES, TrialSettings, parse_setting
from bench.trial_results import save_png


@dataclass(frozen=True)
class RecordedTrial:
    """What `--from-run` takes from an MLflow trial run."""

    settings: dict[str, str]  # the run's setting params, as recorded
    data: str | None
    checkpoint: str | None
    n_images: int | None
    protocol: str | None
    best_step: int | None
    best_fid: float | None


def recorded_trial(run_id: str, tracking_uri: str) -> RecordedTrial:
    from mlflow.exceptions import MlflowException

    client = recorded_store_client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise BenchError(f"--from-run {run_id}: no such run in {tracking_uri}") from None
    params, metrics = run.data.params, run.data.metrics
    settings = {name: value for name, value in params.items() if name in SETTING_TYPES}
    if not settings:
        raise BenchError(f"--from-run {run_id}: not a trial run (it records no decoding settings)")
    best_step = metrics.get("best_step")  # runs recorded before data_path and checkpoint_path: the paths
    return RecordedTrial(settings, params.get("data_path", params.get("data")),
                         params.get("checkpoint_path", params.get("checkpoint")),
                         int(params["n_images"]) if "n_images" in params else None, params.get("protocol"),
                         None if best_step is None else int(best_step), metrics.get("best_fid"))


@dataclass(frozen=True)
class InpaintOutcome:
    out: Path
    names: list[str]  # files written, the masked inputs' names
    settings: TrialSettings
    sweet_spot: int
    score: FIDResult | None  # with its interval (paired with the trials on this test set); None: no ground truth
    recorded_fid: float | None  # the replayed trial's best_fid, to compare


def inpaint(options: Mapping[str, str | None], out: Path, *, sweet_spot: int | None = None, from_run: str | None = None,
            tracking_uri: str = DEFAULT_TRACKING_URI, data: str | None = None, checkpoint: str | None = None,
            limit: int | None = None, device: str = "auto", batch_size: int | None = None, protocol: str | None = None,
            overwrite: bool = False, progress: bool = True) -> InpaintOutcome:
    """Decode the test set with one configuration and write the output at one sweet spot as PNGs."""
    _check_out(out, overwrite)
    run = recorded_trial(from_run, tracking_uri) if from_run else None
    if run:
        data = data or run.data
        checkpoint = checkpoint or run.checkpoint
        limit = limit or run.n_images
        protocol = protocol or run.protocol
    loaded = load_model(checkpoint or DEFAULT_CHECKPOINT)
    card = loaded.config.get("meta", {}).get("decoding", {})
    settings = _settings({**card, **(run.settings if run else {})}, options)
    card_step = card.get("sweet_spot") if isinstance(card.get("sweet_spot"), int) else None
    step = sweet_spot or (run.best_step if run else None) or card_step or settings.steps
    if not 1 <= step <= settings.steps:
        raise BenchError(f"--sweet-spot {step}: must be a step 1..T (T = {settings.steps})")
    settings = replace(settings, sweet_spot=step)
    evaluator = open_evaluator(loaded, data, limit, device, batch_size=batch_size,
                               protocol=protocol or DEFAULT_PROTOCOL, cache=False, progress=progress)
    test = evaluator.test
    images = evaluator.images(evaluator.decode(settings).filled[step - 1], settings)
    out.mkdir(parents=True, exist_ok=True)
    names = [Path(name).with_suffix(".png").name for name in test.names]
    for name, image in tqdm(list(zip(names, images)), desc=f"writing {out}", unit="img", leave=False,
                            disable=None if progress else True):
        save_png(image, out / name)
    score = None if test.gt is None else fid_with_interval(evaluator.reference, images, evaluator.data_hash,
                                                           extractor=evaluator.extractor,
                                                           reference_gram=evaluator.reference_gram)
    return InpaintOutcome(out, names, settings, step, score, run.best_fid if run else None)


def _check_out(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise BenchError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and not overwrite and any(p.suffix.lower() in IMAGE_SUFFIXES for p in out.iterdir()):
        raise BenchError(f"--out {out}: already holds images (--overwrite replaces them)")


def _settings(recorded: Mapping[str, object], options: Mapping[str, str | None]) -> TrialSettings:
    """Recorded values under the given options; each option is a single value here, not a search."""
    values = dict(recorded)
    for name, text in options.items():
        if text is None:
            continue
        try:
            values[name] = parse_setting(name, text)
        except ValueError as exc:
            raise BenchError(f"--{name.replace('_', '-')}: {exc}") from None
    values.pop("sweet_spot", None)  # the output step is chosen separately
    try:
        return TrialSettings.from_params(values)
    except ValueError as exc:
        raise BenchError(f"invalid decoding settings: {exc}") from None
