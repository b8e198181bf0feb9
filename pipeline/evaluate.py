"""`imagemend eval`: the `run` job on clean photos damaged by a named suite, scored against the clean ones.

    imagemend eval --clean URL --suite standard --output URL [run's flags] [Beam flags]

Nothing is forked from `run`: the same launcher, graph, shards and runners, given the hooks of an
Evaluation (shard.Hooks), which only this command builds: a worker turns each clean record it reads
into one damaged record per case (model/evaluation/suites.py, seeded by case and key, so any worker makes the
same damage), named <case>/<clean key>; the records then go through decode, restore, measure and
encode like any other, and before a record is written its input and output are scored against the
clean photo (model/metrics.py): the metrics Parquet gains the columns of FIELDS. Restored images are
written as loose PNG files under images/<case>/ whatever the input layout (a case is not a member of
the input's tar or Parquet shard). `imagemend run` never imports this module, the suites or the damage.

A record that cannot be damaged or scored (e.g. an output of the wrong size) is an error row with
stage `reference`; `summarise` then counts every (photo, case) that has no metrics row, including
those of shards that never finished, as a failure: a case's numbers never silently leave photos out.
"""

import argparse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
import io
import sys

import numpy as np
from PIL import Image
import pyarrow as pa

from imagemend.model import metrics
from imagemend.model.core.pixels import to_uint8
from imagemend.model.evaluation.suites import Case, suite

from . import job, options, schema
from .decode import decode
from .schema import column
from .shard import Hooks
from .sinks import OutputPaths, read_json
from .sources import Failure, Record, message
from .storage import filesystem, join

SCORES = ("psnr", "ssim", "ciede2000")

# the full-reference columns, after the metrics schema's (model/metrics.py)
FIELDS = (
    column("case", pa.string(), "case of the suite (model/evaluation/suites.py) the input was damaged with; the key is "
       "<case>/<clean key>", False),
    column("task", pa.string(), "what the case exercises: denoise, deblur, cast, exposure, contrast, mixed or clean",
       False),
    column("reference_uri", pa.string(), "URI of the clean photo the scores compare with (source_uri is it, #case)",
       False),
    column("psnr_before", pa.float64(), "PSNR of the damaged input against the clean photo, both 8-bit RGB: dB, capped "
       "at 100", False),
    column("psnr_after", pa.float64(), "PSNR of the written output against the clean photo", False),
    column("ssim_before", pa.float64(), "SSIM of the damaged input against the clean photo (Wang et al. 2004, as "
       "scikit-image computes it with gaussian_weights=True, sigma=1.5, use_sample_covariance=False)", False),
    column("ssim_after", pa.float64(), "SSIM of the written output against the clean photo", False),
    column("ciede2000_before", pa.float64(),
           "mean CIEDE2000 colour difference of the damaged input from the clean photo", False),
    column("ciede2000_after", pa.float64(),
           "mean CIEDE2000 colour difference of the written output from the clean photo", False),
)
METRICS_SCHEMA = pa.schema([*schema.METRICS_SCHEMA, *FIELDS])



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean", required=True, help="fsspec URL of clean photos: prefix, glob, tar or Parquet shards")
    p.add_argument("--suite", required=True,
                   help="named suite of cases (model/evaluation/suites.py): standard, quick, ...")
    p.add_argument("--cases", default="", help="comma-separated subset of the suite's cases (default: all)")
    p.add_argument("--output", required=True, help="fsspec URL of the output prefix")
    options.add_processing_arguments(p)


@dataclass(frozen=True)
class Evaluation(Hooks):
    """The hooks of `imagemend eval`: each clean record damaged per case, each output scored against it."""
    suite: str
    cases: tuple[str, ...] = ()  # only these cases of the suite (default: all)
    max_pixels: int = options.InputOptions.max_pixels  # the clean photos' decoding budget
    fields = FIELDS

    def __post_init__(self):
        self.of_suite()  # an unknown suite or case fails here, on the launcher

    def of_suite(self) -> tuple[Case, ...]:
        return suite(self.suite, list(self.cases) or None)

    def settings(self) -> dict:
        return {"suite": self.suite, "cases": list(self.cases)}

    def expand(self, records: Iterable[Record | Failure]) -> Iterator[Record | Failure]:
        return expand(records, self.of_suite(), self.max_pixels)

    def score(self, rec: Record, before: np.ndarray, after: np.ndarray) -> dict:
        return compare(rec, before, after)


def main(args: argparse.Namespace) -> dict:
    """The `run` job with an Evaluation's hooks, then the per-case table; exits 3 when any damaged photo has
    no scores."""
    opts, evaluation = from_args(args)
    check_output(opts.output, evaluation)
    summary = job.finish(job.run(opts, options.beam_args(args.beam_argv, opts.work.workers), evaluation))
    result = summarise(summary["output"], opts.output.storage)
    print(markdown(result))
    if result["failed"]:
        print(f"imagemend: the evaluation is incomplete: {result['failed']} damaged photos have no scores "
              "(see the table and errors/)", file=sys.stderr)
        sys.exit(3)
    return result


def from_args(args: argparse.Namespace) -> tuple[options.RunOptions, Evaluation]:
    # the suite's cases are not an archive: no groups (each case reads photo by photo, as the suites were scored)
    opts = options.from_args(args, input=args.clean, output=args.output, group_by="none")
    cases = tuple(c.strip() for c in args.cases.split(",") if c.strip())
    return opts, Evaluation(args.suite, cases, opts.input.max_pixels)


def rgb8(pixels: np.ndarray) -> np.ndarray:
    """The decoded photo as the 8-bit RGB the suites damage: grey expanded, alpha dropped, 16 bits rounded."""
    if pixels.dtype == np.uint16:
        pixels = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        pixels = to_uint8(pixels)
    p = pixels[:, :, None] if pixels.ndim == 2 else pixels
    p = p[:, :, :3] if p.shape[2] >= 3 else p[:, :, :1]
    return np.ascontiguousarray(np.broadcast_to(p, (*p.shape[:2], 3)))


def png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def output_name(case: Case, key: str) -> str:
    return f"{case.name}/{key}" + ("" if key.lower().endswith(".png") else ".png")


def expand(records: Iterable[Record | Failure], cases: tuple[Case, ...],
           max_pixels: int) -> Iterator[Record | Failure]:
    """Each clean record as one damaged PNG record per case (lazily: one case in memory at a time)."""
    n = len(cases)
    for x in records:
        if isinstance(x, Failure):  # an unreadable photo fails in every case; a broken shard's rest once
            if x.index is None:
                yield x
            else:
                yield from (replace(x, index=x.index * n + j, key=f"{c.name}/{x.key}", uri=f"{x.uri}#{c.name}")
                            for j, c in enumerate(cases))
            continue
        try:
            clean = rgb8(decode(x.data, max_pixels).pixels)
        except Exception as e:
            yield from (Failure(x.shard, x.index * n + j, f"{c.name}/{x.key}", f"{x.uri}#{c.name}", "decode",
                                type(e).__name__, message(e), len(x.data)) for j, c in enumerate(cases))
            continue
        for j, c in enumerate(cases):
            rec = Record(x.shard, x.index * n + j, f"{c.name}/{x.key}", f"{x.uri}#{c.name}", b"",
                         output_name(c, x.key), {"reference": clean, "case": c, "reference_uri": x.uri}, x.raw_key)
            try:
                rec.data = png(c.apply(clean, x.key))
            except Exception as e:
                yield Failure.of(rec, "reference", e)
                continue
            yield rec


def compare(rec: Record, damaged: np.ndarray, restored: np.ndarray) -> dict:
    """The reference columns of a record: its input and its output scored against the clean photo."""
    clean, case = rec.extra.pop("reference"), rec.extra["case"]
    row = {"case": case.name, "task": case.task, "reference_uri": rec.extra["reference_uri"]}
    for side, img in (("before", damaged), ("after", restored)):
        row.update({f"{k}_{side}": v for k, v in metrics.compare(clean, img).items()})
    return row


def check_output(output: options.OutputOptions, evaluation: Evaluation) -> None:
    """Refuse to resume into an output that holds another suite's (or a `run`'s) results."""
    fs, root = filesystem(output.url, output.storage)
    before = read_json(fs, OutputPaths(root).summary())
    if before and not output.overwrite and (before.get("suite"), before.get("cases")) != (
            evaluation.suite, list(evaluation.cases) or None):
        raise ValueError(f"{output.url} holds results of suite {before.get('suite')!r} cases {before.get('cases')}; "
                         "choose another --output or pass --overwrite")


# ---------------------------------------------------------------- reading an evaluation back

def summarise(output: str, storage_options: dict | None = None) -> dict:
    """Per case: photos scored, failures (error rows, and photos with neither a metrics nor an error
    row, e.g. in a shard that never finished), means and worst of the scores; written to eval.json."""
    from .sinks import read_manifest, read_tables, write_json

    fs, root = filesystem(output, storage_options)
    fs.invalidate_cache()
    paths = OutputPaths(root)
    run = read_json(fs, paths.summary())
    if not run or not run.get("suite"):
        raise ValueError(f"{output} holds no `imagemend eval` output (summary.json without a suite)")
    cases = [c.name for c in suite(run["suite"], run.get("cases"))]
    rows, errors = read_tables(fs, root, "metrics"), read_tables(fs, root, "errors")
    seen = {(r["key"].split("/", 1)[0], r["key"].split("/", 1)[1]) for r in rows + errors if r["key"]}
    clean_keys = {k for _, k in seen}
    unfinished = []
    for shard in read_manifest(run["manifest"], storage_options or {}):
        if read_json(fs, paths.marker(shard.id)) is None:
            unfinished.append(shard.id)
        if shard.layout == "files":
            clean_keys |= set(shard.items)
    missing = sorted((c, k) for c in cases for k in clean_keys if (c, k) not in seen)
    out = {"suite": run["suite"], "run_id": run["run_id"], "output": run["output"], "cases": {},
           "unfinished_shards": unfinished, "photos": len(clean_keys)}
    for c in cases:
        mine = [r for r in rows if r["case"] == c]
        errs = [e for e in errors if e["key"] and e["key"].startswith(c + "/")]
        gone = [k for cc, k in missing if cc == c]
        row = {"scored": len(mine), "failed": len(errs) + len(gone),
               "failures": [f"{e['key']}: {e['stage']} {e['error_type']}: {e['message']}" for e in errs[:5]]
               + [f"{c}/{k}: no metrics row and no error row" for k in gone[:5]]}
        for m in SCORES:
            for side in ("before", "after"):
                vals = [r[f"{m}_{side}"] for r in mine]
                row[f"{m}_{side}"] = float(np.mean(vals)) if vals else None
        if mine:
            worst = min(mine, key=lambda r: r["psnr_after"])
            row["psnr_after_worst"], row["worst_key"] = worst["psnr_after"], worst["key"]
        out["cases"][c] = row
    broken_shards = sum(e["key"] is None for e in errors)
    out["failed"] = sum(r["failed"] for r in out["cases"].values()) + broken_shards + len(unfinished)
    write_json(fs, join(root, "eval.json"), out)
    return out


def markdown(s: dict) -> str:
    """The per-case table `imagemend eval` prints."""
    def f(v, spec):
        return "-" if v is None else format(v, spec)

    lines = [f"suite {s['suite']}, {s['photos']} clean photos, run {s['run_id']}: mean over the scored photos "
             "(failed ones are counted, never averaged)", "",
             "| case | scored | failed | PSNR before -> after (worst) | SSIM before -> after "
             "| CIEDE2000 before -> after |", "|---|---|---|---|---|---|"]
    for c, r in s["cases"].items():
        lines.append(f"| {c} | {r['scored']} | {r['failed']} | {f(r['psnr_before'], '.2f')} -> "
                     f"{f(r['psnr_after'], '.2f')} ({f(r.get('psnr_after_worst'), '.2f')}) | "
                     f"{f(r['ssim_before'], '.4f')} -> {f(r['ssim_after'], '.4f')} | "
                     f"{f(r['ciede2000_before'], '.2f')} -> {f(r['ciede2000_after'], '.2f')} |")
    for c, r in s["cases"].items():
        lines += [f"failed in {c}: {x}" for x in r["failures"]]
    lines += [f"unfinished shard: {sid}" for sid in s["unfinished_shards"]]
    return "\n".join(lines)
