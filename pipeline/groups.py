"""Tone and colour damage read per group of photos (issue #21): the Beam side of model/core/groups.py.

    shards -> ReadGroupStats -> CollectReadings (per group) -> Decide (the clean-group prior) -> side input
                                                                                               of RestoreShards

Pass 1 (ReadGroupStats) reads each photo's cheap tone reading (imagemend.model.core.groups.photo_reading, on the 256 px
view) keyed by its group, and keeps them per shard in `_stats/<shard>.parquet`, stamped with the shard's
fingerprint, the --group-by and the reading's version: a rerun reads those instead of the photos. A
group's readings are collected (all of them, or a uniform sample of MAX_READINGS in a larger group), decided
once against the prior (`decide`), and pass 2 restores each photo with its own damage (`photo_tone`: the
group's fitted mixture, per corrected task, applied to the photo's reading: pass 1's from `_stats/` where kept,
else taken again from the pixels pass 2 decodes; the side input holds one decision per group whatever the
groups' sizes). The decisions go to `groups/groups.parquet` (GROUPS_SCHEMA) and into summary.json.

Group keys (--group-by): folder (the photo's parent folder in its key; for a tar or Parquet shard, the
shard's file and the key's folders), shard, archive (all one group), exif:Model (the camera model),
exif:date (the day taken, EXIF DateTimeOriginal, else DateTime), column:NAME (a Parquet input's column), or
none. A photo without the value (no EXIF model, a null cell) belongs to no group: per-photo behaviour, a null
`group`. Groups under --min-group fall back to per-photo behaviour (their decision's reason: "too small").
"""

from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
import functools
from functools import partial
import hashlib
import io
import json
import logging
import posixpath
import time

import apache_beam as beam
from apache_beam.metrics import Metrics
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imagemend.model.core import groups as mg

from .options import RunOptions
from .retry import Backoff
from .sinks import OutputPaths, write_parquet
from .sources import Failure, Record, Shard, read_records
from .storage import escape_name, filesystem

NAMESPACE = "imagemend"
LOG = logging.getLogger("imagemend")
EXIF_MODEL, EXIF_DATETIME, EXIF_IFD, EXIF_DATETIME_ORIGINAL = 0x0110, 0x0132, 0x8769, 0x9003
ROOT = "."  # the folder key of photos at the top of the input
MAX_READINGS = 4096  # the most readings a group's decision rests on: a larger group's are a uniform sample


@functools.cache
def reading_version() -> str:
    """What the kept readings depend on besides the photo: the tone-cue table and the cast weights photo_reading
    reads with."""
    weights = json.dumps(mg.GroupPrior.load().cast_weights).encode()
    return "2:" + hashlib.sha256(mg.tone_cues.TABLE.read_bytes() + weights).hexdigest()[:16]


def prior_digest() -> str:
    return hashlib.sha256(mg.PRIOR.read_bytes()).hexdigest()[:16]


def settings(opts: RunOptions) -> dict:
    """The grouping's part of the run's recorded settings besides the flags (RunOptions.settings): the prior's
    digest, as the weights' (sinks.keep_settings: a rerun with another stops)."""
    return {"group_prior": prior_digest()} if opts.groups.active else {}


# ---------------------------------------------------------------- group keys

def exif_value(data: bytes, what: str) -> str | None:
    """what="Model": the camera model; "date": the day taken (YYYY-MM-DD); None where the EXIF has none."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            exif = im.getexif()
    except Exception:  # not an image: pass 2 reports it
        return None
    if what == "Model":
        value = exif.get(EXIF_MODEL)
    else:
        value = exif.get_ifd(EXIF_IFD).get(EXIF_DATETIME_ORIGINAL) or exif.get(EXIF_DATETIME)
        value = value.split(" ")[0].replace(":", "-") if isinstance(value, str) and value[:4].isdigit() else None
    value = escape_name(value.strip("\x00 ").strip()) if isinstance(value, str) else None
    return value or None


def group_key(rec: Record, shard: Shard, by: str) -> str | None:
    """The record's group under --group-by `by`; None: no group (per-photo behaviour)."""
    if by == "folder":
        path = rec.key if shard.layout == "files" else escape_name(shard.items[0]) + "/" + rec.key
        return posixpath.dirname(path) or ROOT
    if by == "shard":
        return shard.id
    if by == "archive":
        return "archive"
    if by.startswith("exif:"):
        return exif_value(rec.data, by.partition(":")[2])
    if by.startswith("column:"):
        value = rec.extra.get("row", {}).get(by.partition(":")[2])
        return None if value is None else escape_name(str(value))
    return None


# ---------------------------------------------------------------- pass 1: readings, kept per shard

STATS_SCHEMA = pa.schema([
    ("index", pa.int64()), ("key", pa.string()), ("group", pa.string()),
    *[(c, pa.float64()) for c in mg.COLUMNS],
])


def _stamp(shard: Shard, opts: RunOptions) -> dict:
    return {"fingerprint": shard.fingerprint, "group_by": opts.groups.group_by, "version": reading_version()}


def kept_stats(fs, path: str, stamp: dict) -> list[dict] | None:
    """The shard's kept readings, if they were read from the same shard with the same grouping and reading."""
    try:
        with fs.open(path, "rb") as f:
            t = pq.read_table(f)
    except FileNotFoundError:
        return None
    meta = {k.decode(): v.decode() for k, v in (t.schema.metadata or {}).items()}
    return t.to_pylist() if all(meta.get(k) == v for k, v in stamp.items()) else None


def _read_one(x: Record | Failure, shard: Shard, opts: RunOptions) -> dict | Failure | None:
    """A photo's reading; a read the store, the network or the disk failed (Failure.retryable) comes back, so
    that the shard's readings are not kept incomplete; other failures are pass 2's to report."""
    from .decode import decode

    if isinstance(x, Failure):
        return x if x.retryable else None
    try:
        reading = mg.photo_reading(decode(x.data, opts.input.max_pixels).pixels)
    except Exception:  # a photo that does not decode is pass 2's failure to report
        return None
    return {"index": x.index, "key": x.key, "group": group_key(x, shard, opts.groups.group_by),
            **dict(zip(mg.COLUMNS, map(float, reading)))}


class ReadGroupStats(beam.DoFn):
    """Pass 1: per shard, (group, (shard id, index, reading)) for each photo with a group; the shard's
    readings kept in _stats/ (read from there when the shard has not changed)."""

    def __init__(self, opts: RunOptions):
        self.opts = opts

    def setup(self) -> None:
        mg._table()  # the tone-cue table, once per process, before the threads share it
        self.pool = ThreadPoolExecutor(max(1, self.opts.work.threads), thread_name_prefix="imagemend-stats")

    def process(self, shard: Shard) -> Iterable[tuple[str, tuple]]:
        from .shard import background, ordered_map

        opts = self.opts
        started = time.perf_counter()
        fs_out, root = filesystem(opts.output.url, opts.output.storage)
        path, stamp = OutputPaths(root).stats(shard.id), _stamp(shard, opts)
        rows = kept_stats(fs_out, path, stamp)
        if rows is not None:
            Metrics.counter(NAMESPACE, "group_stats_kept_shards").inc()
        else:
            fs_in, _ = filesystem(shard.base, opts.input.storage)
            ahead = max(2, 2 * opts.work.threads)
            backoff = Backoff.of(opts.work)
            records = background(read_records(shard, fs_in, opts.input, backoff), ahead)
            read = list(ordered_map(self.pool, partial(_read_one, shard=shard, opts=opts), records, ahead))
            rows = [r for r in read if isinstance(r, dict)]
            if not any(isinstance(r, Failure) for r in read):  # kept only whole: a rerun reads what was missed
                table = pa.Table.from_pylist(rows, schema=STATS_SCHEMA).replace_schema_metadata(stamp)
                try:
                    backoff(write_parquet, fs_out, path, table)
                except Exception as e:  # the readings are a cache; pass 2 reports what the store fails
                    LOG.warning("imagemend: the tone readings of shard %s were not kept: %s", shard.id, e)
            Metrics.counter(NAMESPACE, "group_stats_read_photos").inc(len(rows))
        Metrics.counter(NAMESPACE, "group_stats_ms").inc(round(1000 * (time.perf_counter() - started)))
        for r in rows:
            if r["group"] is not None:
                yield r["group"], (shard.id, r["index"], tuple(r[c] for c in mg.COLUMNS))

    def teardown(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.shutdown(wait=False)


class CollectReadings(beam.CombineFn):
    """A group's photo count and readings for `decide`: all of them up to `limit`, beyond it a uniform sample of
    `limit` (those whose (shard, index) hashes lowest, so partial groups merge to the same sample on any runner
    and in any order). A group of a million photos (--group-by archive) then costs a worker `limit` readings,
    and its mean rests on `limit` photos, whose spread over them is far below the collections' (the prior's)."""

    def __init__(self, limit: int | None = None):
        self.limit = limit or MAX_READINGS

    def create_accumulator(self) -> tuple[int, list]:
        return 0, []

    def add_input(self, acc: tuple[int, list], x: tuple) -> tuple[int, list]:
        n, kept = acc
        kept.append((_rank(x), x))
        return n + 1, self._cut(kept) if len(kept) >= 2 * self.limit else kept

    def merge_accumulators(self, accs) -> tuple[int, list]:
        accs = list(accs)
        return sum(n for n, _ in accs), self._cut([k for _, kept in accs for k in kept])

    def extract_output(self, acc: tuple[int, list]) -> tuple[int, list]:
        return acc[0], sorted(x for _, x in self._cut(acc[1]))

    def _cut(self, kept: list) -> list:
        return sorted(kept)[:self.limit]


def _rank(x: tuple) -> bytes:
    """A photo's place in its group's sample: a hash of (shard, index), the same in every process."""
    return hashlib.blake2b(f"{x[0]}\0{x[1]}".encode(), digest_size=8).digest()


# ---------------------------------------------------------------- the decision

def decide(kv: tuple[str, tuple[int, list]], prior: mg.GroupPrior, opts: RunOptions) -> tuple[str, dict]:
    """A group's decision as the side input carries it: per task corrected, reason, estimate, statistic and
    critical value; per corrected task its mixture (model/core/groups.py Share), from which pass 2 tells each
    photo its damage by the photo's own reading: the side input grows with the groups, not with the photos.
    --assume overrides the group (those photos' tasks are read per photo, as told), and a task not asked for
    is not corrected."""
    group, (size, readings) = kv
    g = opts.groups
    d = mg.decide(np.array([r for _, _, r in readings]), prior, g.group_alpha, g.min_group, g.group_tasks)
    tasks = {}
    for t, td in d.tasks.items():
        corrected, reason = td.corrected, td.reason
        if opts.model.strengths.get(t, 0.0) <= 0:
            corrected, reason = False, "not requested"
        elif t in opts.model.assume:
            corrected, reason = False, "told by --assume"
        tasks[t] = {"corrected": corrected, "reason": reason, "estimate": list(td.estimate),
                    "statistic": td.statistic, "critical": td.critical}
    shares = {t: sh for t, sh in d.shares.items() if tasks[t]["corrected"]}
    return group, {"group": group, "size": size, "readings": d.size, "reading": list(d.reading), "tasks": tasks,
                   "shares": shares}


def kept_readings(shard: Shard, opts: RunOptions, groups: dict) -> dict[tuple[int, str], np.ndarray]:
    """Pass 1's readings of the shard's photos by record (index, key), where some group is corrected: pass 2 tells
    a photo its damage by the reading its group was decided on instead of reading it again. Empty where none
    were kept."""
    if not any(d and d["shares"] for d in groups.values()):
        return {}
    fs, root = filesystem(opts.output.url, opts.output.storage)
    try:
        rows = kept_stats(fs, OutputPaths(root).stats(shard.id), _stamp(shard, opts)) or []
    except Exception as e:  # a cache: a store that fails here costs each photo a reading
        LOG.warning("imagemend: the kept tone readings of shard %s were not read: %s", shard.id, e)
        rows = []
    return {(r["index"], r["key"]): np.array([r[c] for c in mg.COLUMNS]) for r in rows}


def photo_tone(decision: dict | None, pixels: np.ndarray, reading: np.ndarray | None = None) -> dict | None:
    """What Restorer.restore(tone=) takes for one photo: the damages its group's corrected tasks tell it by its
    own reading (pass 1's where kept: the same decode, the same pixels), or None."""
    if not decision or not decision["shares"]:
        return None
    return mg.photo_tone(decision["shares"], mg.photo_reading(pixels) if reading is None else reading)


def photo_reasons(reasons: dict[str, str], decision: dict | None) -> dict[str, str]:
    """A photo's reasons with its group's: a tone task that did not run in a group the test kept clean says so
    (instead of 'below threshold' or 'disabled by weights'); a group under --min-group keeps the per-photo reasons."""
    if not decision:
        return reasons
    out = dict(reasons)
    for t, td in decision["tasks"].items():
        if td["reason"] == mg.CLEAN and out.get(t) in ("below threshold", "disabled by weights"):
            out[t] = td["reason"]
    return out


# ---------------------------------------------------------------- outputs

GROUPS_SCHEMA = pa.schema([
    pa.field("run_id", pa.string(), False, {"doc": "identifier of the run that decided"}),
    pa.field("group_by", pa.string(), False, {"doc": "the --group-by the groups were formed by"}),
    pa.field("group", pa.string(), False, {"doc": "the group's key (the metrics rows' `group`)"}),
    pa.field("size", pa.int64(), False, {"doc": "photos in the group with a reading"}),
    pa.field("readings", pa.int64(), False, {"doc": "readings the decision rests on: all, or a uniform sample of "
                                                    "pipeline/groups.py MAX_READINGS in a larger group"}),
    *[pa.field(f"reading_{c}", pa.float64(), True, {"doc": f"robust group reading {c} (model/core/groups.py)"})
      for c in mg.COLUMNS],
    *[f for t in mg.TASKS for f in (
        pa.field(f"{t}_corrected", pa.bool_(), False, {"doc": f"whether {t} was corrected from the group's reading"}),
        pa.field(f"{t}_reason", pa.string(), False, {"doc": "corrected, clean prior not rejected, too small, "
                                                             f"told by --assume, not requested or {mg.NOT_CHOSEN} "
                                                             "(tested, not applied)"}),
        pa.field(f"{t}_statistic", pa.float64(), True, {"doc": "squared Mahalanobis distance from clean groups"}),
        pa.field(f"{t}_critical", pa.float64(), True, {"doc": "the statistic's rejection threshold at --group-alpha"}),
        pa.field(f"{t}_estimate", pa.list_(pa.float64()), True, {"doc": "the group's damage estimate"}),
    )],
])


def _nan(x: float) -> float | None:
    return None if x is None or x != x else float(x)


def write_groups(decisions: list[tuple[str, dict]], opts: RunOptions) -> dict:
    """groups/groups.parquet (one row per group) and what summary.json says of the groups."""
    g, rows = opts.groups, []
    for group, d in sorted(decisions):
        row = {"run_id": opts.run_id, "group_by": g.group_by, "group": group, "size": d["size"],
               "readings": d["readings"],
               **{f"reading_{c}": _nan(v) for c, v in zip(mg.COLUMNS, d["reading"])}}
        for t, td in d["tasks"].items():
            row.update({f"{t}_corrected": td["corrected"], f"{t}_reason": td["reason"],
                        f"{t}_statistic": _nan(td["statistic"]), f"{t}_critical": _nan(td["critical"]),
                        f"{t}_estimate": [_nan(v) for v in td["estimate"]]})
        rows.append(row)
    fs, root = filesystem(opts.output.url, opts.output.storage)
    uri = Backoff.of(opts.work)(write_parquet, fs, OutputPaths(root).groups(),
                                pa.Table.from_pylist(rows, schema=GROUPS_SCHEMA))
    counts = {t: dict(Counter(r[f"{t}_reason"] for r in rows)) for t in mg.TASKS}
    return {"group_by": g.group_by, "min_group": g.min_group, "group_alpha": g.group_alpha,
            "group_tasks": list(g.group_tasks),
            "table": uri, "counts": counts,
            "decisions": {r["group"]: {"size": r["size"], **{t: r[f"{t}_reason"] for t in mg.TASKS}} for r in rows}}

