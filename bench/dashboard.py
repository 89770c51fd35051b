"""`bench dashboard`: optuna-dashboard on the study storage, to watch studies while they run."""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError

INSTALL_HINT = "pip install 'maskgit-bench[dashboard]'"


def serve_dashboard(storage_url: str, host: str, port: int) -> None:
    """Serve optuna-dashboard until Ctrl-C. It is an optional extra: the sweeps do not need it."""
    try:
        import optuna_dashboard
    except ImportError:
        raise BenchError(f"bench dashboard needs optuna-dashboard: {INSTALL_HINT}") from None
    optuna_dashboard.run_server(recorded_storage(storage_url), host=host, port=port)


def recorded_storage(storage_url: str):
    """The storage of `bench sweep`'s studies. A journal file that does not exist is a typo, not a
    new, empty storage (opening one would create it)."""
    from bench.storage import open_storage

    if "://" not in storage_url and not Path(storage_url).expanduser().is_file():
        raise BenchError(f"--storage {storage_url}: no such journal file (run `bench sweep` first)")
    return open_storage(storage_url)
