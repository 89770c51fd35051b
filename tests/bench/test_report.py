"""bench.report: every figure drawn from a tiny recorded study, the tables hold the recorded numbers,
missing data becomes a note, unknown studies are one-line errors.

The studies are recorded by real sweeps (tiny random model, six toy faces, instant FID), so the
report reads exactly what `bench sweep` writes.
"""

from __future__ import annotations

import re
import shutil

import numpy as np
import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric
from PIL import Image
from typer.testing import CliRunner

from bench._report_data import _unknown_counts, portable_params
from bench._report_markdown import number_text
from bench.data import load_test_set
from bench.errors import BenchError
from bench.report import FIGURES, make_report
from bench.study import build_sweep_config, open_storage, run_sweep
from cli import app

GRID = {"schedule": ["cosine", "linear"], "steps": "2,3", "choice_temperature": "1,4.5"}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, empty_mlflow_database, instant_fid_context, tiny_checkpoint, tiny_test_set):
    """A grid study (2 schedules x T in {2, 3} x 2 temperatures) and a two-objective study."""
    folder = tmp_path_factory.mktemp("recorded")
    shutil.copyfile(empty_mlflow_database, folder / "mlflow.db")
    tracking_uri, storage = f"sqlite:///{folder / 'mlflow.db'}", str(folder / "studies.journal")
    common = dict(tracking_uri=tracking_uri, storage=storage, data=str(tiny_test_set), checkpoint=str(tiny_checkpoint),
                  batch_size=4, device="cpu", progress=False)
    with instant_fid_context():
        run_sweep(build_sweep_config(GRID, None, study_name="grid", sampler="grid", **common))
        run_sweep(build_sweep_config({"schedule": ["cosine"], "steps": "1..3"}, None, study_name="front",
                                     objective="fid+steps", n_trials=4, **common))
        run_sweep(build_sweep_config({"schedule": ["cosine"], "steps": "2"}, None, study_name="single", **common))
    return folder, tracking_uri, storage


def report(recorded, tmp_path, *studies, **options):
    folder, tracking_uri, storage = recorded
    return make_report(tracking_uri, studies, storage=storage, out=tmp_path / "report", **options)


def is_blank(path) -> bool:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=float)
    return pixels.std() < 5 or min(pixels.shape) < 100


def test_every_figure_is_drawn_non_blank_and_referenced(recorded, tmp_path):
    result = report(recorded, tmp_path, "grid", "front")
    markdown = (result.out / "report.md").read_text()
    expected = [f"{key}.png" for key, _, _ in FIGURES] + ["best_progression.png", "best_latent_mask.png"]
    for name in expected:
        assert (result.out / name).is_file(), name
        assert not is_blank(result.out / name), name
        assert f"]({name})" in markdown, name
    assert "Not drawn" not in markdown
    assert "Settings shared by every trial: " in markdown and "composite = seamless" in markdown


def test_tables_hold_the_recorded_numbers(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    result = report(recorded, tmp_path, "grid")
    study = optuna.load_study(study_name="grid", storage=open_storage(storage))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 8
    trials = pd.read_csv(result.out / "trials.csv")
    recorded_fids = sorted(t.values[0] for t in complete)
    assert sorted(trials["best_fid"]) == pytest.approx(recorded_fids, rel=1e-12)
    markdown = (result.out / "report.md").read_text()
    for schedule in ("cosine", "linear"):
        best = min(t.values[0] for t in complete if t.params["schedule"] == schedule)
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {schedule} |"))
        assert f"| {number_text(best)} |" in row
    parent = MlflowClient(tracking_uri).get_run(result.logged_to[0])
    for name, label in (("grey", "grey holes"), ("harmonic", "harmonic fill")):
        value = parent.data.metrics[f"baseline_{name}_fid"]
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {label} (reference) |"))
        assert f"| {number_text(value)} |" in row
    assert f"FID **{number_text(recorded_fids[0])}**" in markdown


def test_the_report_is_logged_to_the_studys_parent_run(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    result = report(recorded, tmp_path, "grid")
    client = MlflowClient(tracking_uri)
    logged = {info.path for info in client.list_artifacts(result.logged_to[0], "report")}
    assert {"report/report.md", "report/fid_vs_step.png", "report/trials.csv"} <= logged
    assert "mlflow.parentRunId" not in client.get_run(result.logged_to[0]).data.tags


def test_the_test_set_is_named_portably_never_by_its_folder(recorded, tmp_path, tiny_checkpoint, tiny_test_set):
    """report.md and trials.csv name the test set by its last two path components and its content hash
    (reports are committed); the folder it was read from serves only to count N0 where it exists.
    The model likewise, by its folder's last two components beside its weights' hash."""
    result = report(recorded, tmp_path, "grid", log=False)
    markdown, table = (result.out / "report.md").read_text(), (result.out / "trials.csv").read_text()
    assert str(tiny_test_set) not in markdown and str(tiny_test_set) not in table
    assert str(tiny_checkpoint) not in markdown and str(tiny_checkpoint) not in table
    model = f"{tiny_checkpoint.parent.name}/tiny"
    assert f"- Model `{model}` (sha256 " in markdown
    data_hash = load_test_set(tiny_test_set).content_hash()
    name = f"{tiny_test_set.parent.name}/test"
    assert f"test set `{name}` (6 images, data hash {data_hash})" in markdown
    trials = pd.read_csv(result.out / "trials.csv")
    assert set(trials["data"]) == {name} and "data_path" not in trials
    assert set(trials["checkpoint"]) == {model} and "checkpoint_path" not in trials
    provenance = {"data_path": str(tiny_test_set), "n_images": "6", "data_hash": data_hash}
    assert len(_unknown_counts(provenance)) == 6  # read here; on another machine the folder is gone:
    assert _unknown_counts({**provenance, "data_path": str(tmp_path / "elsewhere" / "test")}) is None


def test_runs_recorded_with_local_paths_are_shown_by_portable_names():
    """Runs from before `data_path`/`checkpoint_path` held the folders in `data`/`checkpoint`."""
    old = {"schedule": "cosine", "data": "/home/me/benchmarks/catfaces/test", "checkpoint": "/home/me/runs/toy-t8"}
    assert portable_params(old) == {"schedule": "cosine", "data": "catfaces/test", "checkpoint": "runs/toy-t8"}
    new = {"data": "catfaces/test", "data_path": "/x/catfaces/test", "checkpoint": "toyfaces",
           "checkpoint_path": "toyfaces"}
    assert portable_params(new) == {"data": "catfaces/test", "checkpoint": "toyfaces"}


def test_missing_data_gives_notes_not_a_crash(recorded, tmp_path):
    result = report(recorded, tmp_path, "single", log=False)
    markdown = (result.out / "report.md").read_text()
    notes = {s.key: s.text for s in result.sections if s.file is None}
    assert {"best_and_final_vs_steps", "temperature", "optuna_importance", "pareto_front"} <= set(notes)
    assert all(text.startswith("Not drawn: ") for text in notes.values())
    assert markdown.count("Not drawn: ") == len(notes)
    assert not (result.out / "temperature.png").exists()
    assert (result.out / "fid_vs_step.png").is_file() and not result.logged_to


def test_the_chosen_t_sets_the_step_figures(recorded, tmp_path):
    result = report(recorded, tmp_path, "grid", steps=3, log=False)
    assert "T = 3" in (result.out / "report.md").read_text()
    with pytest.raises(BenchError, match=r"^--steps 7: no complete trial used T = 7 \(recorded: 2, 3\)$"):
        report(recorded, tmp_path, "grid", steps=7, log=False)


def test_without_optuna_storage_the_optuna_figures_are_notes(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    result = make_report(tracking_uri, experiments=["grid"], storage=str(tmp_path / "absent.journal"),
                         out=tmp_path / "report", log=False)
    notes = {s.key for s in result.sections if s.file is None}
    assert {"optuna_history", "optuna_importance", "pareto_front"} <= notes
    assert (result.out / "fid_vs_step.png").is_file()


def test_the_history_draws_each_trial_with_its_logged_interval(recorded, tmp_path, monkeypatch):
    from bench import _report_figures
    from bench.report import load_report_data

    folder, tracking_uri, storage = recorded
    data = load_report_data(tracking_uri, ["grid"], storage=storage)
    drawn = []
    monkeypatch.setattr(_report_figures, "_save", lambda fig, path: drawn.append(fig))
    _report_figures.fig_optuna_history(data, _report_figures.report_style(data, None), tmp_path / "h.png")
    points, _, (bars,) = drawn[0].axes[0].containers[0].lines
    client = MlflowClient(tracking_uri)
    logged = {row["trial"]: client.get_run(row["run_id"]).data.metrics for _, row in data.trials.iterrows()}
    assert list(points.get_xdata()) == sorted(logged)
    assert list(points.get_ydata()) == pytest.approx([logged[n]["best_fid"] for n in sorted(logged)], rel=1e-12)
    ends = [(segment[0][1], segment[1][1]) for segment in bars.get_segments()]
    assert ends == pytest.approx([(logged[n]["best_fid_ci_low"], logged[n]["best_fid_ci_high"]) for n in sorted(logged)],
                                 rel=1e-12)


def test_cli_unknown_study_is_a_one_line_error(recorded, tmp_path):
    folder, tracking_uri, storage = recorded
    before = (folder / "mlflow.db").read_bytes()
    result = CliRunner().invoke(app, ["report", "--study", "nope", "--tracking-uri", tracking_uri,
                                      "--storage", storage, "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and re.match(r"error: --study nope: no such study in .* \(recorded: .*grid.*\)$", lines[0])
    assert not (tmp_path / "r").exists()
    assert (folder / "mlflow.db").read_bytes() == before


def test_cli_writes_the_report_of_the_newest_study_by_default(recorded, tmp_path, monkeypatch):
    folder, tracking_uri, storage = recorded
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["report", "--tracking-uri", tracking_uri, "--storage", storage, "--no-log"])
    assert result.exit_code == 0, result.output
    assert "wrote reports/single/report.md" in result.output
    assert (tmp_path / "reports" / "single" / "fid_vs_step.png").is_file()


# --- intervals and verdicts, on trials with synthetic uncertainty.npz (tests/bench/recorded_trials.py) ---


@pytest.fixture
def paired_store(tracking_uri, tmp_path):
    """Study `paired`: trial 0 (best), trial 1 (the same curve up to noise: indistinguishable), trial 2
    (clearly worse), 2 seeds each over 48 shared images; the parent run's references (grey holes far
    above every curve); confirmation runs of trials 0 and 1 when asked."""
    from recorded_trials import log_trial, per_image_scores, uncertainty_arrays

    client = MlflowClient(tracking_uri)
    experiment = client.create_experiment("paired")
    parent = client.create_run(experiment, tags={"optuna_study_name": "paired"}).info.run_id
    client.log_batch(parent, metrics=[Metric(k, v, 0, 0) for k, v in (
        ("baseline_grey_fid", 300.0), ("baseline_grey_fid_ci_low", 296.0), ("baseline_grey_fid_ci_high", 304.0),
        ("baseline_harmonic_fid", 35.0), ("baseline_harmonic_fid_ci_low", 34.0),
        ("baseline_harmonic_fid_ci_high", 36.0))])
    rng = np.random.default_rng(1)
    images = rng.normal(0, 4.0, 48)
    curves = {0: ([40.0, 31.0, 33.0, 34.0], "cosine"), 1: ([40.0, 31.0, 33.0, 34.0], "linear"),
              2: ([45.0, 38.0, 37.0, 36.5], "cosine")}
    scores = {n: per_image_scores(rng, curve, 48, seeds=2, images=images) for n, (curve, _) in curves.items()}
    runs = {n: log_trial(client, experiment, parent, "paired", n, scores[n], settings={"schedule": curves[n][1]})
            for n in curves}
    harmonic = uncertainty_arrays(per_image_scores(rng, [35.0], 48, images=images))
    scores["harmonic"] = (harmonic["fid"][0], harmonic["replicates"][0])
    np.savez(tmp_path / "baselines.npz", key=harmonic["key"], harmonic_fid=harmonic["fid"][0],
             harmonic_replicates=harmonic["replicates"][0], grey_fid=300.0, grey_replicates=np.full(200, 300.0))
    client.log_artifact(parent, str(tmp_path / "baselines.npz"))

    def confirm(numbers, shift):
        confirm_parent = client.create_run(experiment, tags={"confirmation": "true"}).info.run_id
        for n in numbers:
            fresh = per_image_scores(rng, [v + shift.get(n, 0.0) for v in curves[n][0]], 48, seeds=2, images=images)
            runs[f"confirm-{n}"] = log_trial(client, experiment, confirm_parent, "paired", None, fresh,
                                             settings={"schedule": curves[n][1]},
                                             extra_tags={"confirmation": "true", "confirms": str(n)})

    return client, tracking_uri, scores, runs, confirm


def test_bands_are_the_intervals_logged_beside_each_fid(paired_store, tmp_path, monkeypatch):
    from bench import _report_figures
    from bench.report import load_report_data

    client, uri, _, runs, _ = paired_store
    data = load_report_data(uri, ["paired"])
    bands = _report_figures.step_bands(data, 4)
    assert set(bands["run_id"]) == {runs[0], runs[1]}  # each schedule's best trial
    for run_id, rows in bands.groupby("run_id"):
        for name in ("fid", "fid_ci_low", "fid_ci_high"):
            logged = {m.step: m.value for m in client.get_metric_history(run_id, name)}
            assert dict(zip(rows["step"], rows[name])) == logged
    drawn = []
    monkeypatch.setattr(_report_figures, "_save", lambda fig, path: drawn.append(fig))
    _report_figures.fig_fid_vs_step(data, _report_figures.report_style(data, None), tmp_path / "f.png")
    ax = drawn[0].axes[0]
    drawn_bands = sorted(sorted(np.round(band.get_paths()[0].vertices[:, 1], 9).tolist()) for band in ax.collections)
    logged_bands = sorted(sorted(set(np.round([*rows["fid_ci_low"], *rows["fid_ci_high"]], 9).tolist()))
                          for _, rows in bands.groupby("run_id"))
    assert [sorted(set(band)) for band in drawn_bands] == logged_bands
    low, high = ax.get_ylim()
    values = bands[["fid_ci_low", "fid_ci_high"]].to_numpy()
    assert low < values.min() and high > values.max() and high < values.max() + 0.1 * (values.max() - values.min()) + 1
    notes = [text.get_text() for text in ax.texts]
    assert notes == ["↑ grey holes (reference): 300.0"]  # outside the range: a note, not a squashing line
    assert any(line.get_label() == "harmonic fill (reference)" for line in ax.lines)  # inside: a line


def test_below_the_curves_each_step_is_set_against_the_last_paired(paired_store, tmp_path, monkeypatch):
    from bench import _report_figures
    from bench.report import load_report_data
    from bench.stats import paired_difference
    from recorded_trials import uncertainty_arrays

    _, uri, scores, _, _ = paired_store
    data = load_report_data(uri, ["paired"])
    drawn = []
    monkeypatch.setattr(_report_figures, "_save", lambda fig, path: drawn.append(fig))
    style = _report_figures.report_style(data, None)
    caption = _report_figures.fig_fid_vs_step(data, style, tmp_path / "f.png")
    below = drawn[0].axes[1]
    best_trial = {"cosine": 0, "linear": 1}  # each schedule's best at T = 4, in the palette's order
    numbers = [best_trial[name] for name in style.palette if name in best_trial]
    curves = [line for line in below.lines if line.get_marker() == "o"]  # not the band edges or the zero line
    assert len(curves) == 2
    for number, line, band in zip(numbers, curves, below.collections):
        arrays = uncertainty_arrays(scores[number])
        known = [paired_difference(arrays["fid"][s], arrays["replicates"][s], arrays["fid"][3], arrays["replicates"][3])
                 for s in range(4)]
        assert list(line.get_ydata()) == pytest.approx([d.estimate for d in known], abs=1e-9)
        assert sorted(set(np.round(band.get_paths()[0].vertices[:, 1], 9))) == sorted(
            set(np.round([*(d.lo for d in known), *(d.hi for d in known)], 9)))
    assert known[1].hi < 0 and known[3].estimate == 0  # step 2 beats the end: a band wholly below the zero line
    assert "a step beats decoding to the end only where its band lies wholly below 0" in caption


def test_the_table_marks_trials_indistinguishable_from_the_best(paired_store, tmp_path):
    from bench._report_markdown import difference_text, top_table
    from bench.report import load_report_data
    from bench.stats import paired_difference
    from recorded_trials import uncertainty_arrays

    _, uri, scores, _, _ = paired_store
    data = load_report_data(uri, ["paired"])
    table = top_table(data)
    assert list(table["trial"]) == [0, 1, 2] and list(table["beaten by best"]) == ["best", "no", "yes"]
    best = uncertainty_arrays(scores[0])
    for number, best_step in ((1, 2), (2, 4)):
        mine = uncertainty_arrays(scores[number])
        expected = paired_difference(mine["fid"][best_step - 1], mine["replicates"][best_step - 1],
                                     best["fid"][1], best["replicates"][1])
        assert table.loc[table["trial"] == number, "vs best"].item() == difference_text(expected)
        assert expected.detectable == (number == 2)
    markdown = (make_report(uri, ["paired"], out=tmp_path / "r", log=False).out / "report.md").read_text()
    assert "Statistically indistinguishable from the best trial (0; paired 95% interval of the difference " \
           "includes 0): trial 1 (linear, T = 4) of the next 2." in markdown
    assert "**Best setting** (not confirmed: `bench sweep --confirm K`" in markdown
    versus_harmonic = paired_difference(best["fid"][1], best["replicates"][1], *scores["harmonic"])
    assert versus_harmonic.hi < 0  # 31 against 35 on the same images: detectable
    assert ("- Against the harmonic fill, which learns nothing (FID 35.00): "
            f"{versus_harmonic.verdict('the best trial (0)', 'the harmonic fill')}.") in markdown
    assert "it beats the last step detectably (paired 95% interval below 0) in 2 of those 2" in markdown


def test_the_differences_figure_draws_the_indistinguishable_set(paired_store, tmp_path, monkeypatch):
    from bench import _report_figures
    from bench.report import load_report_data
    from bench.stats import paired_difference
    from recorded_trials import uncertainty_arrays

    _, uri, scores, _, _ = paired_store
    data = load_report_data(uri, ["paired"])
    best = uncertainty_arrays(scores[0])
    expected = {}
    for number, best_step in ((1, 2), (2, 4)):
        mine = uncertainty_arrays(scores[number])
        expected[number] = paired_difference(mine["fid"][best_step - 1], mine["replicates"][best_step - 1],
                                             best["fid"][1], best["replicates"][1])
    harmonic = paired_difference(*scores["harmonic"], best["fid"][1], best["replicates"][1])  # harmonic minus best
    rows = _report_figures.differences_from_best(data)
    assert [(label, reference) for label, _, reference in rows] == [
        ("trial 1: linear, T = 4, step 2", False), ("trial 2: cosine, T = 4, step 4", False),
        ("harmonic fill (reference)", True)]
    for (_, drawn, _), known in zip(rows, [expected[1], expected[2], harmonic]):
        assert (drawn.estimate, drawn.lo, drawn.hi) == pytest.approx((known.estimate, known.lo, known.hi), abs=1e-9)
    figures = []
    monkeypatch.setattr(_report_figures, "_save", lambda fig, path: figures.append(fig))
    _report_figures.fig_versus_best(data, _report_figures.report_style(data, None), tmp_path / "f.png")
    ax = figures[0].axes[0]
    colours = [container.lines[0].get_color() for container in ax.containers]
    assert colours == ["tab:green", "tab:red", "0.45"]  # indistinguishable, detectably worse, the reference
    assert [container.lines[0].get_xdata()[0] for container in ax.containers] == pytest.approx(
        [expected[1].estimate, expected[2].estimate, harmonic.estimate])
    labels = {label.get_text(): label.get_color() for label in ax.get_yticklabels()}
    assert labels == {"trial 0: cosine, T = 4, step 2: the best": "black",
                      "trial 1: linear, T = 4, step 2: indistinguishable": "tab:green",
                      "trial 2: cosine, T = 4, step 4: worse": "tab:red", "harmonic fill (reference)": "0.45"}


def test_the_heatmap_shares_one_scale_and_marks_only_detectable_sweet_spots_solid(paired_store, tmp_path, monkeypatch):
    from bench import _report_figures
    from bench.report import load_report_data

    _, uri, _, _, _ = paired_store
    data = load_report_data(uri, ["paired"])
    curves = data.curves.merge(data.trials[["run_id", "schedule", "steps"]], on="run_id")
    linear = curves[curves["schedule"] == "linear"]
    assert _report_figures.sweet_spot_boxes(data, linear) == [(4, 2, True)]  # 31 at step 2 against 34 at step 4
    cosine = curves[curves["schedule"] == "cosine"]  # trials 0 and 2 both ran cosine T = 4: their mean, no claim
    assert _report_figures.sweet_spot_boxes(data, cosine) == [(4, 2, None)]
    figures = []
    monkeypatch.setattr(_report_figures, "_save", lambda fig, path: figures.append(fig))
    _report_figures.fig_sweet_spot_heatmap(data, _report_figures.report_style(data, None), tmp_path / "f.png")
    panels = [ax for ax in figures[0].axes if ax.get_title()]
    limits = {ax.collections[0].get_clim() for ax in panels}
    assert limits == {(curves["fid"].min(), curves["fid"].max())}
    styles = {ax.get_title(): [patch.get_linestyle() for patch in ax.patches] for ax in panels}
    assert styles == {"cosine": [":"], "linear": ["-"]}


def test_the_heatmap_caption_sets_its_colour_span_beside_the_paired_noise(paired_store, tmp_path):
    from bench import _report_figures
    from bench.report import load_report_data
    from bench.stats import paired_difference
    from recorded_trials import uncertainty_arrays

    _, uri, scores, runs, _ = paired_store
    data = load_report_data(uri, ["paired"])
    halves = []
    for number in (0, 1, 2):
        arrays = uncertainty_arrays(scores[number])
        halves += [(d.hi - d.lo) / 2 for d in (paired_difference(arrays["fid"][s], arrays["replicates"][s],
                                                                 arrays["fid"][3], arrays["replicates"][3])
                                               for s in range(3))]  # steps 1..3 against step 4
    assert _report_figures.step_noise(data, [runs[0], runs[1], runs[2]]) == pytest.approx(np.mean(halves), abs=1e-9)
    caption = _report_figures.fig_sweet_spot_heatmap(data, _report_figures.report_style(data, None),
                                                     tmp_path / "h.png")
    span = data.curves["fid"].max() - data.curves["fid"].min()
    assert (f"The colours span {span:.2f} FID; a step's paired 95% interval against its row's last step is "
            f"±{np.mean(halves):.2f} FID on average") in caption


def test_the_summary_sets_seed_noise_beside_the_spread_of_the_settings(paired_store, tmp_path):
    _, uri, scores, _, _ = paired_store
    markdown = (make_report(uri, ["paired"], out=tmp_path / "r", log=False).out / "report.md").read_text()
    at_best = {0: 2, 1: 2, 2: 4}
    spreads = [np.std(scores[n].mean(axis=2)[:, step - 1], ddof=1) for n, step in at_best.items()]
    fids = [scores[n].mean(axis=(0, 2))[step - 1] for n, step in at_best.items()]
    assert max(spreads) < 1 < np.std(fids, ddof=1)  # so the seed sds take 4 decimals, the FIDs 2
    assert (f"- Seed to seed, a trial's FID at its best step moves by sd {np.mean(spreads):.4f} (mean over 3 trials, "
            f"from {min(spreads):.4f} to {max(spreads):.4f}), so the mean over a trial's seeds that the tables "
            f"show, by about {np.mean(spreads) / np.sqrt(2):.4f}; the 3 trials' best FIDs span {min(fids):.2f} "
            f"to {max(fids):.2f} (sd {np.std(fids, ddof=1):.2f}).") in markdown
    assert "seed_list = 0,1" in markdown and "seed = " not in markdown  # each trial decoded with seeds 0 and 1


def test_numbers_read_side_by_side_share_one_precision():
    from bench._report_markdown import difference_text, numbers_text
    from bench.stats import Difference

    assert difference_text(Difference(0.2514, -2.4712, 2.6531)) == "0.25 [-2.47, 2.65]"
    assert numbers_text(0.01234, 0.5) == ["0.0123", "0.5000"]  # all below 1: KID-sized, 4 decimals


def test_the_headline_comes_from_the_confirmation_runs(paired_store, tmp_path):
    from bench.report import load_report_data

    client, uri, _, runs, confirm = paired_store
    confirm([0, 1], shift={0: 3.0})  # trial 0 was lucky: on fresh seeds trial 1 wins
    data = load_report_data(uri, ["paired"])
    assert sorted(data.trials["trial"]) == [0, 1, 2]  # confirmations are not trials
    assert sorted(data.confirmations["confirms"]) == [0, 1]
    winner = client.get_run(runs["confirm-1"]).data.metrics
    markdown = (make_report(uri, ["paired"], out=tmp_path / "r", log=False).out / "report.md").read_text()
    assert (f"- **Confirmed winner**: linear, T = 4, choice temperature 4.5 (trial 1), at step 2: FID "
            f"**{number_text(winner['best_fid'])}** [{number_text(winner['best_fid_ci_low'])}, "
            f"{number_text(winner['best_fid_ci_high'])}] on 2 fresh seed(s)") in markdown
    assert "- Against the next confirmed configuration (trial 0, cosine, T = 4, choice temperature 4.5): " \
           "the winner is better than trial 0 by " in markdown
    from bench._report_markdown import confirmation_table, difference_text
    from bench.compare import read_uncertainty
    from bench.stats import paired_difference

    table = confirmation_table(data)
    assert list(table["confirms trial"]) == [1, 0] and list(table["beaten by winner"]) == ["winner", "yes"]
    first, second = (read_uncertainty(client, runs[f"confirm-{n}"]) for n in (1, 0))
    expected = paired_difference(*second.at(2), *first.at(2))  # both at step 2, the step their trials chose
    assert list(table["vs winner"]) == ["", difference_text(expected)]
    study = {n: client.get_run(runs[n]).data.metrics["best_fid"] for n in (0, 1)}
    assert list(table["FID in the study"]) == [study[1], study[0]]
    assert list(table["fresh seeds"]) == ["0,1", "0,1"]  # as recorded by this test's runs
    assert "## Confirmation runs (`bench sweep --confirm`)" in markdown
    shifts = [client.get_run(runs[f"confirm-{n}"]).data.metrics["best_fid"] - study[n] for n in (1, 0)]
    low, high, mean = (f"{value:.2f}" for value in (min(shifts), max(shifts), np.mean(shifts)))
    assert f"- On fresh seeds the 2 confirmed configurations' FIDs moved by {low} to {high} from their study " \
           f"values (mean {mean}; positive: worse)" in markdown
    assert "only nominal" not in markdown  # trial 1 detectably beat trial 0 on the fresh seeds


def test_a_winner_not_detectably_better_than_the_next_is_called_nominal(paired_store, tmp_path):
    _, uri, _, _, confirm = paired_store
    confirm([0, 1], shift={})  # the same curve again for both: no detectable difference between them
    markdown = (make_report(uri, ["paired"], out=tmp_path / "r", log=False).out / "report.md").read_text()
    line = next(line for line in markdown.splitlines() if line.startswith("- Against the next confirmed"))
    assert "no detectable difference" in line
    assert line.endswith("; so the winner is only nominal, its FID the lowest but not detectably lower.")


def test_confirmations_of_equal_trial_numbers_in_two_studies_are_kept_apart(paired_store):
    from bench._report_verdicts import confirmed_winner
    from bench.report import load_report_data
    from recorded_trials import log_trial, per_image_scores

    client, uri, _, runs, confirm = paired_store
    confirm([0], shift={0: -5.0})  # on fresh seeds paired's trial 0 wins
    rng = np.random.default_rng(2)
    other = client.create_experiment("other")
    parent = client.create_run(other, tags={"optuna_study_name": "other"}).info.run_id
    log_trial(client, other, parent, "other", 0, per_image_scores(rng, [25.0, 20.0], 48, seeds=2))  # luckier
    confirm_parent = client.create_run(other, tags={"confirmation": "true"}).info.run_id
    newer = log_trial(client, other, confirm_parent, "other", None, per_image_scores(rng, [44.0, 40.0], 48, seeds=2),
                      extra_tags={"confirmation": "true", "confirms": "0"})  # recorded after paired's
    data = load_report_data(uri, ["paired", "other"])
    confirmations = data.confirmations.set_index(["study", "confirms"])["run_id"].to_dict()
    assert confirmations == {("paired", 0): runs["confirm-0"], ("other", 0): newer}
    winner = confirmed_winner(data)
    assert winner.run["run_id"] == runs["confirm-0"]
    assert (winner.trial["study"], winner.trial["run_id"]) == ("paired", runs[0])
