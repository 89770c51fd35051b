"""Print a shipped model's generated markdown (bench/model_card.py): the model card's "Measured" tables,
its README row and, with --targets, the targets table, whose rows --write-targets also records in
quality.json (under `targets`). For maintainers shipping a model; nothing is computed here but
what quality.json and config.json hold.

    python scripts/model_card.py --model maskgit/pretrained/catfaces --label '`catfaces`, all 747 real' \
        --targets maskgit/pretrained/catfaces/targets.toml --extra grid_sd=3.4 --extra seed_sd=1.1 --write-targets
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.files import atomic_write
from bench.model_card import (measured_section, numbers, read_targets, readme_header, readme_row, target_result,
                              targets_table)


def extra_number(text: str) -> tuple[str, float]:
    name, _, value = text.partition("=")
    try:
        return name.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected NAME=NUMBER, got '{text}'") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="folder with quality.json and config.json")
    parser.add_argument("--label", required=True, help="the README row's first cell")
    parser.add_argument("--targets", type=Path, help="a targets TOML file (bench/model_card.py)")
    parser.add_argument("--extra", type=extra_number, action="append", default=[],
                        help="NAME=NUMBER measured elsewhere, for the targets (repeatable)")
    parser.add_argument("--write-targets", action="store_true", help="record the targets' rows in quality.json")
    args = parser.parse_args(argv)
    quality_file, config_file = args.model / "quality.json", args.model / "config.json"
    try:
        quality = json.loads(quality_file.read_text())
        config = json.loads(config_file.read_text())
        targets = read_targets(args.targets) if args.targets else []
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        print(f"model_card: {exc}", file=sys.stderr)
        return 2
    if quality.get("weights_sha256") != config.get("weights_sha256"):  # measured on other weights: a stale card
        print(f"model_card: {quality_file} was measured on the weights {quality.get('weights_sha256')}, not on "
              f"{config_file}'s {config.get('weights_sha256')} (rerun bench evaluate --out)", file=sys.stderr)
        return 2
    quality.pop("targets", None)  # rows of an earlier run are recomputed, never judged against
    try:
        results = [target_result(target, numbers(quality, dict(args.extra))) for target in targets]
    except ValueError as exc:
        print(f"model_card: {args.targets}: {exc}", file=sys.stderr)
        return 2
    try:
        readme = [*readme_header(quality), readme_row(args.label, quality)]
    except ValueError as exc:
        print(f"model_card: {quality_file}: {exc}", file=sys.stderr)
        return 2
    print("## Measured\n\n" + measured_section(quality, config))
    print("## README row\n\n" + "\n".join(readme) + "\n")
    if results:
        print("## Targets\n\n" + "\n".join(targets_table(results)))
    if args.write_targets and results:
        text = json.dumps({**quality, "targets": results}, indent=2) + "\n"
        atomic_write(quality_file, lambda file: file.write(text.encode()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
