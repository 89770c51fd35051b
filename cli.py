"""The `bench` command line: parses options and calls functions in `bench/`. Nothing else.

The Typer app and its commands; its private siblings hold the help's group class and the options
several commands share (`_cli_options.py`) and the `train` sub-app (`_cli_train.py`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from _cli_options import PRESETS_HELP, BenchGroup, batch_size_option, storage_option, tracking_uri_option
from _cli_train import train_app
from bench.defaults import DEFAULT_CHECKPOINT, DEFAULT_LIMIT, DEFAULT_PROTOCOL, DEFAULT_STEPS, DEFAULT_SWEEP_COMPOSITE
from bench.errors import BenchError

# Plain click help (no rich panels): it wraps every column at the terminal's width, so option names
# and long values are never cut off at 80 columns.
app = typer.Typer(
    cls=BenchGroup,
    help="maskgit-bench: tune MaskGIT inpainting decoding settings with Optuna, FID per step, MLflow.\n\n"
         "Example: bench sweep --schedule cosine",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
data_app = typer.Typer(help="Build and validate lab-layout datasets.\n\n"
                            "Example: bench data check data/catfaces", no_args_is_help=True)
app.add_typer(data_app, name="data")
app.add_typer(train_app, name="train")


def _print_version(requested: bool) -> None:
    if requested:
        from bench import package_version

        typer.echo(f"maskgit-bench {package_version()}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print the version and exit."),
):
    """Options of `bench` itself; the commands do the work (its help is the Typer app's)."""


# --- data commands -------------------------------------------------------------------------


@data_app.command("build")
def data_build(
    source: Path = typer.Option(..., help="Folder of raw 64x64 RGB images (.png/.jpg)."),
    out: Path = typer.Option(..., help="Folder to write the benchmark into."),
    seed: int = typer.Option(0, help="Seed of the split and the masks. Default: 0."),
    n_test: int = typer.Option(747, help="Test images (masked image, mask, ground truth). Default: 747."),
    n_val: int = typer.Option(1000, help="Validation images. Default: 1000."),
    n_train: int | None = typer.Option(None, help="Training images. Default: all the rest."),
    limit: int | None = typer.Option(None, help="Use only the first N source images (natural order). "
                                                 "Default: all."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it holds a benchmark. Default: off."),
):
    """Build a lab-layout benchmark: duplicates removed, split, free-form masks, test_gt.csv.

    Example: bench data build --source path/to/catfaces/images --out data/catfaces
    """
    from bench.data import build_benchmark

    built = build_benchmark(source, out, seed=seed, n_test=n_test, n_val=n_val, n_train=n_train,
                            limit=limit, overwrite=overwrite)
    typer.echo(f"wrote {built}")


@data_app.command("toyfaces")
def data_toyfaces(
    out: Path = typer.Option(..., help="Folder to write the benchmark into."),
    seed: int = typer.Option(0, help="Seed of the faces, the split and the masks. Default: 0."),
    n_train: int = typer.Option(10_000, help="Training images. Default: 10000."),
    n_val: int = typer.Option(1_000, help="Validation images. Default: 1000."),
    n_test: int = typer.Option(256, help="Test images. Default: 256."),
    overwrite: bool = typer.Option(False, help="Replace OUT if it holds a benchmark. Default: off."),
):
    """Build a benchmark of synthetic toy faces (the embedded default's kind of data).

    Example: bench data toyfaces --out data/toyfaces --n-test 64
    """
    from bench.toyfaces import build_toyfaces_benchmark

    built = build_toyfaces_benchmark(out, seed=seed, n_train=n_train, n_val=n_val, n_test=n_test,
                                     overwrite=overwrite)
    typer.echo(f"wrote {built}")


@data_app.command("check")
def data_check(
    path: Path = typer.Argument(..., help="Benchmark root or test-only folder (masked_image/, mask64/)."),
):
    """Validate a dataset folder and print its sizes, hole coverage and content hash.

    Example: bench data check data/catfaces
    """
    from bench.data import check_dataset, format_summary

    for line in format_summary(check_dataset(path)):
        typer.echo(line)

# --- fid command ---------------------------------------------------------------------------


@app.command("fid")
def fid_command(
    pred: Path = typer.Argument(..., help="Folder of predicted 64x64 images (.png/.jpg)."),
    gt: Path = typer.Argument(..., help="Ground truth: a folder of 64x64 images or a lab test_gt.csv."),
    protocol: str = typer.Option(DEFAULT_PROTOCOL, help="Resize into InceptionV3: tf (torch-fidelity, TF1 bilinear) "
                                            "or lab (pytorch-fid, torch bilinear). Default: tf."),
    kid: bool = typer.Option(True, "--kid/--no-kid", help="Also report KID mean ± std. Default: on."),
    batch_size: int | None = batch_size_option("Images per forward pass"),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1, ... Default: cuda if available."),
    weights: Path | None = typer.Option(None, help="InceptionV3 weights in torch-fidelity's format. "
                                                   "Default: $MASKGIT_BENCH_INCEPTION, else found offline."),
):
    """FID (and KID) between predictions and ground truth, offline; the ground truth's statistics are cached.

    Example: bench fid out/cosine-t8 data/catfaces/test/test_gt.csv
    """
    from bench.fid import fid_between

    result = fid_between(pred, gt, protocol, kid, batch_size=batch_size, device=device, weights=weights)
    typer.echo(result.summary())


@app.command("import-lab")
def import_lab(
    vqgan: Path = typer.Option(..., help="The lab's VQGAN state dict (VQGAN.pt)."),
    transformer: Path | None = typer.Option(None, help="The lab's transformer state dict (.pt). Default: none "
                                                       "(a stage-1 checkpoint)."),
    lab_config: Path | None = typer.Option(None, help="JSON with the lab's `vqgan` and `transformer` config fields. "
                                                      "Default: the full-size lab architecture."),
    out: Path = typer.Option(..., help="Folder for the converted checkpoint (safetensors + config.json)."),
):
    """Convert lab checkpoints (plain torch.save state dicts, loaded with weights_only=True) into a
    maskgit-bench checkpoint for --checkpoint.

    Example: bench import-lab --vqgan VQGAN.pt --transformer transformer_epoch_50.pt --out models/lab
    """
    from bench.train import import_lab_checkpoint

    sha = import_lab_checkpoint(vqgan, transformer, lab_config, out)
    typer.echo(f"checkpoint: {out} (weights {sha})")


# --- sweep / inpaint / ui ------------------------------------------------------------------


@dataclass(frozen=True)
class _Setting:
    """A decoding setting of a trial (bench.trial.TrialSettings) as an option."""

    kind: str  # what one value is: INT, FLOAT, NAME or on|off
    help: str  # what the setting is
    default: str  # the settings' own default (inpaint: unless the replayed run or the model card says otherwise)
    searched_default: str | None = None  # sweep's, when it searches more than the default
    searchable: bool = True


_SETTINGS = {
    "schedule": _Setting("NAME", "Mask schedule (linear, cosine, lab-cosine, square, cubic, sqrt, log, exp, arccos, "
                                 "pow<p>)", "cosine", "all of them, searched"),
    "steps": _Setting("INT", "Total iterations T", "8", ",".join(map(str, DEFAULT_STEPS))),
    "choice_temperature": _Setting("FLOAT", "Gumbel noise on the confidences", "4.5"),
    "anneal": _Setting("NAME", "Choice-temperature anneal: linear, none or cosine", "linear"),
    "sampling": _Setting("on|off", "Categorical sampling (on) or argmax (off)", "on"),
    "sampling_temperature": _Setting("FLOAT", "Softmax temperature of the sampling", "1.0"),
    "confidence": _Setting("NAME", "Confidence of a sample: log (log p, MaskGIT) or prob (p, the seed report's)",
                           "log"),
    "composite": _Setting("NAME", "Paste decoded pixels into the holes of the input: off, hard, feather, "
                                  "seamless (Poisson cloning)", "off",
                          f"{DEFAULT_SWEEP_COMPOSITE}, the shipped models' paste"),
    "feather": _Setting("INT", "Blend width in pixels for composite feather", "2"),
    "dilation": _Setting("INT", "Widen the unknown tokens by whole tokens", "0"),
    "seed": _Setting("INT", "Seed of the per-image random streams (sweep: also of the samplers)", "0",
                     searchable=False),
}
"""The eleven settings `bench sweep` and `bench inpaint` take, declared once: the sweep searches
each (a value, a list or a range: bench/search_space.py), inpaint fixes each to one value."""

_SEARCH_SYNTAX = {"INT": "a value, a list 5,8,13 or a range 4..16", "FLOAT": "a value, a list 0.5,1 or a range "
                  "0.5..8 (0.5..8:log, 0..1:0.25)"}


_RECORDED_DEFAULT = "--from-run's, else the checkpoint's meta.decoding, else"
"""Where bench inpaint's settings not given come from (bench/inpaint.py), before their own defaults."""


def _setting_option(name: str, searched: bool, recorded: bool = False):
    """The option of setting `name`: one value, or (searched) a list or range of them; `recorded`: one
    value that defaults to the replayed run's or the checkpoint's recorded decoding (bench inpaint)."""
    setting = _SETTINGS[name]
    if not (searched and setting.searchable):
        default = f"{_RECORDED_DEFAULT} {setting.default}" if recorded else setting.default
        return typer.Option(None, metavar=setting.kind, help=f"{setting.help}. Default: {default}.")
    default = setting.searched_default or setting.default
    if name == "schedule":  # repeated rather than comma-separated: pow<p> names hold no commas, but read better
        return typer.Option(None, metavar="NAME", help=f"{setting.help}; repeat to search several. "
                                                        f"Default: {default}.")
    numeric = setting.kind in _SEARCH_SYNTAX
    syntax = _SEARCH_SYNTAX[setting.kind] if numeric else "one, or a comma-separated list to search"
    return typer.Option(None, metavar=f"{setting.kind}|LIST" + ("|RANGE" if numeric else ""),
                        help=f"{setting.help}; {syntax}. Default: {default}.")


_COMPILE_HELP = ("Run the transformer and the VQGAN decoder through torch.compile: for CUDA; the first batches "
                 "pay the compilation, and on 2-core CPUs it was no faster. Default: off.")


@app.command("sweep")
def sweep(
    schedule: list[str] | None = _setting_option("schedule", searched=True),
    steps: str | None = _setting_option("steps", searched=True),
    sweet_spot: str | None = typer.Option(None, metavar="auto|any|INT|LIST|RANGE",
                                          help="Output step s: auto (each trial's best step, from its FID curve), "
                                               "any (sampled in 1..T), a step, steps 3,5 or a range 2..6. "
                                               "Default: auto."),
    choice_temperature: str | None = _setting_option("choice_temperature", searched=True),
    anneal: str | None = _setting_option("anneal", searched=True),
    sampling: str | None = _setting_option("sampling", searched=True),
    sampling_temperature: str | None = _setting_option("sampling_temperature", searched=True),
    confidence: str | None = _setting_option("confidence", searched=True),
    composite: str | None = _setting_option("composite", searched=True),
    feather: str | None = _setting_option("feather", searched=True),
    dilation: str | None = _setting_option("dilation", searched=True),
    seed: int | None = _setting_option("seed", searched=False),
    study_file: Path | None = typer.Option(None, help="A whole study as TOML (see studies/*.toml); options "
                                                      "given here override it. Default: none."),
    data: Path | None = typer.Option(None, help="Benchmark root or test-only folder (masked_image/, mask64/, "
                                                "gt/ or test_gt.csv). Default: the embedded toy-face benchmark."),
    checkpoint: str | None = typer.Option(None, help="Model: a checkpoint folder or a shipped name. "
                                                     f"Default: {DEFAULT_CHECKPOINT} (shipped)."),
    limit: int | None = typer.Option(None, help=f"Use the first N test images. Default: {DEFAULT_LIMIT} on the "
                                                "embedded benchmark, all with --data."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ... Default: auto."),
    batch_size: int | None = batch_size_option("Images decoded per batch (results do not depend on it)"),
    protocol: str = typer.Option(DEFAULT_PROTOCOL, help="FID resize protocol: tf or lab (see `bench fid`). "
                                                        f"Default: {DEFAULT_PROTOCOL}."),
    n_trials: int | None = typer.Option(None, help="Finished trials the study should have; resuming runs only "
                                                   "the missing ones. Default: 4; grid: every point."),
    timeout: float | None = typer.Option(None, help="Seconds after which no new trial starts. Default: none."),
    sampler: str | None = typer.Option(None, help="tpe, grid, random, cmaes or nsga2. Default: grid when the "
                                                  "space has at most --n-trials points, else tpe; nsga2 for two "
                                                  "objectives."),
    objective: str | None = typer.Option(None, help="fid (FID at the sweet spot), fid+steps or fid+seconds "
                                                    "(Pareto fronts). Default: fid."),
    pruner: str | None = typer.Option(None, help="none or median (prunes on the FID curve, step by step). "
                                                 "Default: none."),
    study_name: str | None = typer.Option(None, help="Study (and MLflow experiment) to create or resume. "
                                                     "Default: the study file's name, else sweep-<schedules>."),
    storage: str = storage_option("Optuna storage: a journal file several processes share, or a database URL "
                                   "(postgresql+psycopg2://...)"),
    tracking_uri: str = tracking_uri_option("MLflow store"),
    workers: int = typer.Option(1, help="Worker processes on this machine, each an Optuna worker on the "
                                        "storage. Default: 1."),
    seeds: int | None = typer.Option(None, help="Seeds per trial: each trial decodes the test set K times, its "
                                                "FID is their mean with an interval over seeds and images; a "
                                                "setting proposed again gets fresh seeds. Default: 1."),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="Reuse results of settings already evaluated "
                                                                "on this model and data. Default: on."),
    confirm: int | None = typer.Option(None, help="Instead of new trials: evaluate the K best configurations of "
                                                  "the finished study again with fresh seeds, at the step each "
                                                  "chose (runs tagged confirmation=true). Default: off."),
    compiled: bool = typer.Option(False, "--compile/--no-compile", help=_COMPILE_HELP),
):
    """Run or resume an Optuna study of decoding settings: FID at every step, one MLflow run per trial.

    Example: bench sweep --schedule cosine --schedule linear --steps 4..12 --n-trials 20
    """
    from rich.console import Console

    from bench.study import build_sweep_config, outcome_lines, outcome_table, run_sweep

    settings = dict(schedule=schedule, steps=steps, sweet_spot=sweet_spot, choice_temperature=choice_temperature,
                    anneal=anneal, sampling=sampling, sampling_temperature=sampling_temperature,
                    confidence=confidence, composite=composite, feather=feather, dilation=dilation,
                    seed=None if seed is None else str(seed))
    config = build_sweep_config(settings, study_file, study_name=study_name, storage=storage,
                                tracking_uri=tracking_uri, objective=objective, sampler=sampler, pruner=pruner,
                                n_trials=n_trials, timeout=timeout, workers=workers,
                                data=None if data is None else str(data), limit=limit, checkpoint=checkpoint,
                                seed=seed, seeds=seeds, device=device, batch_size=batch_size, protocol=protocol,
                                cache=cache, compiled=compiled)
    if confirm is not None:
        from bench.confirm import confirmation_lines, run_confirmation

        for line in confirmation_lines(run_confirmation(config, confirm)):
            typer.echo(line)
        return
    try:
        outcome = run_sweep(config)
    except KeyboardInterrupt:
        typer.secho(f"interrupted: the running trial is recorded FAIL; the same command resumes study "
                    f"{config.study_name}", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    console = Console()
    console.print(outcome_table(outcome))
    for line in outcome_lines(outcome):
        console.print(line, soft_wrap=True)  # whole lines: commands stay copyable


@app.command("report")
def report_command(
    study: list[str] | None = typer.Option(None, help="Study to report on; repeat to compare several recorded "
                                                       "with the same model and data. Default: the newest study."),
    experiment: list[str] | None = typer.Option(None, help="MLflow experiment to report on (a study's runs "
                                                           "without its Optuna storage). Default: none."),
    out: Path | None = typer.Option(None, help="Folder for report.md, the PNG figures and trials.csv. "
                                               "Default: reports/<study>."),
    steps: int | None = typer.Option(None, help="T of the FID-vs-step and schedule figures. Default: the T "
                                                "with the most trials."),
    storage: str = storage_option("Optuna storage of the studies (history, importances, Pareto front)"),
    tracking_uri: str = tracking_uri_option("MLflow store"),
    log: bool = typer.Option(True, "--log/--no-log", help="Also log the report as artifacts of each study's "
                                                          "newest parent run. Default: on."),
):
    """Figures (seaborn) and report.md from recorded studies: FID vs step per schedule, the schedules, FID vs T,
    temperature, sweet spots, Optuna history/importances/Pareto front, the best trial's progressions.

    Example: bench report --study seed-report --out reports/seed-report
    """
    from bench.report import make_report, report_lines

    report = make_report(tracking_uri, study or (), experiment or (), storage, out, steps, log)
    for line in report_lines(report):
        typer.echo(line)


@app.command("compare")
def compare_command(
    trial_a: str = typer.Argument(..., metavar="A", help="A trial: <study>:<trial number> (e.g. sweep-cosine:3) "
                                                         "or an MLflow run id (confirmation runs)."),
    trial_b: str = typer.Argument(..., metavar="B", help="The trial to compare it with, named the same way."),
    step: int | None = typer.Option(None, help="Compare both trials' FIDs at this step. Default: each trial's "
                                               "best step."),
    tracking_uri: str = tracking_uri_option("MLflow store of the trials"),
):
    """Is A's FID really lower than B's? The paired difference with its 95% interval and a verdict, and
    whether each sweet spot beats its trial's last step (trials on the same model and test images).

    Example: bench compare sweep-cosine:3 sweep-cosine:1
    """
    from bench.compare import compare_trials, comparison_lines

    for line in comparison_lines(compare_trials(tracking_uri, trial_a, trial_b, step)):
        typer.echo(line)


@app.command("perf")
def perf(
    data: Path | None = typer.Option(None, help="Benchmark root or test folder. Default: the embedded toy-face "
                                                "benchmark (the issue's figures use data/catfaces)."),
    limit: int = typer.Option(64, help="Test images N. Default: 64."),
    steps: int = typer.Option(8, help="Total iterations T (the curve has T FIDs). Default: 8."),
    checkpoint: str = typer.Option("catfaces", help="Model: a checkpoint folder or a shipped name. "
                                                    "Default: catfaces."),
    preset: str | None = typer.Option(None, help=f"Instead of --checkpoint: random weights of a preset, for timing "
                                                 f"only: {PRESETS_HELP}. Default: none."),
    schedule: str = typer.Option("cosine", help="Mask schedule of the timed trial. Default: cosine."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, ... Default: auto."),
    batch_size: int | None = batch_size_option("Images per decoding batch of the harness"),
    reference: bool = typer.Option(True, "--reference/--no-reference", help="Also time the reference workflow "
                                                                            "(slow: batch 1, T FIDs). Default: on."),
    phases: bool = typer.Option(True, "--phases/--no-phases", help="Also time the pure compute phases alone "
                                                                   "(as long again as the trial). Default: on."),
    compiled: bool = typer.Option(False, "--compile/--no-compile", help=_COMPILE_HELP),
):
    """Benchmark one trial: harness vs the seed report's workflow, overhead vs pure compute, peak memory.

    Example: bench perf --data data/catfaces --limit 64 --steps 8
    """
    from bench.perf import perf_command, perf_lines

    result = perf_command(None if data is None else str(data), limit, steps, checkpoint, preset, device,
                          batch_size, schedule, reference, phases, compiled)
    for line in perf_lines(result):
        typer.echo(line)


@app.command("inpaint")
def inpaint_command(
    out: Path = typer.Option(..., help="Folder for the inpainted PNGs (named like the masked inputs)."),
    from_run: str | None = typer.Option(None, help="Replay a recorded trial: its settings, data, checkpoint and "
                                                   "image count (options given here win). Default: none."),
    sweet_spot: int | None = typer.Option(None, help="Which step's output to write. Default: the replayed "
                                                     "trial's best step, else the checkpoint's meta.decoding, "
                                                     "else T."),
    schedule: str | None = _setting_option("schedule", searched=False, recorded=True),
    steps: str | None = _setting_option("steps", searched=False, recorded=True),
    choice_temperature: str | None = _setting_option("choice_temperature", searched=False, recorded=True),
    anneal: str | None = _setting_option("anneal", searched=False, recorded=True),
    sampling: str | None = _setting_option("sampling", searched=False, recorded=True),
    sampling_temperature: str | None = _setting_option("sampling_temperature", searched=False, recorded=True),
    confidence: str | None = _setting_option("confidence", searched=False, recorded=True),
    composite: str | None = _setting_option("composite", searched=False, recorded=True),
    feather: str | None = _setting_option("feather", searched=False, recorded=True),
    dilation: str | None = _setting_option("dilation", searched=False, recorded=True),
    seed: int | None = _setting_option("seed", searched=False, recorded=True),
    data: Path | None = typer.Option(None, help="Benchmark root or test-only folder (masked_image/, mask64/, "
                                                "optional gt/ or test_gt.csv). Default: the embedded benchmark."),
    checkpoint: str | None = typer.Option(None, help=f"Checkpoint folder or shipped name. Default: {DEFAULT_CHECKPOINT}."),
    limit: int | None = typer.Option(None, help=f"The first N test images. Default: all (embedded: {DEFAULT_LIMIT})."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ... Default: auto."),
    batch_size: int | None = batch_size_option("Images decoded per batch"),
    protocol: str | None = typer.Option(None, help="FID protocol: tf or lab. Default: tf (or the replayed run's)."),
    tracking_uri: str = tracking_uri_option("MLflow store of --from-run"),
    overwrite: bool = typer.Option(False, help="Replace images already in --out. Default: off."),
):
    """Inpaint a test set with one decoding configuration; prints FID/KID when there is ground truth.

    A setting not given comes from the replayed trial (--from-run), else from the decoding the checkpoint
    records for itself (its config.json's meta.decoding, as the shipped toyfaces does), else from the
    setting's own default; the output lists the settings used.

    Example: bench inpaint --out out/cosine-t8 --schedule cosine --steps 8 --sweet-spot 6
    """
    from bench.inpaint import inpaint

    options = dict(schedule=schedule, steps=steps, choice_temperature=choice_temperature, anneal=anneal,
                   sampling=sampling, sampling_temperature=sampling_temperature, confidence=confidence,
                   composite=composite, feather=feather, dilation=dilation, seed=None if seed is None else str(seed))
    outcome = inpaint(options, out, sweet_spot=sweet_spot, from_run=from_run, tracking_uri=tracking_uri,
                      data=None if data is None else str(data), checkpoint=checkpoint, limit=limit, device=device,
                      batch_size=batch_size, protocol=protocol, overwrite=overwrite)
    typer.echo(f"wrote {len(outcome.names)} images to {outcome.out} (step {outcome.sweet_spot} of "
               f"{outcome.settings.steps})")
    typer.echo("settings: " + ", ".join(f"{k}={v}" for k, v in outcome.settings.params().items()))
    if outcome.score is not None:
        typer.echo(outcome.score.summary())
    if outcome.recorded_fid is not None:
        typer.echo(f"recorded trial: FID {outcome.recorded_fid:.4f}")


@app.command("evaluate")
def evaluate_command(
    checkpoint: str = typer.Option(DEFAULT_CHECKPOINT, help=f"Checkpoint folder or shipped name. "
                                                            f"Default: {DEFAULT_CHECKPOINT}."),
    data: Path | None = typer.Option(None, help="Benchmark root or test folder. Default: the embedded benchmark."),
    limit: int | None = typer.Option(None, help=f"The first N test images. Default: all (embedded: {DEFAULT_LIMIT})."),
    schedule: str = typer.Option("cosine", help="Schedule of the multi-step row. Default: cosine."),
    steps: int = typer.Option(8, min=2, help="T of the multi-step row (its best step is reported). Default: 8."),
    choice_temperature: float = typer.Option(4.5, min=0.0, help="Choice temperature of the multi-step row. "
                                                                "Default: 4.5."),
    sampling: str | None = _setting_option("sampling", searched=False),
    sampling_temperature: str | None = _setting_option("sampling_temperature", searched=False),
    sweet_spot: int | None = typer.Option(None, min=1, help="Score the multi-step row at this step only (one FID "
                                                            "instead of T, e.g. the best step a sweep found). "
                                                            "Default: every step, the best reported."),
    composite: str = typer.Option("off,hard,seamless", help="How the decoding rows paste decoded pixels into the "
                                                            "holes, one trio of rows each (oracle, one step, "
                                                            "multi-step): off (nothing pasted, the whole decoded "
                                                            "image scored: the lab's protocol), hard, feather, "
                                                            "seamless (Poisson cloning). Default: off,hard,seamless."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, ... Default: auto."),
    batch_size: int | None = batch_size_option("Images per batch", min=1),
    out: Path | None = typer.Option(None, help="Also write the numbers as JSON here. Default: print only."),
):
    """Measure a trained model for its model card: VQGAN reconstruction PSNR/FID and codebook usage,
    masked-token accuracy, and inpainting FID of grey holes, the harmonic fill, the ground truth's own
    tokens decoded (the tokenizer's bound), one-step and multi-step decoding, once per --composite.

    Example: bench evaluate --checkpoint catfaces --data data/catfaces --out quality.json
    """
    from bench.quality import evaluate_checkpoint, format_quality
    from bench.trial import TrialSettings, parse_setting
    from maskgit.decoding import DecodeConfig

    composites = [name.strip() for name in composite.split(",")]
    try:
        given = {name: parse_setting(name, text) for name, text in
                 (("sampling", sampling), ("sampling_temperature", sampling_temperature)) if text is not None}
        best = TrialSettings(DecodeConfig(schedule=schedule, steps=steps, choice_temperature=choice_temperature,
                                          **given), sweet_spot=sweet_spot)
        for name in composites:
            TrialSettings(composite=name)
    except ValueError as exc:
        raise BenchError(f"--schedule/--steps/--sampling/--sampling-temperature/--sweet-spot/--composite: {exc}"
                         ) from None
    report = evaluate_checkpoint(checkpoint, None if data is None else str(data), limit, device, batch_size, best,
                                 composites, out)
    for line in format_quality(report):
        typer.echo(line)


_HOST_HELP = ("Address to listen on: 127.0.0.1 keeps it on this machine, 0.0.0.0 opens it to the network "
              "(no authentication). Default: 127.0.0.1.")


@app.command("ui")
def ui_command(
    tracking_uri: str = tracking_uri_option("MLflow store"),
    host: str = typer.Option("127.0.0.1", help=_HOST_HELP),
    port: int = typer.Option(5000, min=1, max=65535, help="TCP port. Default: 5000."),
):
    """Serve the MLflow UI on the tracking store: one experiment per study, FID vs step per trial
    (Ctrl-C stops it).

    Example: bench ui --tracking-uri sqlite:///mlflow.db --port 5000
    """
    from bench.tracking import run_mlflow_ui

    typer.echo(f"MLflow UI on http://{host}:{port} for {tracking_uri} (Ctrl-C stops it)")
    run_mlflow_ui(tracking_uri, host, port)


@app.command("dashboard")
def dashboard_command(
    storage: str = storage_option("Optuna storage of the studies: a journal file or a database URL"),
    host: str = typer.Option("127.0.0.1", help=_HOST_HELP),
    port: int = typer.Option(8080, min=1, max=65535, help="TCP port. Default: 8080."),
):
    """Serve optuna-dashboard on the study storage: history, importances, parallel coordinates, live
    while a sweep runs (Ctrl-C stops it). Needs the dashboard extra.

    Example: bench dashboard --storage bench-studies.journal --port 8080
    """
    from bench.dashboard import serve_dashboard

    serve_dashboard(storage, host, port)


if __name__ == "__main__":
    app()
