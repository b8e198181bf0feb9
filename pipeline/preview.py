"""`imagemend preview OUTPUT`: a before/after page of a finished run, made from its outputs alone.

It reads the run's metrics, fetches each photo's input and output (loose files, tar members,
Parquet cells, on any fsspec store), and writes `<output>/preview/index.html` with thumbnails
beside it: one static page that opens from the folder with no server, photos sorted by how much
the run changed them, each with the tasks that ran, why the others did not, and the readings.
No model runs: judging a run costs seconds, not another pass.
"""

import argparse
import functools
import html
import io
import json
import posixpath
import tarfile

import fsspec
import numpy as np
from PIL import Image, ImageOps
import pyarrow.parquet as pq

from imagemend.model.core.pixels import IMAGE_SUFFIXES
from imagemend.model.core.tasks import TASKS

from .options import _json
from .sinks import read_tables
from .sources import sample_key

THUMB = 320
READINGS = ("noise_sigma", "noise_rms", "blur", "edge_blur", "exposure_ev", "cast", "contrast_curve")


def read_record(uri: str, storage_options: dict) -> bytes:
    """The image bytes a metrics URI names: a file, or `shard#key` in a tar (its image member) or Parquet."""
    base, _, key = uri.partition("#")
    if not key:
        fs, path = fsspec.core.url_to_fs(base, **storage_options)
        return fs.cat_file(path)
    images = shard_images(base, json.dumps(storage_options, sort_keys=True))
    if key not in images:
        raise KeyError(f"no image for {key!r} in {base}")
    return images[key]


@functools.lru_cache(maxsize=2)  # the metrics rows come shard by shard: each shard is read once, not per record
def shard_images(base: str, storage_options: str) -> dict[str, bytes]:
    """A tar's image members by member name and by sample key (inputs name the sample, outputs the member),
    or a Parquet shard's images by key."""
    fs, path = fsspec.core.url_to_fs(base, **json.loads(storage_options))
    out: dict[str, bytes] = {}
    with fs.open(path, "rb") as f:
        if ".tar" in posixpath.basename(path):
            with tarfile.open(fileobj=f, mode="r|*") as tar:
                for m in tar:
                    if m.isfile() and m.name.lower().endswith(IMAGE_SUFFIXES):
                        out[m.name] = data = tar.extractfile(m).read()
                        out.setdefault(sample_key(m.name)[0], data)
            return out
        for row in pq.read_table(f).to_pylist():
            image = next((v for v in row.values() if isinstance(v, bytes) and v), None)
            if image is not None:
                out[str(row.get("key"))] = image
    return out


def thumbnail(data: bytes) -> Image.Image:
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    img = img.convert("RGB") if img.mode != "RGB" else img
    img.thumbnail((THUMB, THUMB))
    return img


def change(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference of two thumbnails, 8-bit steps: how much the run changed the photo."""
    if a.size != b.size:
        b = b.resize(a.size)
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


def link(uri: str, root_uri: str) -> str:
    """A restored image's address as the page links it: relative where it lies under the output (the
    folder can move or be served), else as the run recorded it (a tar member: its shard)."""
    base = uri.partition("#")[0]
    return "../" + base[len(root_uri) + 1:] if base.startswith(root_uri + "/") else base


def card(row: dict, i: int, delta: float, root_uri: str) -> str:
    ran = [t for t in TASKS if row.get(f"{t}_applied")]
    why = [f"{t}: {row[f'{t}_reason']}" for t in TASKS
           if not row.get(f"{t}_applied") and row.get(f"{t}_reason") not in (None, "not requested")]
    est = dict(row.get("estimates_before") or [])
    readings = ", ".join(f"{k} {est[k]:.2f}" for k in READINGS if k in est)
    full = html.escape(link(row["output_uri"], root_uri))
    return (f'<figure class="card" data-change="{delta:.3f}">'
            f'<div class="pair"><div><img src="thumbs/{i}-before.jpg" alt="before"><span>before</span></div>'
            f'<div><img src="thumbs/{i}-after.jpg" alt="after"><span>after</span></div></div>'
            f'<figcaption><b>{html.escape(row["key"])}</b> ({row["status"]}, changed {delta:.2f})<br>'
            f'ran: {html.escape(", ".join(ran) or "nothing")}'
            + (f'<br>not run: {html.escape("; ".join(why))}' if why else "")
            + f'<br><small>{html.escape(readings)}</small><br><a href="{full}">full size</a></figcaption></figure>')


STYLE = ("body{font-family:sans-serif;margin:1em;background:#fafafa}.grid{display:flex;flex-wrap:wrap;gap:12px}"
         ".card{margin:0;padding:8px;background:#fff;border:1px solid #ddd;width:660px}.pair{display:flex;gap:4px}"
         ".pair div{position:relative}.pair span{position:absolute;left:4px;top:2px;color:#fff;"
         "text-shadow:0 0 3px #000;font-size:12px}.pair img{max-width:320px;display:block}"
         "figcaption{font-size:13px;margin-top:4px}")


def write(output: str, storage_options: dict | None = None, input_storage_options: dict | None = None,
          limit: int = 200) -> str:
    """Write <output>/preview/index.html and its thumbnails; returns the page's URI."""
    shard_images.cache_clear()  # a run rewritten since an earlier preview in this process
    fs, root = fsspec.core.url_to_fs(output, **(storage_options or {}))
    root = root.rstrip("/")
    rows = [r for r in read_tables(fs, root, "metrics") if r["status"] in ("restored", "unchanged")]
    cards, skipped = [], 0
    for i, row in enumerate(rows):
        try:
            before = thumbnail(read_record(row["source_uri"], input_storage_options or storage_options or {}))
            after = thumbnail(read_record(row["output_uri"], storage_options or {}))
        except Exception:  # an input moved since the run: the page says how many it could not show
            skipped += 1
            continue
        cards.append((change(before, after), i, row, before, after))
    cards.sort(key=lambda c: -c[0])
    root_uri = fs.unstrip_protocol(root)
    page_dir = posixpath.join(root, "preview")
    fs.makedirs(posixpath.join(page_dir, "thumbs"), exist_ok=True)  # a no-op on object stores
    for _, i, _, before, after in cards[:limit]:
        for side, img in (("before", before), ("after", after)):
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=88)
            fs.pipe_file(posixpath.join(page_dir, "thumbs", f"{i}-{side}.jpg"), buf.getvalue())
    shown = cards[:limit]
    head = (f"{len(rows)} photos in the run's metrics; {len(shown)} shown, the most changed first"
            + (f"; {skipped} could not be read back" if skipped else ""))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>imagemend preview</title>"
            f"<style>{STYLE}</style></head><body><h1>imagemend: before and after</h1>"
            f"<p>{html.escape(head)}</p>"
            '<div class="grid">' + "".join(card(row, i, d, root_uri) for d, i, row, *_ in shown)
            + "</div></body></html>")
    path = posixpath.join(page_dir, "index.html")
    fs.pipe_file(path, page.encode())
    fs.pipe_file(posixpath.join(page_dir, "preview.json"), json.dumps(
        [{"key": row["key"], "change": round(d, 3)} for d, _, row, *_ in shown]).encode())
    return fs.unstrip_protocol(path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("output", help="the --output of a finished (or partly finished) `imagemend run`")
    p.add_argument("--limit", type=int, default=200, help="photos on the page, the most changed first")
    p.add_argument("--storage-options", type=_json, default={}, help="JSON fsspec options for the output")
    p.add_argument("--input-storage-options", type=_json, default={},
                   help="JSON fsspec options for the inputs, where they differ")


def main(args: argparse.Namespace) -> None:
    print(write(args.output, args.storage_options, args.input_storage_options or None, args.limit))
