"""maskgit-bench: the experiment harness (data, FID, trials, studies, tracking, reports)."""

__version__ = "0.1.0"
