"""Pixel types: the value of full white in each, which every reader of decoded images divides by."""

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

WHITE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(np.float32): 1.0, np.dtype(np.float64): 1.0}


def white_level(dtype: np.dtype) -> float:
    """What [0, 1] is scaled by in this pixel type (either byte order)."""
    native = np.dtype(dtype).newbyteorder("=")
    if native not in WHITE:
        raise ValueError(f"unsupported pixel type {dtype}; use uint8, uint16 or float")
    return WHITE[native]


# the file endings read as images, by the job's listing and by training's
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".mpo", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] (clipped) to 8-bit, rounded half up: the one rounding every 8-bit output uses."""
    return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


def to_tensor(arr: np.ndarray) -> "torch.Tensor":
    """HxWx3 uint8 -> (3, H, W) float in [0, 1]."""
    import torch  # pixels stays importable without torch (the pipeline's decoders use it)

    return torch.from_numpy(np.array(arr, copy=True)).permute(2, 0, 1).float() / 255
