"""Real camera photos in the quality report: noisy captures against references, and noisy photos alone.

Pairs (PolyU-style: `<name>_real.<ext>` beside `<name>_mean.<ext>`, the mean of many captures of the
same static scene) are scored like any case: PSNR, SSIM and CIEDE2000 of each method's output
against the reference. The classical methods are non-local means at every strength of a fixed
grid (the report quotes the best one: a strength chosen on the very photos it is scored on) and
BM3D told the sigma that scikit-image's wavelet estimator reads on each photo. The references
are also run as inputs: a restorer must leave a clean camera photo alone.

Noisy photos without a reference (RNI15) can only be looked at: contact sheets of each before and
after. They are research-only, so the sheets go to a folder git ignores and are never committed.
"""

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..core.restore import Restorer
from ..data import load_photos
from ..evaluation import baselines
from ..evaluation.scoring import Method, Score, ScoreCache, fingerprint, identity, model_version, score
from ..evaluation.suites import Case

REAL = Case("real-noise", "denoise", ())  # the damage is the camera's own: nothing is applied
NLM_STRENGTHS = (2.0, 3.0, 4.0, 5.0, 6.0)  # 8-bit sigma told to non-local means (h = 0.8 sigma)
SHEET_SIDE = 256


def load_pairs(url: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """key -> (noisy capture, reference) for every `*_real.*` with a `*_mean.*` beside it."""
    photos = load_photos(url)
    pairs = {}
    for key, img in photos.items():
        stem, _, ext = key.rpartition(".")
        if stem.endswith("_real") and (ref := photos.get(f"{stem[:-5]}_mean.{ext}")) is not None:
            pairs[key] = (img, ref)
    return pairs


def is_jpeg(key: str) -> bool:
    return key.lower().endswith((".jpg", ".jpeg"))


def bm3d_estimated(img: np.ndarray) -> np.ndarray:
    """BM3D told the noise sigma that the wavelet estimator (Donoho's MAD) reads on the photo."""
    from skimage.restoration import estimate_sigma

    sigma = 255 * float(estimate_sigma(img.astype(np.float64) / 255, channel_axis=-1, average_sigmas=True))
    return baselines.bm3d(img, max(sigma, 0.5))


def methods(r: Restorer, version: str, jpeg: bool, names: list[str] | None = None) -> list[Method]:
    """Input, non-local means per strength, BM3D (when installed), imagemend; `version` names the model,
    `names` the classical methods to run (default both, nl-means and bm3d)."""
    out = [identity()]
    if names is None or "nl-means" in names:
        version_nlm = fingerprint("nl-means", baselines)
        out += [Method(f"nl-means-{s:g}", "classical", lambda x, c, s=s: baselines.nl_means(x, s),
                       f"fixed sigma {s:g}", version_nlm) for s in NLM_STRENGTHS]
    bm3d = next(b for b in baselines.BASELINES if b.name == "bm3d")
    if bm3d.available and (names is None or "bm3d" in names):
        out.append(Method("bm3d-estimated", "classical", lambda x, c: bm3d_estimated(x), "",
                          fingerprint("bm3d-estimated", baselines)))
    out.append(Method("imagemend", "imagemend", lambda x, c: r.restore([x], jpeg=[jpeg])[0].image, "", version))
    return out


def score_pairs(pairs: dict[str, tuple[np.ndarray, np.ndarray]], chosen: list[Method], dataset: str,
                cache: ScoreCache | None = None, log: Callable[[str], None] = print) -> list[Score]:
    """Every method on every noisy capture against its reference; imagemend also on each reference
    (dataset `<dataset>-references`), scored against the reference itself."""
    scores = []
    for key, (noisy, ref) in pairs.items():
        for m, name, inp in [*((m, dataset, noisy) for m in chosen),
                             *((m, f"{dataset}-references", ref) for m in chosen if m.kind == "imagemend")]:
            s = cache.get(m, name, REAL.name, key, ("psnr", "ssim", "ciede2000")) if cache else None
            if s is None:
                s = score(m, REAL, ref, inp, key, name)
                if cache:
                    cache.put(m, s)
            scores.append(s)
        log(f"{dataset} {key}: " + " ".join(f"{s.method} {s.psnr:.2f}" for s in scores[-len(chosen) - 1:]
                                            if s.psnr is not None))
    return scores


def best_fixed_nlm(summary: dict, dataset: str) -> str | None:
    """The non-local means strength with the best mean PSNR over the set (chosen on the set itself);
    None where non-local means did not run."""
    rows = {m: v for (d, c, m), v in summary.items() if d == dataset and m.startswith("nl-means-")}
    return max(rows, key=lambda m: rows[m]["psnr_mean"] or -1) if rows else None


def noisy_sheet(r: Restorer, url: str, path: Path, side: int = SHEET_SIDE) -> Path:
    """Every photo under url before and after, a centre crop of `side` px each, the tasks applied
    and the noise reading under each pair."""
    photos = load_photos(url)
    font = ImageFont.load_default()
    gap, label = 4, 26
    cols = 2
    per_row = 3  # pairs per row
    rows = (len(photos) + per_row - 1) // per_row
    sheet = Image.new("RGB", (per_row * (cols * (side + gap) + 3 * gap) + gap, rows * (side + label + gap) + gap),
                      "white")
    draw = ImageDraw.Draw(sheet)
    for i, (key, img) in enumerate(photos.items()):
        res = r.restore([img], jpeg=[is_jpeg(key)])[0]
        h, w = img.shape[:2]
        y0, x0 = max(0, (h - side) // 2), max(0, (w - side) // 2)
        x = gap + (i % per_row) * (cols * (side + gap) + 3 * gap)
        y = gap + (i // per_row) * (side + label + gap)
        for j, tile in enumerate((img, res.image)):
            sheet.paste(Image.fromarray(tile[y0:y0 + side, x0:x0 + side]), (x + j * (side + gap), y))
        applied = ",".join(t for t, on in res.applied.items() if on) or "left alone"
        draw.text((x, y + side + 1), f"{key[:28]}  before | after", fill="black", font=font)
        draw.text((x, y + side + 13), f"{applied}; noise {res.estimates['noise_sigma']:.1f}", fill="#444444",
                  font=font)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, optimize=True)
    return path


def _by_key(scores: list[Score], dataset: str, method: str) -> dict[str, Score]:
    return {s.key: s for s in scores if s.dataset == dataset and s.method == method}


def section(scores: list[Score], summary: dict, dataset: str, url: str, sheets: list[tuple[str, Path]]) -> list[str]:
    """The report's "Real photos" section for one set of pairs, and the sheets of noisy photos."""
    inp, model = _by_key(scores, dataset, "input"), _by_key(scores, dataset, "imagemend")
    refs = _by_key(scores, f"{dataset}-references", "imagemend")
    nlm = best_fixed_nlm(summary, dataset)
    classical = [*([nlm] if nlm else []),
                 *(["bm3d-estimated"] if (dataset, REAL.name, "bm3d-estimated") in summary else [])]
    names = ["input", *classical, "imagemend"]
    lines = [f"## Real photos: {dataset} ({len(inp)} noisy captures from `{url}`)", "",
             "Each noisy capture against its reference (the mean of many captures of the same scene). "
             f"`nl-means-S` is non-local means at the best of the fixed strengths {', '.join(map(str, NLM_STRENGTHS))} "
             "(8-bit sigma S), chosen on these photos themselves; `bm3d-estimated` is BM3D told the sigma "
             "scikit-image's wavelet estimator reads on each photo. \"worse\" counts photos more than 0.2 dB "
             "below their input.", "",
             "| method | PSNR mean | PSNR worst | worst change | worse | SSIM mean | CIEDE2000 mean |",
             "|---|---|---|---|---|---|---|"]
    for m in names:
        rows = _by_key(scores, dataset, m)
        v = summary[(dataset, REAL.name, m)]
        delta = {k: rows[k].psnr - inp[k].psnr for k in rows}
        worst = min(delta, key=delta.get)
        lines.append(f"| {m} | {v['psnr_mean']:.2f} | {v['psnr_worst']:.2f} | {delta[worst]:+.2f} (`{worst}`) | "
                     f"{sum(d < -0.2 for d in delta.values())} | {v['ssim_mean']:.4f} | {v['ciede2000_mean']:.3f} |")
    gain = {k: model[k].psnr - inp[k].psnr for k in model}
    ref_worst = min(refs.values(), key=lambda s: s.psnr)
    mean = {m: summary[(dataset, REAL.name, m)]["psnr_mean"] for m in names}
    best = max(classical, key=mean.get, default=None)
    against = (f"; against the best classical method ({best}): **{mean['imagemend'] - mean[best]:+.2f} dB**"
               if best else "")
    lines += ["", f"- imagemend against the input: **{mean['imagemend'] - mean['input']:+.2f} dB** mean{against}",
              f"- worst photo: `{min(gain, key=gain.get)}`, {min(gain.values()):+.2f} dB against its input; "
              f"{sum(g > 0.2 for g in gain.values())} photos gain more than 0.2 dB, "
              f"{sum(abs(g) <= 0.2 for g in gain.values())} stay within 0.2 dB",
              f"- the {len(refs)} references run as inputs: mean {np.mean([s.psnr for s in refs.values()]):.2f} dB "
              f"against themselves, worst {ref_worst.psnr:.2f} dB (`{ref_worst.key}`), "
              f"{sum(s.psnr < 40 for s in refs.values())} below 40 dB", "",
              "The five photos imagemend changes most for the worse (or gains least on):", "",
              "| photo | input | imagemend | change |", "|---|---|---|---|"]
    for k in sorted(gain, key=gain.get)[:5]:
        lines.append(f"| `{k}` | {inp[k].psnr:.2f} | {model[k].psnr:.2f} | {gain[k]:+.2f} |")
    lines.append("")
    for url_noisy, path in sheets:
        lines += [f"Before and after of every photo in `{url_noisy}` (real noise, no reference): `{path}`. The "
                  "photos are research-only, so the sheet is written there and never committed (git ignores it); "
                  "rerun the command to see it.", ""]
    return lines


def main(argv: list[str] | None = None) -> None:
    """The real-photo evaluation alone (`imagemend report --real-pairs` puts the same section in QUALITY.md)."""
    import argparse
    import json

    import torch

    from ..core.weights import DEFAULT_WEIGHTS
    from ..evaluation.scoring import summarise

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pairs", required=True, help="noisy captures `*_real.*` beside references `*_mean.*`")
    p.add_argument("--noisy", action="append", default=[], help="noisy photos without reference: a sheet")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--out", required=True, help="folder for results.json and results.md (and the ignored sheets)")
    p.add_argument("--baselines", help="comma-separated subset of nl-means,bm3d")
    p.add_argument("--cache", help="JSON-lines score cache, as the report's")
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    r = Restorer(a.weights, device="cpu")
    pairs = load_pairs(a.pairs)
    name = Path(a.pairs.rstrip("/")).name

    version = model_version("imagemend", r)
    chosen = methods(r, version, all(map(is_jpeg, pairs)), a.baselines.split(",") if a.baselines else None)
    scores = score_pairs(pairs, chosen, name, ScoreCache(a.cache) if a.cache else None)
    out = Path(a.out)
    sheets = [(url, noisy_sheet(r, url, out / "real" / f"sheet-{Path(url.rstrip('/')).name}.png")) for url in a.noisy]
    summary = summarise(scores)
    text = "\n".join([f"Weights `{Path(a.weights).name}` (sha256 `{r.weights_sha256[:16]}`), "
                      f"torch {torch.__version__}, {a.threads} threads.", "",
                      *section(scores, summary, name, a.pairs, sheets)])
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps([{"dataset": k[0], "method": k[2], **v}
                                                  for k, v in summary.items()], indent=1))
    (out / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
