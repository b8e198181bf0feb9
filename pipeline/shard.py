"""One shard, start to finish, with reading, decoding and encoding overlapping the model.

    reader thread ─> decode pool ─> batches ─> model (its restore threads) ─> encode pool ─> sink (in order)

The reader thread streams records from storage; a small thread pool decodes and measures images
ahead of the model and encodes and measures their restored copies behind it (Pillow, numpy and
torch release the GIL, so the stages really overlap). Batches go to the model as they fill: on a
CPU it restores one per core at once in its own threads (pipeline/infer.py). Results are written
in input order, then the metrics and errors files, then the done-marker, last. Only the current
shard's look-ahead is in memory, whatever the size of the shard.

`imagemend eval` passes Hooks (pipeline/evaluate.py): they turn each record read into damaged copies,
score each output against its clean photo and name the metrics columns that scoring adds. `run`
passes none, and this module knows nothing of suites, damage or scores.
"""

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from functools import partial
import queue
import threading
import time
from typing import TYPE_CHECKING

from fsspec import AbstractFileSystem
import numpy as np
import pyarrow as pa

from imagemend.model.core.measures import measure
from imagemend.model.core.tasks import REGISTRY, TASKS

from .decode import Decoded, decode
from .encode import EXTENSIONS, FORMATS, encode, output_format, output_name, same_format
from .groups import group_key, kept_readings, photo_reasons, photo_tone
from .options import OutputOptions, RunOptions
from .progress import Progress, worker_id
from .retry import Backoff
from .schema import ERRORS_SCHEMA, MEASURES, METRICS_SCHEMA, table
from .sinks import FilesSink, OutputPaths, ParquetSink, TarSink, finished, read_json, write_json, write_parquet
from .sources import Failure, Record, Shard, read_records
from .storage import filesystem

if TYPE_CHECKING:
    from .infer import LoadedModel, Restoration

_END = object()


class Hooks:
    """What an evaluation adds to a shard's pass (pipeline/evaluate.py builds them; `run` has none)."""

    stage = "reference"  # the errors' stage of a record that could not be expanded or scored
    fields: tuple[pa.Field, ...] = ()  # metrics columns that score() fills, after the run's

    def expand(self, records: Iterable[Record | Failure]) -> Iterator[Record | Failure]:
        """The records to restore in place of those read (written as loose files, whatever the input layout)."""
        raise NotImplementedError

    def score(self, rec: Record, before: np.ndarray, after: np.ndarray) -> dict:
        """The extra columns of a record's metrics row, from its input and its output pixels."""
        raise NotImplementedError

    def settings(self) -> dict:
        """What the hooks change in the bytes written, beside RunOptions.settings()."""
        raise NotImplementedError


@dataclass
class Item:
    """A record on its way through a shard: decoded, restored, measured and encoded in turn."""
    rec: Record
    dec: Decoded
    before: dict  # weight-free measures of the input
    width: int
    height: int
    timings: dict = field(default_factory=dict)
    out: np.ndarray | None = None  # the restored pixels, until encoded
    result: "Restoration | None" = None  # what the model made of it, pixels apart (pipeline/infer.py)
    after: dict = field(default_factory=dict)
    scores: dict = field(default_factory=dict)  # Hooks.score's columns
    group: str | None = None  # its group of photos (pipeline/groups.py), the group's decision, and the tone
    decision: dict | None = None  # damages the group told for this photo (Restorer.restore(tone=))
    tone: dict | None = None
    data: bytes = b""
    name: str = ""
    format: str = ""

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def status(self) -> str:
        return self.result.status


def background(items: Iterable, size: int) -> Iterator:
    """Iterate `items` in a thread, `size` ahead; exceptions surface in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False  # the consumer has gone

    def produce():
        try:
            for x in items:
                if not put(x):
                    return
            put(_END)
        except BaseException as e:  # handed to the consumer, which re-raises it
            put(e)

    threading.Thread(target=produce, daemon=True, name="imagemend-reader").start()
    try:
        while (x := q.get()) is not _END:
            if isinstance(x, BaseException):
                raise x
            yield x
    finally:
        stop.set()


def ordered_map(pool: Executor, fn: Callable, items: Iterable, ahead: int) -> Iterator:
    """fn over items in the pool, at most `ahead` in flight, results in input order."""
    pending: deque[Future] = deque()
    for x in items:
        pending.append(pool.submit(fn, x))
        if len(pending) > ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _decode(x: Record | Failure, max_pixels: int, tag: Callable[[Item], None] | None = None) -> Item | Failure:
    """The record decoded and measured, and `tag`ged (its group) in the same pool thread."""
    if isinstance(x, Failure):
        return x
    t0 = time.perf_counter()
    try:
        dec = decode(x.data, max_pixels)
    except Exception as e:  # corrupt, empty, not an image, too large, unsupported mode
        return Failure.of(x, "decode", e)
    t1 = time.perf_counter()
    before = measure(dec.pixels)
    it = Item(x, dec, before, dec.width, dec.height,
              {"decode_s": t1 - t0, "measure_s": time.perf_counter() - t1, "encode_s": 0.0})
    if tag is not None:
        tag(it)
    return it


def _restored(it: Item, r: "Restoration | Exception") -> Item | Failure:
    """The item with the model's result (its pixels kept apart, to be freed once encoded), or its failure."""
    if isinstance(r, Exception):
        return Failure.of(it.rec, "restore", r)
    it.out, it.result = r.image, replace(r, image=None, reasons=photo_reasons(r.reasons, it.decision))
    it.timings["restore_s"] = r.restore_s
    return it


def _finish(it: Item | Failure, output: OutputOptions, hooks: Hooks | None = None) -> Item | Failure:
    """Measure and encode a restored image; an unchanged one keeps its input bytes when the format is kept."""
    if isinstance(it, Failure):
        return it
    fmt = output_format(output.image_format, it.dec.meta.format)
    it.format, it.name = fmt, output_name(it.rec.name, it.dec.meta.format, fmt)
    if hooks is not None:  # score input and output while the pixels are here
        try:
            out = it.out if it.status == "restored" else it.dec.pixels
            it.scores = hooks.score(it.rec, it.dec.pixels, out)
        except Exception as e:  # e.g. an output of the wrong size: a failure, never a silent gap
            return Failure.of(it.rec, hooks.stage, e)
    t0 = time.perf_counter()
    it.after = measure(it.out) if it.status == "restored" else it.before
    t1 = time.perf_counter()
    it.timings["measure_s"] += t1 - t0
    if it.status == "unchanged" and same_format(it.dec.meta.format, fmt):
        it.data = it.rec.data
    else:
        try:
            it.data = encode(it.out if it.status == "restored" else it.dec.pixels, it.dec.meta, fmt, output.quality)
        except Exception as e:
            return Failure.of(it.rec, "encode", e)
        it.timings["encode_s"] = time.perf_counter() - t1
    it.out = it.dec.pixels = None  # free the pixels while the item waits for its turn to be written
    return it


def metrics_row(it: Item, uri: str, run_id: str, model) -> dict:
    rec, meta, m = it.rec, it.dec.meta, it.result
    row = {
        "run_id": run_id, "shard": rec.shard, "index": rec.index, "key": rec.key, "key_bytes": rec.raw_key,
        "source_uri": rec.uri,
        "output_uri": uri, "width": it.width, "height": it.height, "mode": meta.mode,
        "format": meta.format, "output_format": it.format, "status": it.status, "group": it.group,
    }
    for task in REGISTRY:
        t, est, meas = task.name, task.estimate, MEASURES[task.name][0]
        row.update({
            f"{t}_applied": bool(m.applied[t]), f"{t}_reason": m.reasons[t], f"{t}_strength": float(m.strengths[t]),
            f"{t}_estimate_before": m.estimates[est], f"{t}_estimate_after": m.estimates_after[est],
            f"{t}_measure_before": it.before[meas], f"{t}_measure_after": it.after[meas],
        })
    for side, measures in (("before", it.before), ("after", it.after)):
        row[f"clipped_high_{side}"], row[f"clipped_low_{side}"] = measures["clipped_high"], measures["clipped_low"]
    row.update({
        "estimates_before": m.estimates, "estimates_after": m.estimates_after,
        "bytes_in": len(rec.data), "bytes_out": len(it.data), **it.timings,
        "model": model.name, "weights_sha256": model.weights_sha256, "device": model.device,
        "worker": worker_id(), **it.scores,
    })
    return row


def tally(keys: list[str]) -> dict[str, int]:
    """Counts per key: flat, so that the shards' counts add up key by key (graph.SumCounts)."""
    out: dict[str, int] = {}
    for k in keys:
        out[k] = out.get(k, 0) + 1
    return out


def error_row(f: Failure, run_id: str) -> dict:
    return {"run_id": run_id, "shard": f.shard, "index": f.index, "key": f.key, "key_bytes": f.raw_key,
            "source_uri": f.uri,
            "stage": f.stage, "error_type": f.error_type, "message": f.message, "retryable": f.retryable,
            "bytes_in": f.bytes_in, "worker": worker_id()}


def _sink(shard: Shard, opts: RunOptions, fs: AbstractFileSystem, paths: OutputPaths, loose: bool):
    """Where a shard's images go: a tar or Parquet shard's into its namesake, loose files (and, `loose`, the
    records that hooks made) as loose files."""
    if loose or shard.layout == "files":
        return FilesSink(fs, paths, shard)
    if shard.layout == "tar":
        return TarSink(fs, paths, shard)
    if shard.layout == "parquet":  # img2dataset names the column after the format: it follows a change
        col = out = opts.input.parquet_image_column
        fmt = opts.output.image_format
        if fmt != "same" and col in ("jpg", "jpeg", "png", "webp", "tif", "tiff"):
            out = EXTENSIONS[FORMATS[fmt]].lstrip(".")
        return ParquetSink(fs, paths, shard, col, out)
    return FilesSink(fs, paths, shard)


class _Run:
    """The mutable state of one shard's pass: sink, rows, failures."""

    def __init__(self, opts: RunOptions, model: "LoadedModel", sink, progress: Progress, hooks: Hooks | None,
                 shard: Shard, groups: dict | None = None):
        self.work, self.output, self.max_pixels = opts.work, opts.output, opts.input.max_pixels
        self.shard, self.group_by = shard, opts.groups.group_by
        self.groups = groups  # the group decisions, where the run groups
        # pass 1's readings by (index, key); not for records an evaluation's hooks make from the input's
        self.kept = kept_readings(shard, opts, groups) if groups is not None and hooks is None else {}
        self.strengths, self.run_id = opts.model.strengths, opts.run_id
        self.model, self.sink, self.progress, self.hooks = model, sink, progress, hooks
        self.rows: list[dict] = []
        self.failures: list[Failure] = []
        self.names: set[str] = set()
        self.backoff = Backoff.of(opts.work)  # the output's store, for this shard's images

    def write(self, it: Item | Failure) -> None:
        if isinstance(it, Failure):
            self.failures.append(it)
            self.progress.tick(failed=1)
            return
        if isinstance(self.sink, FilesSink):  # one object per record: a failed write is that record's failure
            try:
                if it.name in self.names:
                    raise FileExistsError(f"output key {it.name!r} collides with another record's")
                uri = self.backoff(self.sink.add, it.rec, it.name, it.data)
            except Exception as e:
                self.failures.append(Failure.of(it.rec, "write", e))
                self.progress.tick(failed=1)
                return
            self.names.add(it.name)
        else:  # a container shard that cannot be written fails the bundle, and Beam retries it
            uri = self.sink.add(it.rec, it.name, it.data)
        self.rows.append(metrics_row(it, uri, self.run_id, self.model))
        self.progress.tick(images=1, pixels=it.width * it.height)

    def tag(self, it: Item) -> None:
        """A photo's group, the group's decision and the damage it tells the photo (where pass 1's reading was not kept,
        a reading as dear as the decode: it runs in the decode pool, not in the loop that feeds the model)."""
        it.group = group_key(it.rec, self.shard, self.group_by)
        it.decision = self.groups.get(it.group) if it.group is not None else None
        it.tone = photo_tone(it.decision, it.dec.pixels, self.kept.get((it.rec.index, it.rec.key)))

    def stream(self, records: Iterable[Record | Failure], pool: Executor) -> None:
        """Batches go to the model's restore threads as they fill; outputs are written in input order."""
        ahead = max(2, 2 * self.work.threads)
        tag = self.tag if self.groups is not None else None
        decoded = ordered_map(pool, partial(_decode, max_pixels=self.max_pixels, tag=tag), background(records, ahead),
                              ahead)
        restoring: deque[tuple[list[Item], Future]] = deque()  # batches in the model, oldest first
        pending: deque[Future] = deque()  # outputs being measured and encoded, in input order
        batch: list[Item] = []

        def finish(items: list[Item], f: Future) -> None:
            pending.extend(pool.submit(_finish, _restored(it, r), self.output, self.hooks)
                           for it, r in zip(items, f.result()))

        def drain(in_model: int, in_pool: int) -> None:
            """Write what is done, and wait until at most this many batches and outputs are left."""
            while restoring and (len(restoring) > in_model or restoring[0][1].done()):
                finish(*restoring.popleft())
            while pending and (len(pending) > in_pool or pending[0].done()):
                self.write(pending.popleft().result())

        def flush():
            images, jpeg = [it.dec.pixels for it in batch], [bool(it.dec.meta.jpeg) for it in batch]  # a JPEG file
            tone = [it.tone for it in batch] if self.groups is not None else None
            restoring.append((list(batch), self.model.submit(images, jpeg, self.strengths, tone)))
            batch.clear()
            drain(self.model.restores, ahead)

        for x in decoded:
            if isinstance(x, Failure):  # it has no output in the sink, so its place in the order is free
                self.write(x)
                continue
            batch.append(x)
            if sum(it.pixels for it in batch) >= self.model.pixel_budget or len(batch) >= self.work.batch_images:
                flush()
        if batch:
            flush()
        drain(0, 0)


def process_shard(shard: Shard, opts: RunOptions, model: "LoadedModel", pool: Executor, progress: Progress,
                  hooks: Hooks | None = None, groups: dict | None = None) -> dict:
    """Counts for one shard; a shard with a matching done-marker is skipped (unless --overwrite)."""
    fs_out, root = filesystem(opts.output.url, opts.output.storage)
    paths = OutputPaths(root)
    marker = None if opts.output.overwrite else read_json(fs_out, paths.marker(shard.id))
    if finished(marker) and marker.get("fingerprint") == shard.fingerprint:
        return {**marker["counts"], "shards": 1, "shards_skipped": 1}
    fs_in, _ = filesystem(shard.base, opts.input.storage)
    started = time.time()
    sink = _sink(shard, opts, fs_out, paths, loose=hooks is not None)
    run = _Run(opts, model, sink, progress, hooks, shard, groups)
    try:
        records = read_records(shard, fs_in, opts.input, Backoff.of(opts.work))
        run.stream(records if hooks is None else hooks.expand(records), pool)
        outputs = sink.commit()
    except BaseException:
        sink.abort()
        raise
    rows = sorted(run.rows, key=lambda r: r["index"])
    errors = sorted((error_row(f, opts.run_id) for f in run.failures),
                    key=lambda r: (r["index"] is None, r["index"] or 0))
    schema = METRICS_SCHEMA if hooks is None else pa.schema([*METRICS_SCHEMA, *hooks.fields])
    retry = Backoff.of(opts.work)  # its own: these must be tried even if the images' gave up
    metrics_uri = retry(write_parquet, fs_out, paths.metrics(shard.id), table(rows, schema))
    errors_uri = retry(write_parquet, fs_out, paths.errors(shard.id), table(errors, ERRORS_SCHEMA))
    counts = {
        "records": len(rows) + len(errors), "failed": len(errors), "left": sum(e["retryable"] for e in errors),
        "restored": sum(r["status"] == "restored" for r in rows),
        "unchanged": sum(r["status"] == "unchanged" for r in rows),
        "pixels": sum(r["width"] * r["height"] for r in rows),
        "bytes_in": sum(r["bytes_in"] for r in rows), "bytes_out": sum(r["bytes_out"] for r in rows),
        **tally([f"task:{t}:{r[f'{t}_reason']}" for r in rows for t in TASKS]),
        **tally([f"failed:{e['stage']}:{e['error_type']}" for e in errors]),
    }
    # the marker, last; with records left for a rerun (counts.left) it does not finish the shard (sinks.finished)
    retry(write_json, fs_out, paths.marker(shard.id), {
        "shard": shard.id, "layout": shard.layout, "input": shard.base, "fingerprint": shard.fingerprint,
        "run_id": opts.run_id,
        "counts": counts, "metrics": metrics_uri, "errors": errors_uri, "outputs": outputs[:1000],
        "seconds": round(time.time() - started, 3), "worker": worker_id(),
    })
    return {**counts, "shards": 1, "shards_processed": 1, "images_processed": len(rows)}
