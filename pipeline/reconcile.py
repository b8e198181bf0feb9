"""Reruns that reconcile: outputs of finished shards that the input no longer has, or has changed, are removed
before the job starts, so that no key is written twice and nothing stale survives a rerun.

A finished shard is one with a done-marker. Against the new listing it is either current (same id, same
fingerprint: skipped), unfinished (its marker left records for a rerun, which the store, the network or the
disk failed: its outputs are removed and it is redone whole), changed (same id, other fingerprint: a photo
replaced, added or deleted; its old outputs are removed and it is redone) or unlisted (its id is not in the
listing: inputs deleted or moved, or the files re-grouped by another --files-per-shard). Unlisted outputs are
removed only with --prune: a mistyped, narrower input must not empty an output. Removal takes the images a
shard's metrics rows point at, then its metrics and errors files, and its done-marker last, so that an
interrupted removal is finished by the next launch.
"""

from contextlib import suppress
import json
from typing import NamedTuple

from fsspec import AbstractFileSystem
import pyarrow.parquet as pq

from .sinks import OutputPaths
from .sinks import finished as done
from .sources import Shard
from .storage import inside, join

EXAMPLES = 5  # shard ids named in the refusal


class Outdated(NamedTuple):
    changed: list[str]  # listed shards whose inputs changed since they were finished: redone by this run
    unlisted: list[str]  # finished shards that the listing no longer has
    unfinished: list[str]  # listed shards whose marker left records for a rerun: redone by this run


class UnlistedShards(ValueError):
    """Finished shards that the listing no longer has, without --prune: the run stops before writing anything."""


def markers(fs: AbstractFileSystem, paths: OutputPaths, ids: set[str]) -> dict[str, dict | None]:
    """The done-markers of `ids`, fetched together (concurrently on object stores; paths never globbed);
    None for one that vanished or cannot be read."""
    order = sorted(ids)
    got = fs.cat_ranges([paths.marker(i) for i in order], [None] * len(order), [None] * len(order),
                        on_error="return") if order else []
    out: dict[str, dict | None] = {}
    for sid, data in zip(order, got):
        try:
            out[sid] = json.loads(data) if isinstance(data, bytes) else None
        except ValueError:
            out[sid] = None
    return out


def outdated(fs: AbstractFileSystem, paths: OutputPaths, shards: list[Shard], finished: set[str]) -> Outdated:
    """Which finished shards are changed and which are unlisted, against this run's listing."""
    listed = {s.id: s for s in shards}
    unlisted = sorted(finished - set(listed))
    found = markers(fs, paths, finished & set(listed))
    changed = sorted(i for i, m in found.items() if not m or m.get("fingerprint") != listed[i].fingerprint)
    unfinished = sorted(i for i, m in found.items() if i not in changed and not done(m))
    return Outdated(changed, unlisted, unfinished)


def refuse_unlisted(old: Outdated, root: str, prune: bool) -> None:
    """Unlisted shards stop the run unless --prune: their rows would stay beside the new ones."""
    if old.unlisted and not prune:
        named = ", ".join(old.unlisted[:EXAMPLES]) + (", ..." if len(old.unlisted) > EXAMPLES else "")
        raise UnlistedShards(
            f"{root} holds {len(old.unlisted)} finished shards that this input's listing does not have ({named}): "
            "their inputs were deleted or moved, or --files-per-shard changed. Rerun with --prune to remove their "
            "images, metrics and errors, or write to another output")


def shard_images(fs: AbstractFileSystem, paths: OutputPaths, sid: str, marker: dict | None) -> set[str]:
    """Paths of the images a finished shard wrote: its metrics rows' output_uri (a tar or Parquet output once),
    and the outputs its marker names; only those under the output's images/."""
    uris = set((marker or {}).get("outputs", []))
    with suppress(FileNotFoundError), fs.open(paths.metrics(sid), "rb") as f:
        uris |= set(pq.read_table(f, columns=["output_uri"]).column("output_uri").to_pylist())
    images = join(paths.root, "images")
    found = {fs._strip_protocol(u.partition("#")[0]) for u in uris if u}
    return {p for p in found if inside(images, p)}


def remove_shard(fs: AbstractFileSystem, paths: OutputPaths, sid: str) -> None:
    """A finished shard's outputs and kept readings, its done-marker last (an interrupted removal is redone by
    the next launch)."""
    marker = markers(fs, paths, {sid})[sid]
    for path in (*sorted(shard_images(fs, paths, sid, marker)), paths.metrics(sid), paths.errors(sid),
                 paths.stats(sid), paths.marker(sid)):
        with suppress(FileNotFoundError):
            fs.rm_file(path)


def remove(fs: AbstractFileSystem, paths: OutputPaths, ids: list[str]) -> None:
    for sid in ids:
        remove_shard(fs, paths, sid)
    fs.invalidate_cache()
