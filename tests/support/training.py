"""Training runs small enough for a test: a tiny config and a folder of three photos."""

from dataclasses import replace

from PIL import Image
from skimage import data

from imagemend.model.core.config import TrainConfig

SMALL = replace(TrainConfig(), batch=2, patch=32, global_size=(64, 96), warmup=2, ckpt_every=2, val_every=1000)


def photo_folder(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("astronaut", "chelsea", "coffee"):
        Image.fromarray(getattr(data, name)()[:200, :200]).save(folder / f"{name}.png")
    return folder
