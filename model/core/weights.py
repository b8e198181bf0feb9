"""Weights on disk: safetensors with a checksum, never pickles.

safetensors cannot run code on load; the checksum in its metadata catches a file that was
altered or truncated after it was written, so a damaged file fails loudly instead of restoring
photos badly. It covers the tensors and the rest of the metadata (config, and the info that holds
the calibrated thresholds), so two files that restore differently never share a checksum.
"""

import hashlib
import io
import json
from pathlib import Path
import struct
from typing import BinaryIO

import fsspec
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
import torch

from .config import NetConfig
from .net import ImagemendNet
from .noise_level import NoiseReader

WEIGHTS_DIR = Path(__file__).parents[1] / "weights"  # the shipped files, beside the packages
DEFAULT_WEIGHTS = WEIGHTS_DIR / "imagemend-base.safetensors"


class WeightsError(ValueError):
    pass


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode() + str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def file_digest(tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> str:
    """sha256 over the tensors and every metadata field but the checksum itself."""
    h = hashlib.sha256(tensors_digest(tensors).encode())
    for key in sorted(k for k in meta if k != "sha256"):
        h.update(f"\0{key}\0{meta[key]}".encode())
    return h.hexdigest()


def save_weights(path: str | Path, net: ImagemendNet, info: dict | None = None) -> str:
    """Write net's weights, its config and free-form info; returns the checksum."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    meta = {"config": json.dumps(net.cfg.__dict__), "info": json.dumps(info or {})}
    digest = meta["sha256"] = file_digest(tensors, meta)
    data = st_save(tensors, metadata=meta)
    with fsspec.open(str(path), "wb") as f:
        f.write(data)
    return digest


def _metadata(f: BinaryIO) -> dict:
    """The metadata in a safetensors header: 8 bytes of length, then JSON."""
    (n,) = struct.unpack("<Q", f.read(8))
    return json.loads(f.read(n)).get("__metadata__", {})


def recorded_digest(path: str | Path) -> str:
    """The sha256 a weights file records, from its header alone: it names the weights without
    loading them (load_weights checks that the tensors still match it)."""
    return _header(path)["sha256"]


def recorded_info(path: str | Path) -> dict:
    """The info a weights file records (calibration, stages), from its header alone."""
    return json.loads(_header(path).get("info", "{}"))


def _header(path: str | Path) -> dict:
    try:
        with fsspec.open(str(path), "rb") as f:
            meta = _metadata(f)
        if "sha256" not in meta:  # every imagemend weights file records one
            raise KeyError("sha256")
        return meta
    except Exception as e:
        raise WeightsError(f"{path} is not a readable imagemend weights file ({type(e).__name__}: {e})") from e


def _read(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Tensors and metadata of a weights file, checked against its checksum."""
    with fsspec.open(str(path), "rb") as f:
        data = f.read()
    try:
        meta = _metadata(io.BytesIO(data))
        tensors = st_load(data)
    except Exception as e:  # safetensors raises several types for a foreign or damaged file
        raise WeightsError(f"{path} is not a valid safetensors weights file ({type(e).__name__}: {e})") from e
    if meta.get("sha256") != file_digest(tensors, meta):
        raise WeightsError(f"{path}: checksum mismatch, the weights were altered after they were written")
    return tensors, meta


def load_local(path: str | Path) -> dict[str, torch.Tensor]:
    """The local U-Net's tensors of a weights file, whatever its global branch."""
    return {k.removeprefix("local."): v for k, v in _read(path)[0].items() if k.startswith("local.")}


def pick_device(name: str | None) -> torch.device:
    """"auto" (or None): CUDA where there is one, else the CPU; a CUDA device asked for without CUDA is refused."""
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but CUDA is not available")
    return torch.device(name)


def load_weights(path: str | Path = DEFAULT_WEIGHTS) -> tuple[ImagemendNet, dict]:
    """The network and its metadata (config, sha256, info); rejects pickles and altered files."""
    tensors, meta = _read(path)
    cfg = json.loads(meta["config"])
    net = ImagemendNet(NetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.items()}))
    if any(k.startswith("noise_reader.") for k in tensors):
        net.noise_reader = NoiseReader()
    net.load_state_dict(tensors)
    return net.eval(), {"sha256": meta["sha256"], "info": json.loads(meta.get("info", "{}")), "config": cfg}
