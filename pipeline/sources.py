"""Input side: list an archive into shards once, at the start, and read a shard's records in order.

A shard is the unit of work and of resume. Tar and Parquet files are shards as they are; loose
files are grouped into virtual shards per directory, in name order, never splitting files that
share a stem, so the same listing always gives the same shards. A record is one image with what
travels beside it (a WebDataset sample's sidecars, a Parquet row's other columns). Anything that
cannot be read becomes a Failure in the stream instead of an exception, so it is reported once.
"""

from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
import hashlib
import json
import posixpath
import re
import tarfile

from fsspec import AbstractFileSystem

from .options import RunOptions
from .storage import UnsafeKey, filesystem, inside, safe_key, to_uri

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif")
SHARD_SUFFIX = {"tar": ".tar", "parquet": ".parquet"}


@dataclass(frozen=True)
class Shard:
    id: str  # safe relative name: metrics/<id>.parquet, _done/<id>.json
    layout: str  # files | tar | parquet
    base: str  # URI of the input prefix that items are relative to
    items: tuple[str, ...]  # relative keys: one tar/parquet file, or the loose files of a virtual shard
    sizes: tuple[int, ...]

    @property
    def fingerprint(self) -> str:
        """Changes when the shard's members or their sizes change: a stale done-marker is then ignored."""
        h = hashlib.sha256(json.dumps([self.layout, self.items, self.sizes]).encode())
        return h.hexdigest()[:20]

    def uri(self, item: str) -> str:
        return self.base.rstrip("/") + "/" + item

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> "Shard":
        d = json.loads(line)
        return cls(d["id"], d["layout"], d["base"], tuple(d["items"]), tuple(d["sizes"]))


@dataclass
class Record:
    shard: str
    index: int  # position in the shard: rows are written back in this order
    key: str
    uri: str
    data: bytes
    name: str  # file key or tar member name of the image (its extension follows a format change)
    extra: dict = field(default_factory=dict)  # tar: members of the sample; parquet: the row


@dataclass
class Failure:
    shard: str
    index: int | None  # None when the rest of a shard could not be read
    key: str | None
    uri: str
    stage: str  # list | read | decode | restore | encode | write
    error_type: str
    message: str
    bytes_in: int | None = None

    @classmethod
    def of(cls, rec: "Record", stage: str, exc: BaseException) -> "Failure":
        return cls(rec.shard, rec.index, rec.key, rec.uri, stage, type(exc).__name__, message(exc),
                   len(rec.data) if rec.data is not None else None)


def message(exc: BaseException) -> str:
    """The exception's text without object addresses, so that reruns give identical error rows."""
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "<data>", str(exc))[:2000]


# ---------------------------------------------------------------- listing

class NoInput(FileNotFoundError):
    """Nothing to do: the input URL matches no file (the command exits with status 2)."""


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def _visible(rel: str) -> bool:
    """Hidden and underscore names (.DS_Store, _SUCCESS, a writer's temporaries) are not inputs."""
    return not any(p.startswith((".", "_")) for p in rel.split("/"))


def list_files(url: str, storage_options: dict, exclude: str | None = None) -> tuple[str, dict[str, int]]:
    """(base URI, {relative key: size}) for a prefix, a glob or one file; `exclude` is a URI prefix to skip."""
    fs, path = filesystem(url, storage_options)
    fs.invalidate_cache()
    if _has_magic(path):
        parts = path.split("/")
        first = next(i for i, p in enumerate(parts) if _has_magic(p))
        base = "/".join(parts[:first])
        found = fs.glob(path, detail=True)
    elif fs.isdir(path):
        base, found = path, fs.find(path, detail=True)
    elif fs.isfile(path):
        base, found = posixpath.dirname(path), {path: fs.info(path)}
    else:
        raise NoInput(f"no input at {url}")
    files = {}
    for p, info in found.items():
        if info.get("type", "file") != "file":
            continue
        if exclude and to_uri(fs, p).startswith(exclude.rstrip("/") + "/"):
            continue
        rel = p[len(base):].lstrip("/") if base else p
        if rel and _visible(rel):
            files[rel] = int(info.get("size") or 0)
    return to_uri(fs, base), files


def detect_layout(keys: Iterable[str]) -> str:
    """tar or parquet when the listing holds such shards and no loose images, else loose files."""
    keys = list(keys)
    images = any(k.lower().endswith(IMAGE_SUFFIXES) for k in keys)
    for layout, suffix in SHARD_SUFFIX.items():
        if not images and any(k.lower().endswith(suffix) for k in keys):
            return layout
    return "files"


def _stem(key: str) -> str:
    d, name = posixpath.split(key)
    return posixpath.join(d, name.split(".", 1)[0])


def group_files(files: dict[str, int], base: str, per_shard: int) -> list[Shard]:
    """Stable virtual shards: per directory, in name order, a stem's files kept together."""
    by_dir: dict[str, list[str]] = {}
    for k in files:
        by_dir.setdefault(posixpath.dirname(k), []).append(k)
    shards = []
    for d in sorted(by_dir):
        keys = sorted(by_dir[d], key=lambda k: (_stem(k), k))
        chunks, cur = [], []
        for k in keys:
            if len(cur) >= per_shard and _stem(k) != _stem(cur[-1]):
                chunks.append(cur)
                cur = []
            cur.append(k)
        chunks.append(cur)
        for i, chunk in enumerate(chunks):
            sid = f"{d}/part-{i:05d}" if d else f"part-{i:05d}"
            shards.append(Shard(sid, "files", base, tuple(chunk), tuple(files[k] for k in chunk)))
    return shards


def list_shards(opts: RunOptions) -> tuple[str, list[Shard]]:
    """The layout and every shard of the input, listed once at the start of a run."""
    out_fs, out_root = filesystem(opts.output, opts.out_storage)
    base, files = list_files(opts.input, opts.in_storage, exclude=to_uri(out_fs, out_root))
    in_fs, in_base = filesystem(base, opts.in_storage)
    if type(in_fs) is type(out_fs) and (in_base == out_root or inside(out_root, in_base)):
        raise ValueError(f"input {opts.input} lies inside output {opts.output}")
    layout = detect_layout(files) if opts.layout == "auto" else opts.layout
    if layout == "files":
        return layout, group_files(files, base, opts.files_per_shard)
    suffix = SHARD_SUFFIX[layout]
    return layout, [Shard(k[: -len(suffix)], layout, base, (k,), (files[k],))
                    for k in sorted(files) if k.lower().endswith(suffix)]


# ---------------------------------------------------------------- reading

def read_records(shard: Shard, fs: AbstractFileSystem, opts: RunOptions) -> Iterator[Record | Failure]:
    """Every record of a shard in order; a shard that breaks midway ends with one Failure."""
    reader = {"files": _read_files, "tar": _read_tar, "parquet": _read_parquet}[shard.layout]
    yield from reader(shard, fs, opts)


def _path(fs: AbstractFileSystem, shard: Shard, item: str) -> str:
    return fs._strip_protocol(shard.uri(item))


def _read_files(shard: Shard, fs: AbstractFileSystem, opts: RunOptions) -> Iterator[Record | Failure]:
    for i, key in enumerate(shard.items):
        uri = shard.uri(key)
        try:
            key = safe_key(key)
            data = fs.cat_file(_path(fs, shard, key))
        except Exception as e:  # a file that vanished or cannot be read is one record's failure
            yield Failure(shard.id, i, key, uri, "read", type(e).__name__, message(e))
            continue
        yield Record(shard.id, i, key, uri, data, key)


def sample_key(name: str) -> tuple[str, str]:
    """WebDataset grouping: 'dir/000123.left.jpg' -> ('dir/000123', 'left.jpg')."""
    d, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(d, stem), ext


def _tar_sample(shard: Shard, index: int, key: str, members: list) -> Record | Failure:
    uri = shard.uri(shard.items[0]) + "#" + key
    names = [m.name for m, _ in members]
    try:
        for m, _ in members:
            safe_key(m.name)
            if not m.isfile():
                raise UnsafeKey(f"member {m.name!r} is a link or special file")
        image = next((j for j, n in enumerate(names) if n.lower().endswith(IMAGE_SUFFIXES)), None)
        if image is None:
            raise LookupError(f"sample has no image member among {names}")
    except (UnsafeKey, LookupError) as e:
        return Failure(shard.id, index, key, uri, "read", type(e).__name__, message(e),
                       sum(len(d) for _, d in members))
    return Record(shard.id, index, key, uri, members[image][1], names[image],
                  {"members": members, "image": image})


def _read_tar(shard: Shard, fs: AbstractFileSystem, opts: RunOptions) -> Iterator[Record | Failure]:
    uri = shard.uri(shard.items[0])
    index, key, members = 0, None, []
    try:
        with fs.open(_path(fs, shard, shard.items[0]), "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
            for m in tar:
                if m.isdir():
                    continue
                data = tar.extractfile(m).read() if m.isfile() else b""
                k = sample_key(m.name)[0]
                if members and k != key:
                    yield _tar_sample(shard, index, key, members)
                    index, members = index + 1, []
                key = k
                members.append((m, data))
        if members:
            yield _tar_sample(shard, index, key, members)
    except Exception as e:  # truncated or corrupt tar: the sample in hand and the rest are lost
        yield Failure(shard.id, index if members else None, key if members else None, uri, "read",
                      type(e).__name__, f"shard unreadable from record {index} on: {message(e)}")


def _read_parquet(shard: Shard, fs: AbstractFileSystem, opts: RunOptions) -> Iterator[Record | Failure]:
    import pyarrow.parquet as pq

    uri = shard.uri(shard.items[0])
    col, key_col = opts.parquet_image_column, opts.parquet_key_column
    index = 0
    try:
        with fs.open(_path(fs, shard, shard.items[0]), "rb") as f:
            pf = pq.ParquetFile(f)
            if col not in pf.schema_arrow.names:
                raise KeyError(f"no image column {col!r} in {pf.schema_arrow.names}")
            for batch in pf.iter_batches(batch_size=16):
                for row in batch.to_pylist():
                    key = str(row[key_col]) if row.get(key_col) is not None else str(index)
                    data = row[col]
                    if data is None:
                        why = row.get("error_message") or row.get("status") or "image column is null"
                        yield Failure(shard.id, index, key, f"{uri}#{key}", "read", "MissingImage", str(why))
                    else:
                        yield Record(shard.id, index, key, f"{uri}#{key}", data, key,
                                     {"row": row, "schema": pf.schema_arrow})
                    index += 1
    except Exception as e:
        yield Failure(shard.id, None, None, uri, "read", type(e).__name__,
                      f"shard unreadable from record {index} on: {message(e)}")
