"""MaskGIT in plain PyTorch: VQGAN tokenizer, bidirectional transformer, mask schedules,
the iterative inpainting decoder, checkpoints and training loops.

Nothing here imports mlflow, optuna or typer; the harness in `bench/` builds on this package.
"""

__version__ = "0.1.0"
