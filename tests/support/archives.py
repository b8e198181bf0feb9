"""Input archives in each layout the job reads (loose files, WebDataset tars, img2dataset Parquet), with the
outcome every record must have."""

from dataclasses import dataclass, field
import io
import json
import tarfile

from PIL import Image
import pyarrow as pa
import pyarrow.parquet as pq

from tests.support.images import animated, corrupt_jpeg, encode, pixels, sample_images
from tests.support.stores import Store


@dataclass
class Archive:
    """An input archive and the outcome every one of its records must have."""
    store: Store
    input: str  # URL given to --input
    layout: str
    good: dict[str, dict]  # key -> expected metrics fields (+ sidecars / carried columns)
    bad: dict[str, tuple[str, str | None]]  # key -> (stage, error_type or None)
    shards: int
    skipped: dict[str, int] = field(default_factory=dict)  # files listed but not inputs: extension -> count

    @property
    def records(self) -> int:
        return len(self.good) + len(self.bad)


def tar(members: list[tuple[str, bytes]]) -> bytes:
    """A GNU tar of (name, bytes) members, in that order, with a fixed mtime."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 1_700_000_000, 0o644
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def build_archive(store: Store, layout: str, prefix: str = "in", seed: int = 0) -> Archive:
    """The sample images and some broken records as `layout` ("files", "tar" or "parquet") under store/prefix."""
    images = sample_images(seed)
    good, bad = {}, {}
    if layout == "files":
        names = list(images)
        for i, name in enumerate(names):
            key = f"{'a' if i < 4 else 'b/c'}/{name}"
            store.put(prefix, key, images[name][0])
            good[key] = images[name][1]
        for key, data, stage, err in (("a/corrupt.jpg", corrupt_jpeg(seed), "decode", None),
                                      ("b/c/empty.png", b"", "decode", "EmptyImage"),
                                      ("a/anim.gif", animated("GIF"), "decode", "AnimatedImage")):
            store.put(prefix, key, data)
            bad[key] = (stage, err)
        store.put(prefix, "a/.hidden.jpg", images["rgb.jpg"][0])  # hidden: not an input
        store.put(prefix, "b/notes.txt", b"not an image")  # listed, counted as skipped, never decoded
        store.put(prefix, "_SUCCESS", b"")
        return Archive(store, store.join(prefix), layout, good, bad, shards=2, skipped={"": 1, ".txt": 1})
    if layout == "tar":
        shard0 = []
        for i, name in enumerate(["rgb.jpg", "grey.png", "photo.webp"]):
            key = f"{i:06d}"
            ext = name.split(".")[1]
            side = {"json": json.dumps({"i": i}).encode(), "txt": f"caption {i}".encode(), "cls": str(i).encode()}
            shard0 += [(f"{key}.{ext}", images[name][0])] + [(f"{key}.{e}", d) for e, d in side.items()]
            good[key] = {**images[name][1], "image_member": f"{key}.{ext}",
                         "sidecars": {f"{key}.{e}": d for e, d in side.items()}}
        shard0 += [("../../escape.jpg", images["rgb.jpg"][0]), ("broken.png", b"\x89PNG\r\n\x1a\n garbage"),
                   ("empty.jpg", b""), ("orphan.json", b"{}")]
        bad.update({"../../escape": ("read", "UnsafeKey"), "broken": ("decode", None),
                    "empty": ("decode", "EmptyImage"), "orphan": ("read", "LookupError")})
        shard1 = []
        for i, name in enumerate(["rgba.png", "deep.tif"], start=10):
            key = f"sub/{i:06d}"
            ext = name.split(".")[1]
            shard1 += [(f"{key}.{ext}", images[name][0]), (f"{key}.json", b'{"sub": true}')]
            good[key] = {**images[name][1], "image_member": f"{key}.{ext}",
                         "sidecars": {f"{key}.json": b'{"sub": true}'}}
        store.put(prefix, "shard-000000.tar", tar(shard0))
        store.put(prefix, "part/shard-000001.tar", tar(shard1))
        store.put(prefix, "README.md", b"not a shard")
        return Archive(store, store.join(prefix), layout, good, bad, shards=2, skipped={".md": 1})
    if layout == "parquet":
        for s, names in enumerate((["rgb.jpg", "cmyk.jpg", None, "corrupt"], ["grey.png", "photo.webp", "pal.gif"])):
            rows = []
            for i, name in enumerate(names):
                key = f"{s:05d}{i:04d}"
                data = images[name][0] if name in images else (None if name is None else corrupt_jpeg(seed))
                rows.append({"key": key, "jpg": data, "caption": f"caption {key}", "url": f"http://x/{key}",
                             "status": "failed_to_download" if name is None else "success",
                             "error_message": "HTTP 404" if name is None else None})
                if name in images:
                    good[key] = {**images[name][1], "carried": {k: v for k, v in rows[-1].items() if k != "jpg"}}
                else:
                    bad[key] = ("read", "MissingImage") if name is None else ("decode", None)
            buf = io.BytesIO()
            pq.write_table(pa.Table.from_pylist(rows), buf)
            store.put(prefix, f"{s:05d}.parquet", buf.getvalue())
            store.put(prefix, f"{s:05d}_stats.json", b"{}")  # img2dataset writes these beside
        return Archive(store, store.join(prefix, "*.parquet"), layout, good, bad, shards=2)
    raise ValueError(layout)


def build_tar_shards(store: Store, prefix: str, shards: int, samples: int, seed: int = 0) -> str:
    """`shards` WebDataset tars of `samples` small JPEG samples with a JSON sidecar each; returns --input."""
    for s in range(shards):
        members = []
        for i in range(samples):
            img = Image.fromarray(pixels(48 + 8 * (i % 3), 64, 3, seed + 100 * s + i))
            members += [(f"{s:03d}{i:04d}.jpg", encode(img, "JPEG", quality=85)),
                        (f"{s:03d}{i:04d}.json", json.dumps({"s": s, "i": i}).encode())]
        store.put(prefix, f"shard-{s:04d}.tar", tar(members))
    return store.join(prefix)
