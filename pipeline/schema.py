"""Explicit pyarrow schemas of the metrics and errors outputs; each column carries its documentation.

The same descriptions render the tables in docs/ARCHITECTURE.md (a test keeps them in step), so the
files and their documentation cannot drift apart. Per task there is the model's own estimate and a
weight-free measure (pipeline/measures.py), each before and after restoration.
"""

import argparse

import pyarrow as pa

from imagemend.model.core.groups import CLEAN
from imagemend.model.core.restore import REASONS
from imagemend.model.core.tasks import REGISTRY, TONE_TASKS

# task -> (weight-free measure key, what the measure is); the model's estimate of each is model/core/tasks.py's
MEASURES = {
    "denoise": ("noise_sigma", "Immerkaer noise sigma, 8-bit steps, mean over colour channels; null under 3x3 pixels"),
    "deblur": ("laplacian_var", "variance of the Laplacian of luma, 8-bit units^2 (lower is blurrier); null under 3x3 "
               "pixels"),
    "cast": ("cast", "grey-world cast: max |log(channel mean / luminance)| in linear light; null for greyscale and "
             "all-black images"),
    "exposure": ("luminance", "mean luma in [0, 1]"),
    "contrast": ("rms_contrast", "RMS contrast: std of luma in [0, 1]"),
}


def column(name: str, typ: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": doc})


def _task_fields() -> list[pa.Field]:
    fields = []
    for task in REGISTRY:
        t, est, est_unit, (_, meas_unit) = task.name, task.estimate, task.unit, MEASURES[task.name]
        fields += [
            column(f"{t}_applied", pa.bool_(), f"whether {t} ran (it is skipped when not asked for or when the "
               "estimated severity is below its threshold)", False),
            column(f"{t}_reason", pa.string(), f"why {t} ran or not: {', '.join(REASONS)}"
                   + (f"; for a tone task in a group of photos that was tested, {CLEAN} (group: "
                      "its group's reading corrected it, pipeline/groups.py)" if t in TONE_TASKS else ""), False),
            column(f"{t}_strength", pa.float64(), f"strength {t} ran at (0 when not applied)", False),
            column(f"{t}_estimate_before", pa.float64(), f"model estimate `{est}` of the input: {est_unit}", False),
            column(f"{t}_estimate_after", pa.float64(), f"model estimate `{est}` of the output", False),
            column(f"{t}_measure_before", pa.float64(), f"weight-free measure of the input: {meas_unit}"),
            column(f"{t}_measure_after", pa.float64(), "the same measure of the output"),
        ]
    return fields


KEY_BYTES = ("the key's raw bytes where the input name is not valid UTF-8 (key, URIs and output paths show each such "
             "byte as %XX); null for a valid UTF-8 name")

METRICS_SCHEMA = pa.schema([
    column("run_id", pa.string(), "identifier of the run that wrote the row", False),
    column("shard", pa.string(), "input shard id (tar/parquet path without suffix, or dir/part-NNNNN for files)",
           False),
    column("index", pa.int64(), "position of the record in its shard", False),
    column("key", pa.string(), "record key: file path under the input prefix, WebDataset sample key, or Parquet key",
       False),
    column("key_bytes", pa.binary(), KEY_BYTES),
    column("source_uri", pa.string(), "URI of the input file; for tar and Parquet records, shard URI#key", False),
    column("output_uri", pa.string(), "URI of the restored image; for tar and Parquet records, shard URI#member/key",
       False),
    column("width", pa.int32(), "width in pixels, after EXIF orientation", False),
    column("height", pa.int32(), "height in pixels, after EXIF orientation", False),
    column("mode", pa.string(), "input pixel mode as Pillow names it (RGB, L, LA, RGBA, P, CMYK, I;16, RGB;16 ...)",
       False),
    column("format", pa.string(), "input image format (JPEG, PNG, WEBP, TIFF, BMP, GIF ...)", False),
    column("output_format", pa.string(), "format of the written image", False),
    column("status", pa.string(), "restored (at least one task applied) or unchanged (the input bytes are copied when "
       "the format is kept)", False),
    column("group", pa.string(), "the photo's group of photos under --group-by (pipeline/groups.py; its decision "
           "is the row of groups/groups.parquet with this key); null with --group-by none or where the photo has no "
           "value (no EXIF camera model or date, a null Parquet cell)"),
    *_task_fields(),
    column("clipped_high_before", pa.float64(), "share of input pixels whose brightest channel is >= 0.995", False),
    column("clipped_high_after", pa.float64(), "the same share in the output", False),
    column("clipped_low_before", pa.float64(), "share of input pixels whose brightest channel is <= 0.005", False),
    column("clipped_low_after", pa.float64(), "the same share in the output", False),
    column("estimates_before", pa.map_(pa.string(), pa.float64()),
       "every severity the model estimated on the input (noise_sigma, noise_sigma_cap, noise_rms, noise_level_0..3, "
       "blur, edge_blur, edge_anisotropy, cast, cast_r/g/b, exposure_ev, contrast, gamma, contrast_curve); "
       "noise_sigma_cap only where it was read (not in a JPEG, nor for a noise reading under the denoise "
       "threshold or of 15 and up); noise_rms is the camera-noise reader's RMS (8-bit) and noise_level_0..3 "
       "its level in each quarter of the brightness range (left out where no patch is that bright)", False),
    column("estimates_after", pa.map_(pa.string(), pa.float64()), "the same estimates on the output; edge_blur and "
       "edge_anisotropy only where deblur ran (the dearest reading, left out elsewhere)", False),
    column("bytes_in", pa.int64(), "size of the input image", False),
    column("bytes_out", pa.int64(), "size of the written image", False),
    column("decode_s", pa.float64(), "seconds spent decoding", False),
    column("restore_s", pa.float64(), "seconds of model time: the image's pixel share of its batch", False),
    column("measure_s", pa.float64(), "seconds spent on the weight-free measures, before and after", False),
    column("encode_s", pa.float64(), "seconds spent encoding", False),
    column("model", pa.string(), "name of the weights file", False),
    column("weights_sha256", pa.string(), "checksum of the weights", False),
    column("device", pa.string(), "device the model ran on (cpu, cuda:0)", False),
    column("worker", pa.string(), "host:pid of the worker process", False),
])

ERRORS_SCHEMA = pa.schema([
    column("run_id", pa.string(), "identifier of the run that wrote the row", False),
    column("shard", pa.string(), "input shard id", False),
    column("index", pa.int64(), "position of the record in its shard; null when the rest of a shard was unreadable"),
    column("key", pa.string(), "record key; null when the rest of a shard was unreadable"),
    column("key_bytes", pa.binary(), KEY_BYTES),
    column("source_uri", pa.string(), "URI of the input file, or shard URI#key", False),
    column("stage", pa.string(), "where it failed: read, decode, restore, encode or write; in `imagemend eval` also "
       "reference (the damaged copy could not be made, or the output could not be scored against its clean "
       "photo, e.g. a wrongly sized output)", False),
    column("error_type", pa.string(), "exception class (UnsafeKey, EmptyImage, UnidentifiedImageError, ...)", False),
    column("message", pa.string(), "exception message", False),
    column("retryable", pa.bool_(), "the store, the network or the disk failed, not the record (a read or write "
       "that still failed after --retries, or a permission): its shard is left unfinished and a rerun of the same "
       "command redoes it; false for a record's own failure, which a rerun would repeat", False),
    column("bytes_in", pa.int64(), "size of the record's data, when it was read"),
    column("worker", pa.string(), "host:pid of the worker process", False),
])


def table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=schema)


def markdown(schema: pa.Schema) -> str:
    """The schema as a Markdown table: column, type, nullable, meaning."""
    lines = ["| column | type | null | meaning |", "|---|---|---|---|"]
    for f in schema:
        doc = f.metadata[b"doc"].decode().replace("|", "\\|")
        lines.append(f"| `{f.name}` | {f.type} | {'yes' if f.nullable else 'no'} | {doc} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- the `imagemend schema` command (pipeline/cli.py)

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--eval", action="store_true", help="also the columns `imagemend eval` adds")


def main(args: argparse.Namespace) -> None:
    metrics = METRICS_SCHEMA
    if args.eval:
        from .evaluate import METRICS_SCHEMA as metrics
    for where, s in (("metrics/*.parquet", metrics), ("errors/*.parquet", ERRORS_SCHEMA)):
        print(f"## {where}\n\n{markdown(s)}\n")
