"""`bench sweep` as a worker process of its own, for tests/bench/test_distributed.py.

The real command line, with two test-only hooks taken from the environment:

- SWEEP_WORKER_HOLD=PATH: every trial waits, inside its evaluation, until PATH exists, so that a
  test can act while a trial is RUNNING (kill the worker, stop the tracking server);
- SWEEP_WORKER_MACHINE=NAME: the worker labels its trials as running on machine NAME, so that only
  their heartbeat, not a look at this machine's processes, can tell that the worker died.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import cli
from bench import _sweep_worker, trial


def hold_trials_until(path: Path) -> None:
    evaluate = trial.Evaluator.evaluate

    def held(self, settings, on_step=None, seeds=None):
        while not path.exists():
            time.sleep(0.1)
        return evaluate(self, settings, on_step, seeds)

    trial.Evaluator.evaluate = held


def run_as_machine(name: str) -> None:
    _sweep_worker.worker_label = lambda: f"{name}:{os.getpid()}"


if __name__ == "__main__":
    if os.environ.get("SWEEP_WORKER_HOLD"):
        hold_trials_until(Path(os.environ["SWEEP_WORKER_HOLD"]))
    if os.environ.get("SWEEP_WORKER_MACHINE"):
        run_as_machine(os.environ["SWEEP_WORKER_MACHINE"])
    cli.app(prog_name="bench")
