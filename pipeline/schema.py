"""Explicit pyarrow schemas of the metrics and errors outputs; each column carries its documentation.

The same descriptions render the tables in docs/ARCHITECTURE.md (a test keeps them in step), so the
files and their documentation cannot drift apart. Per task there is the model's own estimate and a
weight-free measure (pipeline/measures.py), each before and after restoration.
"""

import pyarrow as pa

from model.groups import TASKS as GROUP_TASKS
from model.restore import REASONS
from model.tasks import REGISTRY

from .groups import GROUP_REASONS

# task -> (weight-free measure key, what the measure is); the model's estimate of each is model/tasks.py's
MEASURES = {
    "denoise": ("noise_sigma", "Immerkaer noise sigma, 8-bit steps, mean over colour channels; null under 3x3 pixels"),
    "deblur": ("laplacian_var", "variance of the Laplacian of luma, 8-bit units^2 (lower is blurrier); null under 3x3 "
               "pixels"),
    "cast": ("cast", "grey-world cast: max |log(channel mean / luminance)| in linear light; null for greyscale and "
             "all-black images"),
    "exposure": ("luminance", "mean luma in [0, 1]"),
    "contrast": ("rms_contrast", "RMS contrast: std of luma in [0, 1]"),
}


def _f(name: str, typ: pa.DataType, doc: str, nullable: bool = True) -> pa.Field:
    return pa.field(name, typ, nullable=nullable, metadata={"doc": doc})


def _task_fields() -> list[pa.Field]:
    fields = []
    for task in REGISTRY:
        t, est, est_unit, (_, meas_unit) = task.name, task.estimate, task.unit, MEASURES[task.name]
        fields += [
            _f(f"{t}_applied", pa.bool_(), f"whether {t} ran (it is skipped when not asked for or when the "
               "estimated severity is below its threshold)", False),
            _f(f"{t}_reason", pa.string(), f"why {t} ran or not: {', '.join(REASONS)}"
               + (f"; for a tone task in a group of photos that was tested, {', '.join(GROUP_REASONS)} (group: "
                  "its group's reading corrected it, pipeline/groups.py)" if t in GROUP_TASKS else ""), False),
            _f(f"{t}_strength", pa.float64(), f"strength {t} ran at (0 when not applied)", False),
            _f(f"{t}_estimate_before", pa.float64(), f"model estimate `{est}` of the input: {est_unit}", False),
            _f(f"{t}_estimate_after", pa.float64(), f"model estimate `{est}` of the output", False),
            _f(f"{t}_measure_before", pa.float64(), f"weight-free measure of the input: {meas_unit}"),
            _f(f"{t}_measure_after", pa.float64(), "the same measure of the output"),
        ]
    return fields


KEY_BYTES = ("the key's raw bytes where the input name is not valid UTF-8 (key, URIs and output paths show each such "
             "byte as %XX); null for a valid UTF-8 name")

METRICS_SCHEMA = pa.schema([
    _f("run_id", pa.string(), "identifier of the run that wrote the row", False),
    _f("shard", pa.string(), "input shard id (tar/parquet path without suffix, or dir/part-NNNNN for files)", False),
    _f("index", pa.int64(), "position of the record in its shard", False),
    _f("key", pa.string(), "record key: file path under the input prefix, WebDataset sample key, or Parquet key",
       False),
    _f("key_bytes", pa.binary(), KEY_BYTES),
    _f("source_uri", pa.string(), "URI of the input file; for tar and Parquet records, shard URI#key", False),
    _f("output_uri", pa.string(), "URI of the restored image; for tar and Parquet records, shard URI#member/key",
       False),
    _f("width", pa.int32(), "width in pixels, after EXIF orientation", False),
    _f("height", pa.int32(), "height in pixels, after EXIF orientation", False),
    _f("mode", pa.string(), "input pixel mode as Pillow names it (RGB, L, LA, RGBA, P, CMYK, I;16, RGB;16 ...)",
       False),
    _f("format", pa.string(), "input image format (JPEG, PNG, WEBP, TIFF, BMP, GIF ...)", False),
    _f("output_format", pa.string(), "format of the written image", False),
    _f("status", pa.string(), "restored (at least one task applied) or unchanged (the input bytes are copied when "
       "the format is kept)", False),
    _f("group", pa.string(), "the photo's group of photos under --group-by (pipeline/groups.py; its decision "
       "is the row of groups/groups.parquet with this key); null with --group-by none or where the photo has no "
       "value (no EXIF camera model or date, a null Parquet cell)"),
    *_task_fields(),
    _f("clipped_high_before", pa.float64(), "share of input pixels whose brightest channel is >= 0.995", False),
    _f("clipped_high_after", pa.float64(), "the same share in the output", False),
    _f("clipped_low_before", pa.float64(), "share of input pixels whose brightest channel is <= 0.005", False),
    _f("clipped_low_after", pa.float64(), "the same share in the output", False),
    _f("estimates_before", pa.map_(pa.string(), pa.float64()),
       "every severity the model estimated on the input (noise_sigma, noise_sigma_cap, noise_rms, noise_level_0..3, "
       "blur, edge_blur, edge_anisotropy, cast, cast_r/g/b, exposure_ev, contrast, gamma, contrast_curve); "
       "noise_sigma_cap only where it was read (not in a JPEG, nor for a noise reading under the denoise "
       "threshold or of 15 and up); noise_rms is the camera-noise reader's RMS (8-bit) and noise_level_0..3 "
       "its level in each quarter of the brightness range (left out where no patch is that bright)", False),
    _f("estimates_after", pa.map_(pa.string(), pa.float64()), "the same estimates on the output; edge_blur and "
       "edge_anisotropy only where deblur ran (the dearest reading, left out elsewhere)", False),
    _f("bytes_in", pa.int64(), "size of the input image", False),
    _f("bytes_out", pa.int64(), "size of the written image", False),
    _f("decode_s", pa.float64(), "seconds spent decoding", False),
    _f("restore_s", pa.float64(), "seconds of model time: the image's pixel share of its batch", False),
    _f("measure_s", pa.float64(), "seconds spent on the weight-free measures, before and after", False),
    _f("encode_s", pa.float64(), "seconds spent encoding", False),
    _f("model", pa.string(), "name of the weights file", False),
    _f("weights_sha256", pa.string(), "checksum of the weights", False),
    _f("device", pa.string(), "device the model ran on (cpu, cuda:0)", False),
    _f("worker", pa.string(), "host:pid of the worker process", False),
])

# `imagemend eval` only: the full-reference columns, appended to the metrics schema (model/metrics.py)
REFERENCE_FIELDS = [
    _f("case", pa.string(), "case of the suite (model/suites.py) the input was damaged with; the key is "
       "<case>/<clean key>", False),
    _f("task", pa.string(), "what the case exercises: denoise, deblur, cast, exposure, contrast, mixed or clean",
       False),
    _f("reference_uri", pa.string(), "URI of the clean photo the scores compare with (source_uri is it, #case)",
       False),
    _f("psnr_before", pa.float64(), "PSNR of the damaged input against the clean photo, both 8-bit RGB: dB, capped "
       "at 100", False),
    _f("psnr_after", pa.float64(), "PSNR of the written output against the clean photo", False),
    _f("ssim_before", pa.float64(), "SSIM of the damaged input against the clean photo (Wang et al. 2004, as "
       "scikit-image computes it with gaussian_weights=True, sigma=1.5, use_sample_covariance=False)", False),
    _f("ssim_after", pa.float64(), "SSIM of the written output against the clean photo", False),
    _f("ciede2000_before", pa.float64(), "mean CIEDE2000 colour difference of the damaged input from the clean photo",
       False),
    _f("ciede2000_after", pa.float64(), "mean CIEDE2000 colour difference of the written output from the clean photo",
       False),
]
EVAL_METRICS_SCHEMA = pa.schema([*METRICS_SCHEMA, *REFERENCE_FIELDS])

ERRORS_SCHEMA = pa.schema([
    _f("run_id", pa.string(), "identifier of the run that wrote the row", False),
    _f("shard", pa.string(), "input shard id", False),
    _f("index", pa.int64(), "position of the record in its shard; null when the rest of a shard was unreadable"),
    _f("key", pa.string(), "record key; null when the rest of a shard was unreadable"),
    _f("key_bytes", pa.binary(), KEY_BYTES),
    _f("source_uri", pa.string(), "URI of the input file, or shard URI#key", False),
    _f("stage", pa.string(), "where it failed: read, decode, restore, encode or write; in `imagemend eval` also "
       "reference (the damaged copy could not be made, or the output could not be scored against its clean "
       "photo, e.g. a wrongly sized output)", False),
    _f("error_type", pa.string(), "exception class (UnsafeKey, EmptyImage, UnidentifiedImageError, ...)", False),
    _f("message", pa.string(), "exception message", False),
    _f("retryable", pa.bool_(), "the store, the network or the disk failed, not the record (a read or write "
       "that still failed after --retries, or a permission): its shard is left unfinished and a rerun of the same "
       "command redoes it; false for a record's own failure, which a rerun would repeat", False),
    _f("bytes_in", pa.int64(), "size of the record's data, when it was read"),
    _f("worker", pa.string(), "host:pid of the worker process", False),
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
