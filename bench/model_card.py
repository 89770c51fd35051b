"""A shipped model's numbers as markdown, generated from its `quality.json` (`bench evaluate --out`)
and `config.json`, so a model card or the README never disagrees with what was measured: the
card's two tables, the model's row of the README's model table, and a table of targets (each met
or not, with its measured value and what bounds it) that quality.json keeps too; and the shipped
config's meta, from the two training stages' checkpoints. No torch here.

Targets are a TOML file of `[[target]]` tables: `quantity`, `old` (text), `value` (a number's
name), `op` (`<=`, `<` or `>=`), `limit` (a number or a number's name) times `factor` (default 1),
and optional format strings `shown`, `target` and `bounded_by`. A number's name is its path in
quality.json written with dots (`inpainting.harmonic.fid`), or a name given with `extra` (numbers
measured elsewhere, e.g. the seed report's spreads); format strings use the same names
(`{reconstruction_fid:.2f}`). A target is "not measured" only where quality.json lacks an inpainting
row it names (a composite not asked for), or where a name it lists in `measured_elsewhere` was not
given as an extra number (that measurement was not run); any other name that is not a number is an error.
"""

from __future__ import annotations

import operator
import string
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace

BASELINE_LABELS = {"grey": "grey holes (the masked input)", "harmonic": "harmonic fill (learns nothing)"}
README_COMPOSITES = ("off", "hard", "seamless")
OPERATORS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge}
MISSING = "–"
DECODING_ROWS = ("oracle_", "one_step_", "best_")  # quality.json's rows per --composite (bench/quality.py)
NOT_MEASURED = object()  # a target's `measured_elsewhere` name that no extra number gave
PASTE_WORDS = {"off": "`off` scores the whole decoded image, the lab's protocol",
               "hard": "`hard` pastes the decoded pixels into the holes as they are",
               "feather": "`feather` blends the decoded pixels in, ramping over a few pixels inside each hole",
               "seamless": "`seamless` pastes the decoded pixels by Poisson cloning"}  # maskgit.decoding's composites


TRAINING_NUMBERS = ("epoch", "step", "codebook_usage", "epoch_seconds", "fid_images")  # with every val_* metric:
# the numbers of a training checkpoint's epoch that a shipped meta keeps, and the validation images val_recon_fid
# was measured on (an allowlist: options a training script records beside them, such as gpu_train's, stay out)
# what shipped_meta reads of each stage's checkpoint meta besides its numbers
REQUIRED_STAGE_META = {"vqgan": ("train_config",), "transformer": ("data_hash", "preset", "train_config")}


def shipped_meta(name: str, data: str, vqgan_meta: Mapping, transformer_meta: Mapping) -> dict:
    """A shipped model's config meta, in the form the shipped cards read: its name, the data sentence,
    the preset, each stage's last numbers (`vqgan_training`, `transformer_training`) and training
    config, from the meta of the stage-1 checkpoint and of the stage-2 checkpoint shipped. A ValueError
    names the stage whose meta lacks what bench train records (a checkpoint from elsewhere)."""
    for stage, meta in (("vqgan", vqgan_meta), ("transformer", transformer_meta)):
        missing = [key for key in REQUIRED_STAGE_META[stage] if key not in meta]
        if missing:
            raise ValueError(f"the {stage} checkpoint's meta has no {', '.join(missing)} (bench train records it)")

    def numbers_of(meta: Mapping) -> dict:
        return {key: value for key, value in meta.items() if key in TRAINING_NUMBERS or key.startswith("val_")}

    return {"name": name, "data": data, "data_hash": transformer_meta["data_hash"],
            "preset": transformer_meta["preset"],
            "vqgan_training": numbers_of(vqgan_meta), "transformer_training": numbers_of(transformer_meta),
            "vqgan_train_config": dict(vqgan_meta["train_config"]),
            "transformer_train_config": dict(transformer_meta["train_config"])}


def decoding_label(name: str, row: Mapping) -> str:
    """The card's words for a decoding row of quality.json (`oracle_hard`, `one_step_off`, `best_seamless`)."""
    kind, composite = name.rsplit("_", 1)
    paste = f"`composite = {composite}`"
    if kind == "oracle":
        return f"oracle: the ground truth's own tokens, {paste}"
    if kind == "one_step":
        return f"one-step decoding (T = 1), {paste}"
    settings = row["settings"]
    temperature = settings["sampling_temperature"]
    sampling = (", argmax" if not settings["sampling"]
                else "" if temperature == 1.0 else f", sampling temperature {temperature:g}")
    step = "best step" if settings["sweet_spot"] == "auto" else "step"
    return (f"{settings['schedule']}, T = {settings['steps']}, choice temperature {settings['choice_temperature']:g}"
            f"{sampling}, {step} {row['best_step']}, {paste}")


def inpainting_table(quality: Mapping) -> list[str]:
    """Method | FID | KID, the reference fills first, then each composite's rows in quality.json's order."""
    lines = ["| method | FID | KID |", "| --- | --- | --- |"]
    for name, row in quality["inpainting"].items():
        label = BASELINE_LABELS.get(name) or decoding_label(name, row)
        lines.append(f"| {label} | {row['fid']:.2f} | {row['kid']:.4f} |")
    return lines


def tokenizer_table(quality: Mapping, config: Mapping) -> list[str]:
    """Quantity | value: the tokenizer's numbers and the transformer's accuracies (validation from the
    shipped config's training meta, where it has one)."""
    codes = config["vqgan"]["num_codebook_vectors"]
    lines = ["| quantity | value |", "| --- | --- |",
             f"| VQGAN reconstruction PSNR (test ground truth) | {quality['reconstruction_psnr']:.2f} dB |",
             f"| VQGAN reconstruction FID | {quality['reconstruction_fid']:.2f} |",
             f"| codebook usage (test ground truth) | {100 * quality['codebook_usage']:.1f}% of {codes} codes |"]
    meta = config.get("meta", {})
    validation = meta.get("transformer_training", {}).get("val_masked_accuracy")
    if validation is not None:
        holes = meta.get("transformer_train_config", {}).get("hole_masks", 0.0)
        masks = "random cosine and hole-shaped masks" if holes else "random cosine masks"
        lines.append(f"| validation masked-token accuracy ({masks}) | {100 * validation:.1f}% |")
    lines.append(f"| masked-token accuracy, one shot on the real hole masks | "
                 f"{100 * quality['masked_token_accuracy']:.1f}% |")
    return lines


def pastes_explained(rows: Mapping) -> str:
    """The sentence before the inpainting table: what each paste among quality.json's decoding rows
    does, in their order, and what the oracle rows are where there are any (no words for rows absent)."""
    composites = dict.fromkeys(name.rsplit("_", 1)[1] for name in rows if name.startswith(DECODING_ROWS))
    words = [PASTE_WORDS.get(composite, f"`{composite}`") for composite in composites]
    if any(name.startswith("oracle_") for name in rows):
        words.append("the oracle rows decode the ground truth's own tokens: the best any transformer could score "
                     "with this tokenizer")
    return f"Inpainting FID ({'; '.join(words)}):" if words else "Inpainting FID:"


def measured_section(quality: Mapping, config: Mapping) -> str:
    """The body of a card's "Measured" section."""
    intro = (f"Test set {quality['data']}; FID protocol `{quality['protocol']}` (compare rows, not with other "
             f"test-set sizes); also in `quality.json`:")
    return "\n".join([intro, "", *tokenizer_table(quality, config), "", pastes_explained(quality["inpainting"]), "",
                      *inpainting_table(quality)]) + "\n"


def readme_header(quality: Mapping, composites: Sequence[str] = README_COMPOSITES) -> list[str]:
    """The README table's header, its multi-step column named by the T of quality.json's decoding rows
    (a ValueError where it has none)."""
    steps = next((row["settings"]["steps"] for name, row in quality["inpainting"].items() if name.startswith("best_")),
                 None)
    if steps is None:
        raise ValueError("no best_* row (multi-step decoding) to name the README table's T column by")
    pastes = " / ".join(composites)
    return [f"| model, test images | reconstruction FID (PSNR) | grey holes | harmonic fill | one step, {pastes} | "
            f"T = {steps}, {pastes} |", "| --- | --- | --- | --- | --- | --- |"]


def readme_row(label: str, quality: Mapping, composites: Sequence[str] = README_COMPOSITES) -> str:
    """The model's row of the README table: inpainting FIDs, the lowest in bold; a composite the
    model was not measured with shows as a dash."""
    rows = quality["inpainting"]
    fids = [rows[name]["fid"] for name in ("grey", "harmonic")]
    fids += [rows[f"{kind}_{c}"]["fid"] for kind in ("one_step", "best") for c in composites if f"{kind}_{c}" in rows]
    lowest = min(fids)

    def cell(name: str) -> str:
        if name not in rows:
            return MISSING
        text = f"{rows[name]['fid']:.2f}"
        return f"**{text}**" if rows[name]["fid"] == lowest else text

    pasted = [" / ".join(cell(f"{kind}_{c}") for c in composites) for kind in ("one_step", "best")]
    recon = f"{quality['reconstruction_fid']:.2f} ({quality['reconstruction_psnr']:.2f} dB)"
    return f"| {label} | {recon} | {cell('grey')} | {cell('harmonic')} | {pasted[0]} | {pasted[1]} |"


def numbers(quality: Mapping, extra: Mapping[str, float]) -> SimpleNamespace:
    """quality.json and the extra numbers as attributes, for names with dots and format strings."""
    def namespace(value):
        return SimpleNamespace(**{k: namespace(v) for k, v in value.items()}) if isinstance(value, Mapping) else value

    return namespace({**quality, **extra})


def lookup(names: SimpleNamespace, name: str | float) -> float | None:
    """A number by name, or the number itself; None for a decoding row of `inpainting` that quality.json
    lacks (a composite not measured). A ValueError for a name that is in neither quality.json nor the
    extra numbers, or that names no number (a typo must not pass as "not measured")."""
    if isinstance(name, int | float) and not isinstance(name, bool):
        return float(name)
    parts = str(name).split(".")
    if (len(parts) == 3 and parts[0] == "inpainting" and parts[1].startswith(DECODING_ROWS)
            and not hasattr(getattr(names, "inpainting", None), parts[1])):
        return None
    value = names
    for part in parts:
        value = getattr(value, part, None)
    if value is NOT_MEASURED:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name!r} names no number in quality.json or the extra numbers")
    return float(value)


def read_targets(path: Path) -> list[dict]:
    """The `[[target]]` tables of a targets file; a malformed one is a ValueError naming the file."""
    try:
        targets = tomllib.loads(Path(path).read_text())["target"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ValueError(f"{path}: not a targets file with [[target]] tables ({exc})") from None
    for target in targets:
        missing = {"quantity", "old", "value", "op", "limit"} - set(target)
        if missing or target["op"] not in OPERATORS:
            raise ValueError(f"{path}: target {target.get('quantity', '?')!r} needs quantity, old, value, limit and "
                             f"op ({', '.join(OPERATORS)}); missing {sorted(missing)}")
    return targets


def filled_in(template: str, names: SimpleNamespace) -> str:
    """A format string over the numbers' names; a dash where one of them was not measured. Its names
    are looked up first, so an unknown one is lookup's ValueError; a bad format spec is one too."""
    fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    if any(lookup(names, field) is None for field in fields):
        return MISSING
    return template.format_map(vars(names))


def target_result(target: Mapping, names: SimpleNamespace) -> dict:
    """One target against the numbers: measured value, the limit it had to meet, met (None: not measured).
    A ValueError names the target whose names, limit or format strings are wrong."""
    absent = {name: NOT_MEASURED for name in target.get("measured_elsewhere", []) if not hasattr(names, name)}
    try:
        return _judged(target, SimpleNamespace(**vars(names), **absent))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"target {target['quantity']!r}: {exc}") from None


def _judged(target: Mapping, names: SimpleNamespace) -> dict:
    value, limit = lookup(names, target["value"]), lookup(names, target["limit"])
    limit = None if limit is None else limit * target.get("factor", 1)
    met = None if value is None or limit is None else OPERATORS[target["op"]](value, limit)
    default_target = MISSING if limit is None else f"{target['op']} {limit:g}"
    return {"quantity": target["quantity"], "old": target["old"], "value": value, "limit": limit, "met": met,
            "measured": MISSING if value is None else filled_in(target.get("shown", f"{value:.2f}"), names),
            "target": filled_in(target.get("target", default_target), names),
            "bounded_by": filled_in(target.get("bounded_by", ""), names)}


def targets_table(results: Sequence[Mapping]) -> list[str]:
    """The targets as the card and README show them: each row's verdict in words, an unmet one in bold."""
    verdict = {True: "met", False: "**not met**", None: "not measured"}
    lines = ["| quantity | old | target | measured | verdict | bounded by |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['quantity']} | {r['old']} | {r['target']} | {r['measured']} | {verdict[r['met']]} | "
              f"{r['bounded_by']} |" for r in results]
    return lines
