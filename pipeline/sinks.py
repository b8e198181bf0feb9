"""Output side: restored images in the input's layout, per-shard metrics and errors, and done-markers.

Layout under --output:
    images/<key>                    loose files, mirroring the input keys
    images/<shard>.tar|.parquet     tar and Parquet shards, mirroring the input shards
    metrics/<shard>.parquet         one row per restored record (schema.METRICS_SCHEMA)
    errors/<shard>.parquet          one row per failed record (schema.ERRORS_SCHEMA)
    groups/groups.parquet           one row per group of photos: its tone decisions (pipeline/groups.py)
    _stats/<shard>.parquet          the shard's pass-1 tone readings, kept for reruns
    _done/<shard>.json              written last: the shard is finished and is skipped on a rerun
    _runs/<run_id>/shards.jsonl     the shard list of a run;  summary.json  the counts of the last run
    _lease.json                     the run that holds the output while it runs (pipeline/lease.py)
Every file is written atomically (storage.atomic_open), so a killed run leaves whole files or none.
Container shards are streamed: a 1 GB tar never sits in memory, and is not visible until complete.
"""

from collections.abc import Iterator
from contextlib import ExitStack, suppress
import copy
from dataclasses import dataclass
import io
import json
import tarfile
import time

from fsspec import AbstractFileSystem
import pyarrow as pa
import pyarrow.parquet as pq

from .sources import Record, Shard
from .storage import atomic_open, atomic_write, filesystem, inside, join, safe_key, to_uri

ROW_GROUP_BYTES = 64 << 20
ROW_GROUP_ROWS = 256


@dataclass(frozen=True)
class OutputPaths:
    root: str

    def image(self, rel: str) -> str:
        path = join(self.root, "images", safe_key(rel))
        if not inside(self.root, path):
            raise ValueError(f"refusing to write outside the output: {path}")
        return path

    def metrics(self, shard: str) -> str:
        return join(self.root, "metrics", safe_key(shard) + ".parquet")

    def errors(self, shard: str) -> str:
        return join(self.root, "errors", safe_key(shard) + ".parquet")

    def marker(self, shard: str) -> str:
        return join(self.root, "_done", safe_key(shard) + ".json")

    def groups(self) -> str:
        """One row per group of photos: its readings and decisions (pipeline/groups.py)."""
        return join(self.root, "groups", "groups.parquet")

    def stats(self, shard: str) -> str:
        """The shard's pass-1 tone readings (pipeline/groups.py), kept for reruns."""
        return join(self.root, "_stats", safe_key(shard) + ".parquet")

    def manifest(self, run_id: str) -> str:
        return join(self.root, "_runs", safe_key(run_id), "shards.jsonl")

    def settings(self) -> str:
        return join(self.root, "_settings.json")

    def lease(self) -> str:
        return join(self.root, "_lease.json")

    def summary(self, run_id: str | None = None) -> str:
        return join(self.root, "_runs", safe_key(run_id), "summary.json") if run_id else join(self.root, "summary.json")


class _Aborted(Exception):
    pass


class _ContainerSink:
    """One output file for the whole shard, opened on the first record and visible only after commit."""

    def __init__(self, fs: AbstractFileSystem, path: str):
        self.fs, self.path, self.stack, self.file = fs, path, ExitStack(), None

    def _open(self):
        if self.file is None:
            self.file = self.stack.enter_context(atomic_open(self.fs, self.path))
        return self.file

    def commit(self) -> list[str]:
        if self.file is None:
            return []
        self._flush()
        self.stack.close()  # closes the tar or Parquet writer, then makes the file visible
        return [to_uri(self.fs, self.path)]

    def abort(self) -> None:
        with suppress(_Aborted):
            self.stack.__exit__(_Aborted, _Aborted(), None)

    def _flush(self) -> None:
        pass


class FilesSink:
    """Loose files: each image is its own atomic object under images/, mirroring the input key."""

    def __init__(self, fs: AbstractFileSystem, paths: OutputPaths, shard: Shard):
        self.fs, self.paths, self.written = fs, paths, []

    def add(self, rec: Record, name: str, data: bytes) -> str:
        path = self.paths.image(name)
        atomic_write(self.fs, path, data)
        uri = to_uri(self.fs, path)
        self.written.append(uri)
        return uri

    def commit(self) -> list[str]:
        return self.written

    def abort(self) -> None:
        pass


class TarSink(_ContainerSink):
    """WebDataset shard: each sample's members in their input order, the image member replaced."""

    def __init__(self, fs: AbstractFileSystem, paths: OutputPaths, shard: Shard):
        super().__init__(fs, paths.image(shard.output))
        self.tar = None

    def add(self, rec: Record, name: str, data: bytes) -> str:
        if self.tar is None:
            tar = tarfile.open(fileobj=self._open(), mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
            self.tar = self.stack.enter_context(tar)  # the stack closes it before the file is committed
        for j, (info, body) in enumerate(rec.extra["members"]):
            if j == rec.extra["image"]:
                info, body = copy.copy(info), data
                info.name = name
            info.size = len(body)
            self.tar.addfile(info, io.BytesIO(body))
        return to_uri(self.fs, self.path) + "#" + name


class ParquetSink(_ContainerSink):
    """img2dataset shard: the input's schema and rows, the image column holding the restored bytes."""

    def __init__(self, fs: AbstractFileSystem, paths: OutputPaths, shard: Shard, column: str, out_column: str):
        super().__init__(fs, paths.image(shard.output))
        self.column, self.out_column, self.writer, self.rows, self.size = column, out_column, None, [], 0

    def add(self, rec: Record, name: str, data: bytes) -> str:
        if self.writer is None:
            schema = rec.extra["schema"]
            if self.out_column != self.column:
                i = schema.get_field_index(self.column)
                schema = schema.set(i, schema.field(i).with_name(self.out_column))
            self.schema = schema
            out = self._open()
            self.writer = self.stack.enter_context(pq.ParquetWriter(out, schema))
        row = dict(rec.extra["row"])
        del row[self.column]
        row[self.out_column] = data
        self.rows.append(row)
        self.size += len(data)
        if self.size >= ROW_GROUP_BYTES or len(self.rows) >= ROW_GROUP_ROWS:
            self._flush()
        return to_uri(self.fs, self.path) + "#" + rec.key

    def _flush(self) -> None:
        if self.rows:
            self.writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        self.rows, self.size = [], 0


def read_tables(fs: AbstractFileSystem, root: str, kind: str) -> list[dict]:
    """Every row of an output's metrics or errors (one Parquet file per shard, in nested folders), in
    the files' order."""
    folder = join(root, kind)
    if not fs.exists(folder):
        return []
    rows = []
    for path in sorted(fs.find(folder)):
        if path.endswith(".parquet"):
            with fs.open(path, "rb") as f:
                rows += pq.read_table(f).to_pylist()
    return rows


def write_parquet(fs: AbstractFileSystem, path: str, table: pa.Table) -> str:
    with atomic_open(fs, path) as f:
        pq.write_table(table, f)
    return to_uri(fs, path)


def write_json(fs: AbstractFileSystem, path: str, value: dict) -> str:
    atomic_write(fs, path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())
    return to_uri(fs, path)


def read_json(fs: AbstractFileSystem, path: str) -> dict | None:
    try:
        return json.loads(fs.cat_file(path))
    except FileNotFoundError:
        return None


def finished(marker: dict | None) -> bool:
    """Whether a done-marker finishes its shard: not when records were left for a rerun (the store, the network
    or the disk failed them), which redoes the shard."""
    return bool(marker) and not marker.get("counts", {}).get("left")


def finished_shards(fs: AbstractFileSystem, paths: OutputPaths) -> set[str]:
    """Ids of shards with a done-marker (finished, or with records left): one listing, for the plan."""
    done = join(paths.root, "_done")
    fs.invalidate_cache()
    if not fs.exists(done):
        return set()
    return {p[len(done) + 1:-len(".json")] for p in fs.find(done) if p.endswith(".json")}


def forget_finished(fs: AbstractFileSystem, paths: OutputPaths) -> None:
    """--overwrite: drop every done-marker first, so that an interrupted overwrite can be resumed."""
    done = join(paths.root, "_done")
    if fs.exists(done):
        fs.rm(done, recursive=True)
    fs.invalidate_cache()


def keep_settings(fs: AbstractFileSystem, paths: OutputPaths, settings: dict, finished: set[str]) -> None:
    """An output holds one set of the settings that change what is written: a run with other
    settings would skip the finished shards and leave a mix. It stops instead (--overwrite redoes all)."""
    before = read_json(fs, paths.settings())
    if finished and before is not None and before != settings:
        changed = ", ".join(f"{k} {before.get(k)!r} -> {settings.get(k)!r}"
                            for k in sorted(set(before) | set(settings)) if before.get(k) != settings.get(k))
        raise ValueError(f"{paths.root} holds {len(finished)} shards restored with other settings ({changed}); "
                         "rerun with --overwrite to redo them, or write to another output")
    if before != settings:
        write_json(fs, paths.settings(), settings)


def write_manifest(fs: AbstractFileSystem, paths: OutputPaths, run_id: str, shards: list[Shard]) -> str:
    path = paths.manifest(run_id)
    atomic_write(fs, path, "".join(s.to_json() + "\n" for s in shards).encode())
    return to_uri(fs, path)


def read_manifest(uri: str, storage_options: dict) -> Iterator[Shard]:
    fs, path = filesystem(uri, storage_options)
    for line in fs.cat_file(path).decode().splitlines():
        if line.strip():
            yield Shard.from_json(line)


def write_summary(counts: dict, storage_options: dict, output: str, plan: dict, groups: dict | None = None) -> dict:
    """The run's counts beside its plan, as summary.json (latest run) and _runs/<run_id>/summary.json; groups:
    the group decisions (pipeline/groups.py write_groups)."""
    fs, root = filesystem(output, storage_options)
    paths = OutputPaths(root)
    flat = {k: v for k, v in counts.items() if ":" not in k}
    summary = {**plan, "counts": {k: flat.get(k, 0) for k in sorted(set(flat) | set(COUNT_KEYS))},
               "tasks": nest(counts, "task"), "failures": nest(counts, "failed"),
               "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    summary["elapsed_s"] = round(time.time() - plan["started_unix"], 3)
    processed = counts.get("images_processed", 0)
    summary["images_per_s"] = round(processed / summary["elapsed_s"], 3) if summary["elapsed_s"] else None
    summary["metrics"] = to_uri(fs, join(root, "metrics"))
    summary["errors"] = to_uri(fs, join(root, "errors"))
    summary["images"] = to_uri(fs, join(root, "images"))
    if groups:
        summary["groups"] = groups
    write_json(fs, paths.summary(plan["run_id"]), summary)
    write_json(fs, paths.summary(), summary)
    return summary


def nest(counts: dict[str, int], prefix: str) -> dict[str, dict[str, int]]:
    """`prefix:a:b` counts as {a: {b: n}}: tasks by reason, failures by stage and error type."""
    out: dict[str, dict[str, int]] = {}
    for k, n in sorted(counts.items()):
        head, _, rest = k.partition(":")
        if head == prefix and rest:
            a, _, b = rest.partition(":")
            out.setdefault(a, {})[b] = n
    return out


COUNT_KEYS = ("shards", "shards_processed", "shards_skipped", "records", "restored", "unchanged", "failed", "left",
              "images_processed", "pixels", "bytes_in", "bytes_out")
