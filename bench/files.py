"""Where the harness keeps what it generates, how it names data and model folders in what it
records, and how it writes files and folders so that no reader ever sees half of one (several
worker processes share the caches)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from bench.errors import BenchError


def cache_home() -> Path:
    """Where generated data is cached: $MASKGIT_BENCH_HOME, else ~/.cache/maskgit-bench."""
    return Path(os.environ.get("MASKGIT_BENCH_HOME") or Path.home() / ".cache" / "maskgit-bench")


def portable_name(folder: str | Path) -> str:
    """A data folder's name as recorded and committed beside its content hash, the same on every
    machine: the last two components of its path (`/work/data/catfaces/test` -> `catfaces/test`; the
    embedded default's test set is `toyfaces-v3/test`). Give it the absolute path of a local folder."""
    return "/".join(Path(folder).parts[-2:]).lstrip("/")


def checkpoint_params(spec: str) -> dict[str, str]:
    """A --checkpoint as recorded. `checkpoint`: a shipped model's name, or a folder's last two path
    components (`runs/toy-t8`), the same on every machine; `checkpoint_path`: where it lies on this
    machine (resolved), or the shipped name."""
    checkpoint = Path(spec)
    if not checkpoint.exists():  # a shipped name (anything else failed to load before a run exists)
        return {"checkpoint": spec, "checkpoint_path": spec}
    return {"checkpoint": portable_name(checkpoint.absolute()), "checkpoint_path": str(checkpoint.resolve())}


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write via a temporary file in the same folder, so readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as file:
        try:
            write(file)
        except BaseException:
            os.unlink(file.name)
            raise
    os.replace(file.name, path)


@contextmanager
def staged_folder(out: Path, overwrite: bool) -> Iterator[Path]:
    """A temporary sibling of OUT, renamed into place at the end: a crash leaves no half folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
    try:
        yield staging
        if overwrite and out.is_dir():
            shutil.rmtree(out)
        try:
            staging.rename(out)  # replaces an empty folder, fails on a non-empty one
        except OSError as exc:
            raise BenchError(f"{out}: could not move the finished build into place "
                             f"({exc.strerror}); another build may have finished first") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
