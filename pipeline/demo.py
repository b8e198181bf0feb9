"""`imagemend demo`: scikit-image's bundled photos, damaged on the fly, restored by the `run` job.

The photos ship inside scikit-image (no download) and the damage is the project's own seeded
degradation model (model/damage/degrade.py), so every machine builds the same inputs. They are written as
loose files under <output>/input and restored into <output>/restored by exactly the job that
`imagemend run` starts, with the in-process runner unless Beam flags say otherwise.
"""

import argparse
import io

import numpy as np
from PIL import Image

from imagemend.model.damage.degrade import damaged, fixed_params

from . import job, options
from .storage import atomic_write, filesystem, join, to_uri

PHOTOS = (  # skimage.data name, file written, damage (None: randomly sampled, seeded)
    ("astronaut", "astronaut.jpg", {"noise_sigma": 25.0}),
    ("chelsea", "chelsea.jpg", {"blur": ("gaussian", 1.6), "noise_sigma": 4.0}),
    ("coffee", "coffee.png", {"cast_gains": (1.25, 1.0, 0.7)}),
    ("rocket", "rocket.jpg", {"exposure_ev": -1.3, "noise_sigma": 6.0}),
    ("camera", "camera.png", {"contrast": 0.55, "gamma": 1.2, "noise_sigma": 8.0}),  # greyscale
    ("hubble_deep_field", "hubble_deep_field.jpg", None),
    ("logo", "logo.png", {"noise_sigma": 15.0}),  # RGBA: the alpha channel travels untouched
)
SEED = 20240611


def damaged_photo(name: str, damage: dict | None, seed: int, max_side: int | None) -> Image.Image:
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)())
    if max_side and max(img.size) > max_side:
        img.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    alpha = img.getchannel("A") if img.mode == "RGBA" else None
    params = fixed_params(1, **damage) if damage else None
    out = Image.fromarray(damaged([np.array(img.convert("RGB"))], params, seed)[0])
    if img.mode == "L":
        return out.convert("L")
    if alpha is not None:
        out.putalpha(alpha)
    return out


def write_inputs(url: str, storage_options: dict, max_side: int | None) -> list[str]:
    fs, root = filesystem(url, storage_options)
    written = []
    for i, (name, file, damage) in enumerate(PHOTOS):
        img = damaged_photo(name, damage, SEED + i, max_side)
        buf = io.BytesIO()
        img.save(buf, format="JPEG" if file.endswith(".jpg") else "PNG", quality=95)
        path = join(root, file)
        atomic_write(fs, path, buf.getvalue())
        written.append(to_uri(fs, path))
    return written


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", default="out/demo", help="folder or fsspec URL for input/ and restored/")
    p.add_argument("--max-side", type=int, help="shrink the photos to at most this many pixels a side")
    options.add_processing_arguments(p)


def main(args: argparse.Namespace) -> dict:
    inputs, restored = join(args.output, "input"), join(args.output, "restored")
    opts = options.from_args(args, input=inputs, output=restored, overwrite=True)
    written = write_inputs(inputs, opts.input.storage, args.max_side)
    print(f"imagemend demo: {len(written)} damaged photos from scikit-image in {inputs}")
    summary = job.run(opts, options.beam_args(args.beam_argv, opts.work.workers))
    print(job.report(summary))
    print(per_image(restored, opts.output.storage))
    return summary


def per_image(output: str, storage_options: dict) -> str:
    """One line per photo from the metrics files: what ran, and the noise and cast measures before -> after."""
    import pyarrow.parquet as pq

    from imagemend.model.core.tasks import TASKS

    fs, root = filesystem(output, storage_options)
    rows = []
    for path in sorted(fs.find(join(root, "metrics"))):
        with fs.open(path, "rb") as f:
            rows += pq.read_table(f).to_pylist()
    lines = [f"{'image':24} {'status':9} {'applied':34} {'noise sigma':>15} {'cast':>13}"]
    for r in sorted(rows, key=lambda r: r["key"]):
        applied = ",".join(t for t in TASKS if r[f"{t}_applied"]) or "-"

        def arrow(before, after, fmt):
            return "-" if before is None else f"{before:{fmt}} -> {after:{fmt}}"

        lines.append(f"{r['key']:24} {r['status']:9} {applied:34} "
                     f"{arrow(r['denoise_measure_before'], r['denoise_measure_after'], '5.1f'):>15} "
                     f"{arrow(r['cast_measure_before'], r['cast_measure_after'], '.3f'):>13}")
    return "\n".join(lines)
