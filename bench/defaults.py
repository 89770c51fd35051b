"""The defaults the command line shows and the library uses, and the names of what runs record that
one module writes and others read, in one place that imports nothing heavy (the CLI reads them to
build its help)."""

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow store, beside the working directory
DEFAULT_STORAGE = "bench-studies.journal"  # Optuna storage of the studies: a journal file
DEFAULT_CHECKPOINT = "toyfaces"  # the shipped model of the embedded benchmark
DEFAULT_PRESET = "small"  # bench train's model size (maskgit.presets)
PRESET_USES = {"lab": "the lab's", "small": "2 CPU cores", "medium": "a GPU", "toy": "the embedded toy faces, 1 core",
               "tiny": "tests"}  # maskgit.presets.PRESETS' names in its order, for --preset's help (that module
# imports torch, which the CLI's help must not wait for; tests/test_cli.py fails when the two differ)
DEFAULT_LIMIT = 128  # embedded benchmark only: FIDs far less biased than at 32, yet the default sweep
DEFAULT_STEPS = (4, 8)  # (its T values, when no --steps) finishes in under 5 minutes on 2 CPU cores (README)
DEFAULT_SWEEP_COMPOSITE = "seamless"  # the paste the shipped models are made for (their model cards)
DEFAULT_PROTOCOL = "tf"  # FID resize protocol (bench.fid.PROTOCOLS)
CPU_BATCH_SIZE = 8  # beyond ~8 images, batches fall out of the CPU caches (benchmarks/batch_speed.py)
CUDA_BATCH_SIZE = 256

CONFIRMATION_TAG = "confirmation"  # "true" on confirmation runs (docs/architecture.md#confirmation-runs)
CONFIRMS_TAG = "confirms"  # a confirmation run's confirmed trial number
UNCERTAINTY_FILE = "uncertainty.npz"  # a trial run's bootstrap replicates (docs/architecture.md#uncertainty)
BASELINES_FILE = "baselines.npz"  # a sweep parent run's reference-fill scores (docs/architecture.md#fid)
