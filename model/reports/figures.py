"""The pictures in docs/: PSNR and speed charts, before/after contact sheets, estimator scatter plots.

Contact sheets show scikit-image's bundled sample photos only: the evaluation photos are
research-only and must never end up in the repository, so no function here is given them.
matplotlib (the `report` extra) is imported inside the functions that draw with it.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..evaluation.scoring import Method
from ..evaluation.suites import Case
from ..metrics import capped_psnr

SAMPLE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # scikit-image's own, licence-free photos
TILE = 128
COLOURS = ("#9e9e9e", "#64b5f6", "#e65100", "#ffb74d", "#7b1fa2")  # chart columns in order


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def sample_photo(name: str, side: int = TILE) -> np.ndarray:
    """A scikit-image sample photo, shrunk so its short side is `side`, centre-cropped square."""
    import skimage.data

    img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
    scale = side / min(img.size)
    img = img.resize((max(side, round(img.width * scale)), max(side, round(img.height * scale))),
                     Image.Resampling.LANCZOS)
    x, y = (img.width - side) // 2, (img.height - side) // 2
    return np.array(img.crop((x, y, x + side, y + side)))


def contact_sheet(case: Case, methods: list[Method], photos: list[str], path: Path) -> Path:
    """Rows: sample photos; columns: clean, damaged, then each method; PSNR under every tile."""
    font = ImageFont.load_default()
    label_h, gap = 26, 4
    cols = ["clean", "damaged", *[m.name for m in methods]]
    sheet = Image.new("RGB", (len(cols) * (TILE + gap) + gap, len(photos) * (TILE + label_h + gap) + 22 + gap),
                      "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((gap, 4), f"{case.name}: {case.describe()}", fill="black", font=font)
    for i, name in enumerate(photos):
        clean = sample_photo(name)
        damaged = case.apply(clean, f"skimage/{name}")
        tiles = [(clean, ""), (damaged, f"{capped_psnr(clean, damaged):.2f} dB")]
        for m in methods:
            out = m.run(damaged, case)
            tiles.append((out, f"{capped_psnr(clean, out):.2f} dB"))
        y = 22 + gap + i * (TILE + label_h + gap)
        for j, ((img, score), col) in enumerate(zip(tiles, cols)):
            x = gap + j * (TILE + gap)
            sheet.paste(Image.fromarray(img), (x, y))
            draw.text((x, y + TILE + 1), col[:22], fill="black", font=font)
            draw.text((x, y + TILE + 13), score, fill="#444444", font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


def psnr_chart(summary: dict, dataset: str, cases: list[str], columns: list[tuple[str, Callable]], path: Path) -> Path:
    """Grouped horizontal bars: mean PSNR per case for each column (label, pick(case) -> (method, row))."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(cases) * max(1, len(columns)) / 2.5 + 1.2))
    h = 0.8 / max(1, len(columns))
    for j, (label, pick) in enumerate(columns):
        ys, xs = [], []
        for i, case in enumerate(cases):
            row = pick(case)
            if row and row.get("psnr_mean") is not None:
                ys.append(i + j * h)
                xs.append(row["psnr_mean"])
        if not xs:  # e.g. no single-task model given: no empty entry in the legend
            continue
        ax.barh(ys, xs, height=h, label=label, color=COLOURS[j % len(COLOURS)])
    ax.set_yticks([i + 0.4 - h / 2 for i in range(len(cases))], cases)
    ax.invert_yaxis()
    ax.set_xlabel("mean PSNR, dB (higher is better)")
    lo = min((b.get_width() for b in ax.patches), default=0)
    ax.set_xlim(max(0, lo - 3), None)
    ax.set_title(dataset)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def speed_chart(speeds: dict[str, float], path: Path) -> Path:
    """Seconds per megapixel per method, log scale."""
    plt = _pyplot()
    names = sorted(speeds, key=speeds.get)
    fig, ax = plt.subplots(figsize=(6.5, 0.3 * len(names) + 1.0))
    ax.barh(names, [speeds[n] for n in names], color="#607d8b")
    ax.set_xscale("log")
    ax.set_xlabel("seconds per megapixel (log scale, lower is faster)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def estimator_scatter(readings: list, path: Path) -> Path:
    """Estimate against truth per task and source (model/evaluation/estimators.py readings)."""
    from ..evaluation.estimators import SOURCES, estimate

    plt = _pyplot()
    panels = (("denoise", "noise sigma", lambda v: v), ("exposure", "EV", lambda v: v),
              ("contrast", "log contrast factor", lambda v: v), ("cast", "log(gain R / gain B)", lambda v: v[0] - v[2]),
              ("deblur", "RMS blur radius, px", None))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.2))
    colours = {"model": "#e65100", "measure": "#1e88e5", "paired": "#43a047"}
    for ax, (task, unit, proj) in zip(axes, panels):
        mine = [r for r in readings if r.case.task == task or (task == "deblur" and r.case.task == "clean")]
        for s in SOURCES:
            pts = [(r, estimate(r, task, s)) for r in mine]
            pts = [(r, e) for r, e in pts if e is not None]
            if not pts or (task == "deblur" and s == "paired"):
                continue
            t = [proj(np.asarray(_truth(r.case, task))) if proj else r.case.truth["blur"] for r, _ in pts]
            if task == "deblur" and s == "measure":  # no unit of blur: Laplacian variance on its own axis
                twin = ax.twinx()
                twin.scatter(t, [-e for _, e in pts], s=6, alpha=0.5, color=colours[s], label="measure")
                twin.set_yscale("log")
                twin.set_ylabel("Laplacian variance (log)", fontsize=8)
                twin.legend(fontsize=7, loc="center right")
                continue
            e = [proj(np.asarray(e)) if proj else e for _, e in pts]
            ax.scatter(t, e, s=6, alpha=0.5, color=colours[s], label=s)
        if proj is not None:
            lim = [min(ax.get_xlim()[0], ax.get_ylim()[0]), max(ax.get_xlim()[1], ax.get_ylim()[1])]
            ax.plot(lim, lim, color="black", lw=0.6)
        ax.set_title(f"{task}: {unit}", fontsize=9)
        ax.set_xlabel("true", fontsize=8)
        ax.set_ylabel("estimated", fontsize=8)
        if ax.collections:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


def _truth(case: Case, task: str):
    from ..evaluation.estimators import truth

    return truth(case, task)
