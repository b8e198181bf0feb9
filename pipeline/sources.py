"""Input side: list an archive into shards once, at the start, and read a shard's records in order.

A shard is the unit of work and of resume. Tar and Parquet files are shards as they are; loose
files are grouped into virtual shards per directory, in name order, never splitting files that
share a stem, so the same listing always gives the same shards. A record is one image with what
travels beside it (a WebDataset sample's sidecars, a Parquet row's other columns). Anything that
cannot be read becomes a Failure in the stream instead of an exception, so it is reported once.
"""

import bz2
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
import fnmatch
import gzip
import hashlib
import json
import lzma
import posixpath
import re
import tarfile
from typing import BinaryIO, NamedTuple

from fsspec import AbstractFileSystem

from imagemend.model.core.pixels import IMAGE_SUFFIXES

from .options import InputOptions, OutputOptions
from .retry import Backoff, retryable
from .storage import UnsafeKey, escape_name, filesystem, inside, name_bytes, real_path, safe_key, to_uri

SHARD_SUFFIX = {"tar": ".tar", "parquet": ".parquet"}
HIDDEN = ".*"  # .DS_Store, ._IMG_0001.JPG, a writer's .partial temporaries: excluded unless --include-hidden
MAX_NAME = 255  # bytes of a file name on common filesystems (ext4, APFS, NTFS in UTF-16 units)
MAX_ID_NAME = 240  # bytes of one name in a shard id: metrics/<id>.parquet must stay within MAX_NAME
MAX_TAR_HEADER = 2**20  # bytes of a pax header or GNU long name, which tarfile reads whole: real ones take a few KB


@dataclass(frozen=True)
class Shard:
    id: str  # safe relative name: metrics/<id>.parquet, _done/<id>.json
    layout: str  # files | tar | parquet
    base: str  # URI of the input prefix that items are relative to
    items: tuple[str, ...]  # relative keys: one tar/parquet file, or the loose files of a virtual shard
    sizes: tuple[int, ...]
    versions: tuple[str, ...] = ()  # per item: ETag or modification time (file_version), from the listing

    @property
    def fingerprint(self) -> str:
        """Changes when the input prefix, the shard's members, their sizes or their versions change: a photo
        replaced by another of the same name and size makes its shard's done-marker stale, and the shard is redone."""
        h = hashlib.sha256(json.dumps([self.layout, self.base, self.items, self.sizes, self.versions]).encode())
        return h.hexdigest()[:20]

    def uri(self, item: str) -> str:
        return self.base.rstrip("/") + "/" + item

    @property
    def output(self) -> str:
        """A tar or Parquet shard's output name: its input name, escaped; its id where escaping made it too long."""
        name = escape_name(self.items[0])
        if len(posixpath.basename(name).encode()) <= MAX_NAME:
            return name
        return self.id + posixpath.splitext(name)[1]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, line: str) -> "Shard":
        d = json.loads(line)
        return cls(d["id"], d["layout"], d["base"], tuple(d["items"]), tuple(d["sizes"]), tuple(d.get("versions", ())))


@dataclass
class Record:
    shard: str
    index: int  # position in the shard: rows are written back in this order
    key: str
    uri: str
    data: bytes
    name: str  # file key or tar member name of the image (its extension follows a format change)
    extra: dict = field(default_factory=dict)  # tar: members of the sample; parquet: the row
    raw_key: bytes | None = None  # the key's bytes when the input name is not valid UTF-8 (key shows them as %XX)


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
    raw_key: bytes | None = None
    retryable: bool = False  # the store, the network or the disk failed, not the record: a rerun redoes it

    @classmethod
    def of(cls, rec: "Record", stage: str, exc: BaseException) -> "Failure":
        return cls(rec.shard, rec.index, rec.key, rec.uri, stage, type(exc).__name__, message(exc),
                   len(rec.data) if rec.data is not None else None, rec.raw_key,
                   stage in RETRY_STAGES and retryable(exc))


RETRY_STAGES = ("read", "write")  # decode failures stay final whatever their type (Pillow raises OSError too)


class RecordTooLarge(ValueError):
    """A record over --max-bytes: refused from its declared size, before its bytes are read."""


def too_large(what: str, size: int, limit: int, unread: str = "") -> RecordTooLarge:
    return RecordTooLarge(f"{what} is {size:,} bytes, over --max-bytes {limit:,}{unread}")


def message(exc: BaseException) -> str:
    """The exception's text without object addresses, so that reruns give identical error rows."""
    return re.sub(r"<[^<>]* at 0x[0-9a-fA-F]+>", "<data>", str(exc))[:2000]


# ---------------------------------------------------------------- listing

class NoInput(FileNotFoundError):
    """Nothing to do: the input URL matches no file (the command exits with status 2)."""


def _has_magic(path: str) -> bool:
    return any(c in path for c in "*?[")


def excluded(rel: str, globs: Iterable[str]) -> bool:
    """Whether a glob matches the key or one of its file or folder names ('*.xmp', 'raw/*', '_selects', '.*')."""
    names = [rel, *rel.split("/")]
    return any(fnmatch.fnmatchcase(n, g) for g in globs for n in names)


class Listed(NamedTuple):
    """A listed file: its size, and what changes when it is replaced (file_version)."""
    size: int
    version: str


# the first group a listing entry has: an object store's ETag, else local modification time and inode, else
# the object's update time (object stores without ETags) or creation time (fsspec's memory filesystem)
VERSION_FIELDS = (("ETag",), ("etag",), ("mtime", "ino"), ("LastModified",), ("updated",), ("created",))


def file_version(info: dict) -> str:
    """What changes when a file is replaced by another of the same name and size, read from its listing entry
    (no extra request per file): 'ETag="..."', 'mtime=...;ino=...'; '' where the filesystem tells nothing."""
    for group in VERSION_FIELDS:
        if any(info.get(k) is not None for k in group):
            return ";".join(f"{k}={info[k]}" for k in group if info.get(k) is not None)
    return ""


def list_files(url: str, storage_options: dict, exclude: str | None = None,
               globs: Iterable[str] = (HIDDEN,)) -> tuple[str, dict[str, Listed]]:
    """(base URI, {relative key: Listed}) for a prefix, a glob or one file: every file but those under `exclude`
    (a URI prefix, its symlinks resolved: the output) and those `globs` match; `_MG_1234.JPG` and `_selects/` are
    photos like any other. A local file is tested against `exclude` by its real path, so an output reached through
    a symlink inside the input is never read back as input."""
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
        if exclude and to_uri(fs, real_path(fs, p)).startswith(exclude.rstrip("/") + "/"):
            continue
        rel = p[len(base):].lstrip("/") if base else p
        if rel and not excluded(rel, globs):
            files[rel] = Listed(int(info.get("size") or 0), file_version(info))
    return to_uri(fs, base), files


def detect_layout(keys: Iterable[str]) -> str:
    """tar or parquet when the listing holds such shards and no loose images, else loose files."""
    keys = list(keys)
    images = any(k.lower().endswith(IMAGE_SUFFIXES) for k in keys)
    for layout, suffix in SHARD_SUFFIX.items():
        if not images and any(k.lower().endswith(suffix) for k in keys):
            return layout
    return "files"


def shard_id(rel: str) -> str:
    """A shard's name for its outputs: undecodable bytes as %XX, each name short enough for a suffix."""
    return "/".join(_bounded(p) for p in escape_name(rel).split("/"))


def _bounded(name: str) -> str:
    """A name of at most MAX_ID_NAME bytes: a longer one keeps its start and gains a digest of the whole."""
    raw = name.encode()
    if len(raw) <= MAX_ID_NAME:
        return name
    return raw[:MAX_ID_NAME - 13].decode("utf-8", "ignore") + "~" + hashlib.sha256(raw).hexdigest()[:12]


def _stem(key: str) -> str:
    d, name = posixpath.split(key)
    return posixpath.join(d, name.split(".", 1)[0])


def group_files(files: dict[str, Listed], base: str, per_shard: int) -> list[Shard]:
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
            sid = shard_id(f"{d}/part-{i:05d}" if d else f"part-{i:05d}")
            shards.append(Shard(sid, "files", base, tuple(chunk), tuple(files[k].size for k in chunk),
                                tuple(files[k].version for k in chunk)))
    return shards


class Listing(NamedTuple):
    layout: str
    shards: list[Shard]
    skipped: dict[str, int]  # files that are not inputs of the layout (notes.txt, Thumbs.db): extension -> count


def list_shards(inp: InputOptions, output: OutputOptions) -> Listing:
    """The layout, every shard of the input and the files skipped, listed once at the start of a run (the
    output is never listed as input)."""
    out_fs, out_root = filesystem(output.url, output.storage)
    out_real = real_path(out_fs, out_root)
    globs = (*inp.exclude, *(() if inp.include_hidden else (HIDDEN,)))
    base, files = list_files(inp.url, inp.storage, exclude=to_uri(out_fs, out_real), globs=globs)
    in_fs, in_base = filesystem(base, inp.storage)
    in_real = real_path(in_fs, in_base)
    if type(in_fs) is type(out_fs) and (in_real == out_real or inside(out_real, in_real)):
        raise ValueError(f"input {inp.url} lies inside output {output.url}")
    layout = detect_layout(files) if inp.layout == "auto" else inp.layout
    suffixes = IMAGE_SUFFIXES if layout == "files" else (SHARD_SUFFIX[layout],)
    inputs = {k: f for k, f in files.items() if k.lower().endswith(suffixes)}
    skipped = dict(sorted(Counter(posixpath.splitext(k)[1].lower() for k in files if k not in inputs).items()))
    if layout == "files":
        return Listing(layout, group_files(inputs, base, inp.files_per_shard), skipped)
    suffix = SHARD_SUFFIX[layout]
    return Listing(layout, [Shard(shard_id(k[: -len(suffix)]), layout, base, (k,), (f.size,), (f.version,))
                            for k, f in sorted(inputs.items())], skipped)


# ---------------------------------------------------------------- reading

def read_records(shard: Shard, fs: AbstractFileSystem, inp: InputOptions,
                 backoff: Backoff) -> Iterator[Record | Failure]:
    """Every record of a shard in order; a shard that breaks midway ends with one Failure. backoff retries
    the reads of loose files, one call per file (a tar or Parquet shard is read as one stream)."""
    if shard.layout == "files":
        yield from _read_files(shard, fs, inp.max_bytes, backoff)
    elif shard.layout == "tar":
        yield from _read_tar(shard, fs, inp.max_bytes)
    else:
        yield from _read_parquet(shard, fs, inp.parquet_image_column, inp.parquet_key_column, inp.max_bytes)


def _path(fs: AbstractFileSystem, shard: Shard, item: str) -> str:
    return fs._strip_protocol(shard.uri(item))


def _read_files(shard: Shard, fs: AbstractFileSystem, limit: int, backoff: Backoff) -> Iterator[Record | Failure]:
    for i, item in enumerate(shard.items):
        key, raw_key, uri = escape_name(item), name_bytes(item), escape_name(shard.uri(item))
        try:
            key = safe_key(key)
            data = backoff(_read_file, fs, _path(fs, shard, safe_key(item)), shard.sizes[i], limit)
        except Exception as e:  # a file that vanished, cannot be read or is too large is one record's failure
            yield Failure(shard.id, i, key, uri, "read", type(e).__name__, message(e), raw_key=raw_key,
                          retryable=retryable(e))
            continue
        yield Record(shard.id, i, key, uri, data, key, raw_key=raw_key)


def _read_file(fs: AbstractFileSystem, path: str, listed: int, limit: int) -> bytes:
    """The file's bytes; over the budget by its listed size it is never read, and a file that grew since the
    listing is read no further than the budget."""
    if listed > limit:
        raise too_large("file", listed, limit, " (size from the listing): not read")
    if listed:
        data = fs.cat_file(path, start=0, end=limit + 1)
    else:  # object stores refuse a range on an empty object; a file whose listing had no size reads up to the budget
        with fs.open(path, "rb") as f:
            data = f.read(limit + 1)
    if len(data) > limit:
        raise too_large("file", len(data), limit, " (grew since the listing)")
    return data


def sample_key(name: str) -> tuple[str, str]:
    """WebDataset grouping: 'dir/000123.left.jpg' -> ('dir/000123', 'left.jpg')."""
    d, base = posixpath.split(name)
    stem, _, ext = base.partition(".")
    return posixpath.join(d, stem), ext


class DuplicateMember(ValueError):
    """A member name seen earlier in the tar: its output would shadow the first one's."""


class TarStopped(tarfile.ReadError):
    """The tar's headers stop before the end of the file: the members after that point cannot be read."""


_WHOLE_HEADERS = (tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK, tarfile.XHDTYPE, tarfile.XGLTYPE,
                  tarfile.SOLARIS_XHDTYPE)  # headers tarfile reads whole into memory


class HeaderTooLarge(tarfile.InvalidHeaderError):
    """A pax header or GNU long name over MAX_TAR_HEADER: tarfile would read it whole into memory."""


class _Header(tarfile.TarInfo):
    """Remembers why tarfile stopped: at a garbage header it ends quietly, where GNU tar reports an error.
    Refuses the headers tarfile reads whole (pax, GNU long names) when they are larger than any real one."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except tarfile.HeaderError as e:
            tar.stopped_by = e
            raise

    def _proc_member(self, tar: tarfile.TarFile) -> tarfile.TarInfo:
        if self.type in _WHOLE_HEADERS and self.size > MAX_TAR_HEADER:
            raise HeaderTooLarge(f"{self.size:,}-byte extended header, over {MAX_TAR_HEADER:,}")
        return super()._proc_member(tar)


def _check_end(tar: tarfile.TarFile) -> None:
    """Raise TarStopped unless reading ended at the end of the archive (a zero block, or the file's end)."""
    e = getattr(tar, "stopped_by", None)
    if e is not None and not isinstance(e, (tarfile.EOFHeaderError, tarfile.EmptyHeaderError)):
        raise TarStopped(f"no valid tar header at byte {tar.offset} ({type(e).__name__}: {e})")


def _tar_sample(shard: Shard, index: int, raw_key: str, members: list, seen: set[str],
                limit: int) -> Record | Failure:
    """One WebDataset sample; unsafe, special, repeated or unread (too large) members or a missing image make it
    a failure."""
    key = escape_name(raw_key)
    uri = escape_name(shard.uri(shard.items[0])) + "#" + key
    names = [m.name for m, _ in members]
    unread = [m.name for m, d in members if d is None]
    try:
        for m, _ in members:
            safe_key(m.name)
            if not m.isfile():
                raise UnsafeKey(f"member {m.name!r} is a link or special file")
            if m.name in seen:
                raise DuplicateMember(f"member {m.name!r} appears earlier in the shard")
        if unread:
            raise too_large("sample", sum(m.size for m, _ in members), limit, f" (member {unread[0]!r} not read)")
        image = next((j for j, n in enumerate(names) if n.lower().endswith(IMAGE_SUFFIXES)), None)
        if image is None:
            raise LookupError(f"sample has no image member among {names}")
    except (UnsafeKey, DuplicateMember, RecordTooLarge, LookupError) as e:
        return Failure(shard.id, index, key, uri, "read", type(e).__name__, message(e),
                       None if unread else sum(len(d) for _, d in members), name_bytes(raw_key))
    return Record(shard.id, index, key, uri, members[image][1], names[image],
                  {"members": members, "image": image}, name_bytes(raw_key))


def _decompressed(f: BinaryIO) -> BinaryIO:
    """The tar inside a gzip, bzip2 or xz file, decompressed as it is read. These readers inflate no more than
    they are asked for, where tarfile's own stream mode inflates each block whole (a few KB of bzip2 can hold
    gigabytes), so skipping a large member streams through it in bounded memory."""
    head = f.read(6)
    f.seek(0)
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f, mode="rb")
    if head.startswith(b"BZh"):
        return bz2.BZ2File(f)
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(f)
    return f


def _member_data(tar: tarfile.TarFile, m: tarfile.TarInfo, budget: int) -> bytes | None:
    """A member's bytes, or None when its header size is over what is left of the sample's budget: it is then
    never read (the next header is reached by streaming past it)."""
    if not m.isfile():
        return b""
    return tar.extractfile(m).read() if m.size <= budget else None


def _read_tar(shard: Shard, fs: AbstractFileSystem, limit: int) -> Iterator[Record | Failure]:
    """Samples in order; member names escaped (as the output tar will hold them), a repeated name starts a
    new sample (which fails), and a tar whose headers stop early ends with a Failure for the rest."""
    uri = escape_name(shard.uri(shard.items[0]))
    index, key, members, seen = 0, None, [], set()
    try:
        with (fs.open(_path(fs, shard, shard.items[0]), "rb") as f,
              tarfile.open(fileobj=_decompressed(f), mode="r|", tarinfo=_Header) as tar):
            for m in tar:
                if m.isdir():
                    continue
                k, m.name = sample_key(m.name)[0], escape_name(m.name)
                if members and (k != key or any(m.name == n.name for n, _ in members)):
                    yield _tar_sample(shard, index, key, members, seen, limit)
                    seen.update(n.name for n, _ in members)
                    index, members = index + 1, []
                key = k
                members.append((m, _member_data(tar, m, limit - sum(len(d or b"") for _, d in members))))
            if members:
                yield _tar_sample(shard, index, key, members, seen, limit)
                index, members = index + 1, []
            _check_end(tar)
    except Exception as e:  # truncated or corrupt tar, or the store failed: the sample in hand and the rest are lost
        yield Failure(shard.id, index if members else None, escape_name(key) if members else None, uri, "read",
                      type(e).__name__, f"shard unreadable from record {index} on: {message(e)}",
                      raw_key=name_bytes(key) if members else None, retryable=retryable(e))


def _read_parquet(shard: Shard, fs: AbstractFileSystem, col: str, key_col: str,
                  limit: int) -> Iterator[Record | Failure]:
    import pyarrow.parquet as pq

    uri = escape_name(shard.uri(shard.items[0]))
    index = 0
    try:
        with fs.open(_path(fs, shard, shard.items[0]), "rb") as f:
            pf = pq.ParquetFile(f)
            if col not in pf.schema_arrow.names:
                raise KeyError(f"no image column {col!r} in {pf.schema_arrow.names}")
            for batch in pf.iter_batches(batch_size=16):
                for row in batch.to_pylist():
                    key = str(row[key_col]) if row.get(key_col) is not None else str(index)
                    yield _parquet_record(shard, index, key, f"{uri}#{key}", row, col, pf.schema_arrow, limit)
                    index += 1
    except Exception as e:
        yield Failure(shard.id, None, None, uri, "read", type(e).__name__,
                      f"shard unreadable from record {index} on: {message(e)}", retryable=retryable(e))


def _parquet_record(shard: Shard, index: int, key: str, uri: str, row: dict, col: str, schema,
                    limit: int) -> Record | Failure:
    """A row with image bytes is a record; a null image, a column of another type or a cell over the budget is
    that row's failure."""
    data = row[col]
    if data is None:
        why = row.get("error_message") or row.get("status") or "image column is null"
        return Failure(shard.id, index, key, uri, "read", "MissingImage", str(why))
    if not isinstance(data, bytes):
        return Failure(shard.id, index, key, uri, "read", "TypeError",
                       f"image column {col!r} is {schema.field(col).type}, not binary: {type(data).__name__} value")
    if len(data) > limit:
        e = too_large(f"image cell {col!r}", len(data), limit)
        return Failure(shard.id, index, key, uri, "read", type(e).__name__, message(e))
    return Record(shard.id, index, key, uri, data, key, {"row": row, "schema": schema})
