"""`imagemend preview`: a static before/after page of a run, checked in a real headless browser."""

import json
from pathlib import Path
import shutil
import subprocess

import numpy as np
from PIL import Image
import pytest
from skimage import data
from skimage.feature import match_template

from imagemend.pipeline import cli
from imagemend.pipeline.preview import THUMB

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def archive(folder: Path) -> None:
    """A clean photo, a very noisy one and one in a sub-folder: the noisy one is the most changed."""
    rng = np.random.default_rng(0)
    photo = data.astronaut()[::2, ::2]
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(photo).save(folder / "clean.png")
    Image.fromarray(np.clip(photo + rng.normal(0, 30, photo.shape), 0, 255).astype(np.uint8)).save(folder / "noisy.png")
    Image.fromarray(data.coffee()[::2, ::2]).save(folder / "sub" / "coffee.png")


@pytest.fixture(scope="module")
def page(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("preview")
    archive(root / "in")
    cli.main(["run", "--input", str(root / "in"), "--output", str(root / "out"), "--no-progress"])
    cli.main(["preview", str(root / "out")])
    return root / "out" / "preview"


def test_the_page_lists_every_photo_most_changed_first_with_links_and_reasons(page):
    order = json.loads((page / "preview.json").read_text())
    assert [o["key"] for o in order][0] == "noisy.png" and len(order) == 3
    assert [o["change"] for o in order] == sorted((o["change"] for o in order), reverse=True)
    text = (page / "index.html").read_text()
    assert text.count('class="card"') == 3 and 'href="../images/noisy.png"' in text
    assert "ran: denoise" in text and "cast: disabled by weights" in text
    for o in range(3):
        for side in ("before", "after"):
            assert (page / "thumbs" / f"{o}-{side}.jpg").exists()


@pytest.mark.skipif(BROWSER is None, reason="needs a headless browser to render the page (Debian: apt-get install "
                                            "chromium); the page's content is checked without one above")
def test_a_headless_browser_shows_both_images_from_the_folder_without_a_server(page, tmp_path):
    shot = tmp_path / "shot.png"
    subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", f"--screenshot={shot}", "--window-size=1400,900",
                    (page / "index.html").as_uri()], check=True, capture_output=True, timeout=120)
    screen = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    first = json.loads((page / "preview.json").read_text())[0]["key"]
    assert first == "noisy.png"
    html = (page / "index.html").read_text()
    index = html.index('thumbs/')  # the first card's thumbnails, as the page names them
    n = html[index + len("thumbs/"):].split("-", 1)[0]
    for side in ("before", "after"):  # a patch of each thumbnail is found, drawn, in the screenshot
        thumb = np.asarray(Image.open(page / "thumbs" / f"{n}-{side}.jpg").convert("L"), dtype=np.float32)
        assert max(thumb.shape) <= THUMB
        patch = thumb[60:120, 120:200]
        assert match_template(screen, patch).max() > 0.95, side


def test_tar_shards_are_previewed_from_their_members(tmp_path):
    """Inputs name a sample (shard#key), outputs a member (shard#key.jpg): both are read back."""
    import io
    import tarfile

    rng = np.random.default_rng(1)
    (tmp_path / "in").mkdir()
    with tarfile.open(tmp_path / "in" / "shard-0000.tar", "w") as t:
        for i, img in enumerate([data.astronaut()[::2, ::2], data.coffee()[::2, ::2]]):
            buf = io.BytesIO()
            Image.fromarray(np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)).save(buf, "JPEG")
            for name, payload in ((f"{i:06d}.jpg", buf.getvalue()), (f"{i:06d}.json", b"{}")):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    cli.main(["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--no-progress"])
    cli.main(["preview", str(tmp_path / "out")])
    order = json.loads((tmp_path / "out" / "preview" / "preview.json").read_text())
    assert sorted(o["key"] for o in order) == ["000000", "000001"] and all(o["change"] > 1 for o in order)


def test_parquet_shards_are_previewed_from_their_cells(tmp_path):
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(2)
    rows = []
    for i, img in enumerate([data.astronaut()[::2, ::2], data.coffee()[::2, ::2]]):
        buf = io.BytesIO()
        Image.fromarray(np.clip(img + rng.normal(0, 25, img.shape), 0, 255).astype(np.uint8)).save(buf, "JPEG")
        rows.append({"key": f"{i:06d}", "jpg": buf.getvalue()})
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "00000.parquet")
    cli.main(["run", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out"), "--no-progress"])
    cli.main(["preview", str(tmp_path / "out")])
    order = json.loads((tmp_path / "out" / "preview" / "preview.json").read_text())
    assert sorted(o["key"] for o in order) == ["000000", "000001"] and all(o["change"] > 1 for o in order)
