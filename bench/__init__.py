"""maskgit-bench: the experiment harness (data, FID, trials, studies, tracking, reports)."""

from bench.offline import disable_telemetry

__version__ = "0.1.0"

disable_telemetry()


def package_version() -> str:
    """The installed distribution's version, else (a source tree run without installing) pyproject.toml's."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("maskgit-bench")
    except PackageNotFoundError:
        import tomllib
        from pathlib import Path

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        return tomllib.loads(pyproject.read_text())["project"]["version"]
