"""Restore images of any size, mode and depth with bounded memory.

An image is read twice, never converted whole: once strip by strip for the statistics grid
that the global branch turns into severities and a colour/tone correction, then tile by tile for
the local U-Net. The image is extended by a reflected border and cut into cores; each tile reads
its core plus a halo at least as wide as the U-Net's receptive field (82 px), so a tile's core
equals the untiled result to float precision and there is nothing to blend and no seam. A row
of tiles is corrected and written as soon as it is complete, so memory follows the tile size.
Tiles of several images share a forward pass up to a pixel budget.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
import math
from pathlib import Path

import numpy as np
import torch

from . import noise_level, tone_cues
from .color import LUMA
from .config import RestoreConfig, default_pixel_budget
from .deblur import deconvolve, edge_blur, wiener_kernel
from .net import ImagemendNet, correct_tone, identity_curve
from .noise_floor import noise_cap
from .pixels import white_level
from .stats import grid_stats
from .tasks import TASKS, THRESHOLD, TONE_TASKS
from .weights import DEFAULT_WEIGHTS, load_weights, pick_device

CPU = torch.device("cpu")
SEVERITY_KEYS = ("noise_sigma", "blur", "cast", "exposure_ev", "contrast", "gamma")


@dataclass
class Restored:
    image: np.ndarray  # same shape and dtype as the input
    estimates: dict[str, float]  # severities the global branch saw in the input
    applied: dict[str, bool]  # which tasks ran (a negligible severity leaves a task off)
    strengths: dict[str, float]
    reasons: dict[str, str]  # why each task ran or not (REASONS)
    # restore(after=True): severities read in the output, the edge blur only where deblur ran (left out
    # elsewhere, the dearest reading); an image nothing was applied to has its input's. Else None.
    estimates_after: dict[str, float] | None = None


# why a task ran or not, as the metrics' <task>_reason columns say it
REASONS = ("applied", "told by --assume", "group", "jpeg noise floor", "not requested", "disabled by weights",
           "below threshold", "grey image")
JPEG_FLOOR = REASONS[3]  # denoise ran at RestoreConfig.jpeg_noise_floor, above what was read


@dataclass
class _Planes:
    """An image as colour planes plus pass-through alpha, read in float without a full copy."""
    array: np.ndarray
    grey: bool
    alpha: int | None  # channel index of alpha
    scale: float

    @classmethod
    def of(cls, arr: np.ndarray) -> "_Planes":
        if not arr.dtype.isnative:  # e.g. big-endian 16-bit from a TIFF or a raw buffer
            arr = arr.astype(arr.dtype.newbyteorder("="))
        scale = white_level(arr.dtype)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or 0 in arr.shape:
            raise ValueError(f"unsupported image shape {arr.shape}; expected HxW or HxWxC with C in 1..4")
        c = arr.shape[2]
        return cls(arr, c <= 2, {2: 1, 4: 3}.get(c), scale)

    @property
    def height(self) -> int:
        return self.array.shape[0]

    @property
    def width(self) -> int:
        return self.array.shape[1]

    def read(self, rows, cols, device: torch.device = CPU) -> torch.Tensor:
        """(1, 3, h, w) float in [0, 1] on `device`, for slices or index arrays (a tile's reflected
        border). The host copies one box, as bytes for 8-bit pixels, and the index arrays pick from
        it on the device: on a GPU the host's fancy indexing of every tile was most of a restore, and
        its float conversions before that."""
        (rs, ri), (cs, ci) = _box(rows), _box(cols)
        px = self.array[rs, cs]
        t = _to_device(px[..., :1] if self.grey else px[..., :3], device)
        for dim, pick in ((0, ri), (1, ci)):
            if pick is not None:
                t = t.index_select(dim, torch.from_numpy(pick).to(device))
        t = t.permute(2, 0, 1)[None].float() / self.scale
        return (t.expand(1, 3, *t.shape[2:]) if self.grey else t).clamp(0, 1)

    def rows(self, device: torch.device) -> Callable[[int, int], torch.Tensor]:
        """A reader of whole rows [a, b), as the strip-by-strip readings take it."""
        return lambda a, b: self.read(slice(a, b), slice(None), device)

    def write(self, out: np.ndarray, r0: int, rgb: torch.Tensor) -> None:
        """Rounds (and turns grey) where rgb is, so only the output's own bytes come back from a GPU."""
        v = rgb[0].permute(1, 2, 0).clamp(0, 1)
        if self.grey:
            v = (v * torch.tensor(LUMA, dtype=v.dtype, device=v.device)).sum(-1, keepdim=True)
        if self.scale != 1.0:
            v = torch.floor(v * self.scale + 0.5).to(torch.uint8 if out.dtype == np.uint8 else torch.int32)
        n = 1 if self.grey else 3
        out[r0:r0 + v.shape[0], :, :n] = v.cpu().numpy().astype(out.dtype, copy=False)


def row_reader(pixels: np.ndarray, device: torch.device = CPU) -> tuple[Callable[[int, int], torch.Tensor], int, int]:
    """Whole rows [a, b) of an image as (1, 3, rows, W) floats on `device`, as the per-photo readings
    (grid statistics, edge blur) take them, and the image's height and width."""
    planes = _Planes.of(pixels)
    return planes.rows(device), planes.height, planes.width


def _to_device(px: np.ndarray, device: torch.device) -> torch.Tensor:
    """An (h, w, c) box of pixels as a tensor on `device`, 8-bit as bytes. For CUDA it is copied
    once into pinned memory and sent without blocking, so the host reads the next tile while this
    one travels (the caching host allocator keeps the buffer until the copy is done)."""
    px = px if px.dtype == np.uint8 else px.astype(np.float32)
    if device.type == "cuda":
        buf = torch.empty(px.shape, dtype=torch.uint8 if px.dtype == np.uint8 else torch.float32, pin_memory=True)
        buf.numpy()[...] = px
        return buf.to(device, non_blocking=True)
    px = np.ascontiguousarray(px)
    return torch.from_numpy(px if px.flags.writeable else px.copy())  # torch warns on read-only arrays


def _box(idx: slice | np.ndarray) -> tuple[slice, np.ndarray | None]:
    """The slice that holds an index array, and the indices into it (None where they are all of it)."""
    if isinstance(idx, slice):
        return idx, None
    lo, hi = int(idx.min()), int(idx.max()) + 1
    return slice(lo, hi), None if len(idx) == hi - lo and (np.diff(idx) == 1).all() else idx - lo


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * n - 2
    idx = np.abs(idx) % period
    return np.where(idx >= n, period - idx, idx)


def _cores(n: int, tile: int, border: int) -> tuple[int, list[tuple[int, int]]]:
    """Canvas length (image plus reflected border, a multiple of 8) and its partition into cores."""
    canvas = 8 * math.ceil((n + 2 * border) / 8)
    return canvas, [(s, min(s + tile, canvas)) for s in range(0, canvas, tile)]


@dataclass
class _Job:
    """One image in flight: its planes, decisions, tile grid and the tile row being assembled."""
    planes: _Planes
    est: dict[str, torch.Tensor]  # on the restorer's device, where its tiles are corrected
    strength: dict[str, float]
    out: np.ndarray
    rows: list[tuple[int, int]]
    cols: list[tuple[int, int]]
    canvas: tuple[int, int]
    border: int
    kernel: torch.Tensor | None = None  # Wiener deconvolution (model/core/deblur.py), else the sharpen head deblurs
    strip: torch.Tensor | None = None

    def window(self, r: int, c: int, halo: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """Canvas rows and columns a tile reads: its core plus up to `halo` px of context."""
        (y0, y1), (x0, x1) = self.rows[r], self.cols[c]
        return ((max(0, y0 - halo), min(self.canvas[0], y1 + halo)),
                (max(0, x0 - halo), min(self.canvas[1], x1 + halo)))

    def add(self, r: int, c: int, tile: torch.Tensor, halo: int) -> None:
        (y0, y1), (x0, x1) = self.rows[r], self.cols[c]
        (wy, _), (wx, _) = self.window(r, c, halo)
        if self.strip is None:
            self.strip = torch.empty(3, y1 - y0, self.canvas[1], device=tile.device)
        self.strip[:, :, x0:x1] = tile[:, y0 - wy:y1 - wy, x0 - wx:x1 - wx]
        if c == len(self.cols) - 1:  # the tile row is complete: correct and write its image rows
            b, p = self.border, self.planes
            a, e = max(y0, b), min(y1, b + p.height)
            if e > a:
                local = self.strip[None, :, a - y0:e - y0, b:b + p.width]
                tone = any(self.strength[t] > 0 for t in TONE_TASKS)  # else the sRGB round trip only costs
                p.write(self.out, a - b, correct_tone(local, self.est, self.strength) if tone else local)
            self.strip = None


class Restorer:
    """Loads the network once; restores lists of numpy images (HxW, HxWx1..4; uint8, uint16, float)."""

    def __init__(self, weights: str | Path | ImagemendNet = DEFAULT_WEIGHTS, device: str | None = None,
                 cfg: RestoreConfig = RestoreConfig(), amp: bool | None = None, compile: bool = False,
                 calibrated: bool = True, assume: Iterable[str] = ()):
        """assume: tasks whose damage the caller vouches for (an archive known to be underexposed):
        they keep cfg's own threshold instead of the weights' do-no-harm one, so clean photos in the
        batch get corrected too, and a tone task is read from the photo's statistics
        (model/core/tone_cues.py), not by the head that has to allow for undamaged photos."""
        if isinstance(weights, ImagemendNet):
            self.net, self.meta = weights, {"sha256": "in-memory", "info": {}}
        else:
            self.net, self.meta = load_weights(weights)
        self.device = pick_device(device)
        self.net = self.net.to(self.device).eval()
        self.amp = self.device.type == "cuda" if amp is None else amp
        # weights carry the thresholds calibrated for their own estimator (model/tools/calibrate.py),
        # set above every clean training photo's reading; a task the caller vouches for keeps cfg's
        assume = set(assume)
        self.assumed = frozenset(assume)
        if assume - set(TASKS):
            raise ValueError(f"unknown task(s) {sorted(assume - set(TASKS))} to assume; choose from {TASKS}")
        calibration = self.meta["info"].get("calibration", {})
        refused = (assume - set(TONE_TASKS)) & set(calibration.get("disabled", []))
        if refused:  # vouching for a damage cannot fix a head that misfires (told tone tasks do not use theirs)
            raise ValueError(f"these weights disable {sorted(refused)}: "
                             f"{calibration.get('reason', 'no reason recorded')}")
        self.told = [t for t in TONE_TASKS if t in assume]
        self.told_fits = tone_cues.load_table() if self.told else {}
        kept = {THRESHOLD[t] for t in assume}
        calibrated_thresholds = {k: v for k, v in self.meta["info"].get("thresholds", {}).items() if k not in kept}
        self.cfg = replace(cfg, **calibrated_thresholds) if calibrated else cfg
        # and the map from the noise head's reading to the Gaussian sigma it means (model/tools/calibrate.py)
        self.noise_curve = self.meta["info"].get("noise_curve") if calibrated else None
        if self.cfg.pixel_budget is None:
            self.cfg = replace(self.cfg, pixel_budget=default_pixel_budget(self.cfg, self.device.type))
        # channels-last lets cuDNN pick its fastest convolution kernels; on CPU it gains nothing here
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format
        self.net.local.to(memory_format=self.memory_format)
        if compile:
            self.net.local = torch.compile(self.net.local, dynamic=True)
        if cfg.tile % 8 or cfg.halo % 8:
            raise ValueError("tile and halo must be multiples of 8")

    @property
    def weights_sha256(self) -> str:
        return self.meta["sha256"]

    @torch.inference_mode()
    def _estimate(self, planes: list[_Planes], edges: list[bool] | None = None,
                  jpeg: list[bool] | None = None, tone: list[dict | None] | None = None) -> dict[str, torch.Tensor]:
        """edges: which images to read the edge blur of (default all; the others read NaN).
        jpeg: which were decoded from JPEG files (default none): their noise reading is not bounded
        by the flattest patches, which JPEG's quantisation flattens whatever the noise."""
        stats = [grid_stats(p.rows(self.device), p.height, p.width, self.net.cfg.thumb) for p in planes]
        est = {k: v.float().cpu() for k, v in self.net.estimate(torch.cat(stats)).items()}
        edges = [edge_blur(p.rows(self.device), p.height, p.width) if e else (math.nan, math.nan)
                 for p, e in zip(planes, edges or [True] * len(planes))]
        est["edge_blur"], est["edge_anisotropy"] = torch.tensor(edges, dtype=torch.float32).reshape(-1, 2).unbind(1)
        # the sigma the head's raw reading means (calibrated weights carry the map, model/tools/calibrate.py):
        # what is reported, thresholded and conditioned on
        raw = est["noise_sigma"]
        est["noise_sigma_read"] = read_sigma(raw, self.noise_curve) if self.noise_curve else raw
        if self.cfg.noise_cap:  # texture is not noise: the flat patches bound the reading (model/core/noise_floor.py)
            # read only where it can change something: from the denoise threshold up to noise_cap_below
            lo, hi = self.cfg.min_noise_sigma, self.cfg.noise_cap_below
            cap = torch.tensor([noise_cap(p.array, self.device) if lo <= r < hi and not j else math.inf
                                for p, r, j in zip(planes, est["noise_sigma_read"].tolist(),
                                                   jpeg or [False] * len(planes))], dtype=torch.float32)
            est["noise_sigma_cap"] = cap
            est["noise_sigma_read"] = torch.minimum(est["noise_sigma_read"], cap)
        if self.net.noise_reader is not None:  # camera noise, which the head cannot see (model/core/noise_level.py)
            readings = [noise_level.read(self.net.noise_reader, p.array, self.device) for p in planes]
            for key in readings[0] if readings else ():
                est[key] = torch.tensor([r[key] for r in readings], dtype=torch.float32)
            # it decides for JPEGs only, where the flat patches cannot bound the head: elsewhere fine texture
            # reads as noise to it (Set14's baboon 10.9) and the flat-patch bound keeps the head honest
            from_jpeg = torch.tensor(jpeg or [False] * len(planes))
            seen = (est["noise_rms"] >= self.cfg.min_camera_noise) & from_jpeg
            est["noise_sigma_read"] = torch.where(seen, torch.maximum(est["noise_sigma_read"], est["noise_rms"]),
                                                  est["noise_sigma_read"])
        if self.cfg.jpeg_noise_floor > 0 and any(jpeg or ()):  # camera noise no reading sees (RestoreConfig)
            floor = torch.tensor([self.cfg.jpeg_noise_floor if j else 0.0 for j in jpeg])
            est["noise_sigma_read"] = torch.maximum(est["noise_sigma_read"], floor)
        for i, p in enumerate(planes if self.told else []):  # vouched for: how strong, from the statistics
            _tell(est, i, tone_cues.read(p.array, self.told, self.told_fits))
        for i, told in enumerate(tone or []):  # the group's damages (model/core/groups.py) stand where given
            if told:
                _tell(est, i, _as_read(told, planes[i].array))
        return est

    def estimate(self, images: list[np.ndarray], edges: list[bool] | None = None,
                 jpeg: list[bool] | None = None) -> list[dict[str, float]]:
        """Severities only (no restoration): cheap, used to measure an output as well as an input.
        edges=False for an image leaves out its edge blur reading (NaN), the dearest of them."""
        est = self._estimate([_Planes.of(a) for a in images], edges, jpeg)
        return [severities(est, i) for i in range(len(images))]

    def _decide(self, sev: dict[str, float], tasks: dict[str, float], grey: bool,
                group: Iterable[str] = (), jpeg: bool = False) -> tuple[dict, dict, dict]:
        big = needs(sev, self.cfg, grey) | {t: t != "cast" or not grey for t in group}  # the group decided
        applied = {t: bool(big[t] and tasks.get(t, 0.0) > 0) for t in TASKS}
        strength = {t: float(tasks.get(t, 0.0)) if applied[t] else 0.0 for t in TASKS}
        # a soft onset (RestoreConfig.denoise_onset), except where the camera-noise reader decided (its own threshold)
        camera = sev.get("noise_rms", 0.0) >= self.cfg.min_camera_noise and sev["noise_sigma"] == sev["noise_rms"]
        if applied["denoise"] and self.cfg.denoise_onset > 0 and not camera:
            t = self.cfg.min_noise_sigma
            strength["denoise"] *= min(1.0, (sev["noise_sigma"] - t) / (self.cfg.denoise_onset * t))
            applied["denoise"] = strength["denoise"] > 0  # at the threshold itself: nothing to do
        if applied["exposure"] and self.cfg.exposure_past_threshold and "exposure" not in group \
                and "exposure" not in self.assumed:  # blind: only what no clean photo's key explains
            ev = abs(sev["exposure_ev"])
            strength["exposure"] *= max(0.0, ev - self.cfg.min_exposure) / ev
            applied["exposure"] = strength["exposure"] > 0
        floor = jpeg and 0 < sev["noise_sigma"] <= self.cfg.jpeg_noise_floor  # the floor, not a reading, decided
        return applied, strength, {t: self._reason(t, applied[t], tasks, grey, t in group, floor) for t in TASKS}

    def _reason(self, task: str, applied: bool, tasks: dict[str, float], grey: bool, group: bool = False,
                floor: bool = False) -> str:
        if applied:
            if task == "denoise" and floor:
                return JPEG_FLOOR
            return "group" if group else "told by --assume" if task in self.assumed else "applied"
        if tasks.get(task, 0.0) <= 0:
            return "not requested"
        if math.isinf(getattr(self.cfg, THRESHOLD[task])) and task not in self.assumed:
            return "disabled by weights"
        return "grey image" if task == "cast" and grey else "below threshold"

    def _tiles(self, jobs: list[_Job]) -> Iterator[tuple[int, int, int, torch.Tensor]]:
        """Tiles in an order that batches well: images of one size advance tile by tile together,
        so the same tile position of each (the same shape) is consecutive; each image still
        receives its tiles row by row, so only one strip per image is held."""
        groups: dict[tuple[int, int], list[int]] = {}
        for j, job in enumerate(jobs):
            groups.setdefault(job.canvas, []).append(j)
        for group in groups.values():
            first = jobs[group[0]]
            for r in range(len(first.rows)):
                (y0, y1), _ = first.window(r, 0, self.cfg.halo)
                rows = {j: _reflect(np.arange(y0 - jobs[j].border, y1 - jobs[j].border), jobs[j].planes.height)
                        for j in group}
                for c in range(len(first.cols)):
                    _, (x0, x1) = first.window(r, c, self.cfg.halo)
                    for j in group:
                        p, b = jobs[j].planes, jobs[j].border
                        yield j, r, c, p.read(rows[j], _reflect(np.arange(x0 - b, x1 - b), p.width), self.device)

    def restore_one(self, image: "ImageLike", tasks: dict[str, float] | None = None,
                    jpeg: bool | None = None) -> Restored:
        """One image: a NumPy array (HxW or HxWxC), a PIL image or a path (its JPEG-ness read from the file)."""
        return self.restore([image], tasks, None if jpeg is None else [jpeg])[0]

    @torch.inference_mode()
    def restore(self, images: "list[ImageLike]", tasks: dict[str, float] | None = None,
                jpeg: list[bool] | None = None, tone: list[dict | None] | None = None,
                after: bool = False) -> list[Restored]:
        """A list of images (arrays, PIL images or paths; for one, `restore_one`). tasks maps task ->
        strength (0 switches a task off); default: every task at full strength. jpeg: which images
        were decoded from JPEG files (what the pixels alone tell less surely); by default read from
        the files and PIL images, False for arrays. tone: per image, tone damages its group read
        (model/core/groups.py GroupDecision.tone: cast as log R/G and log B/G, exposure in EV, contrast as
        a log factor) or None; they are applied as told readings are, with the reason "group". after: also
        read the outputs' severities, as `estimate` would (Restored.estimates_after), in the same call."""
        tasks = {t: 1.0 for t in TASKS} if tasks is None else tasks
        unknown = set(tasks) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {TASKS}")
        if is_one_image(images):
            raise TypeError("restore() takes a list of images; for one image use restore_one(image)")
        read = [as_array(x) for x in images]
        images, jpeg = [a for a, _ in read], jpeg if jpeg is not None else [j for _, j in read]
        planes = [_Planes.of(a) for a in images]
        if not planes:
            return []
        est = self._estimate(planes, jpeg=jpeg, tone=tone)
        jobs, results = [], []
        for i, p in enumerate(planes):
            sev = severities(est, i)
            applied, strength, reasons = self._decide(sev, tasks, p.grey, tone[i] or {} if tone else (),
                                                      jpeg=bool(jpeg and jpeg[i]))
            out = images[i].copy()
            results.append(Restored(out, sev, applied, strength, reasons))
            if not any(applied.values()):
                continue  # nothing to repair: the photo comes back exactly as it came
            b = self.cfg.border
            (ch, rows), (cw, cols) = _cores(p.height, self.cfg.tile, b), _cores(p.width, self.cfg.tile, b)
            one = {k: v[i:i + 1].to(self.device) for k, v in est.items()}
            wiener = applied["deblur"] and deconvolves(sev, self.cfg)
            kernel = wiener_kernel(sev["edge_blur"]).to(self.device) if wiener else None
            jobs.append(_Job(p, one, strength, out.reshape(p.array.shape), rows, cols, (ch, cw), b, kernel))
        self._run_tiles(jobs)
        if after:
            self._read_after(results)
        return results

    def _read_after(self, results: list[Restored]) -> None:
        """Restored.estimates_after: the outputs that changed are read again (edges only where deblur ran)."""
        changed = [r for r in results if any(r.applied.values())]
        est = self.estimate([r.image for r in changed], [r.applied["deblur"] for r in changed]) if changed else []
        for r, e in zip(changed, est):
            r.estimates_after = {k: v for k, v in e.items() if not math.isnan(v)}
        for r in results:
            r.estimates_after = r.estimates if r.estimates_after is None else r.estimates_after

    def _run_tiles(self, jobs: list[_Job]) -> None:
        budget = [self.cfg.pixel_budget]  # this call's: halved on out-of-memory (_local), never the shared cfg
        batch: list[tuple[int, int, int, torch.Tensor]] = []
        for item in self._tiles(jobs):
            if batch and (item[3].shape != batch[0][3].shape
                          or (len(batch) + 1) * item[3][0, 0].numel() > budget[0]):
                self._forward(jobs, batch, budget)
                batch = []
            batch.append(item)
        if batch:
            self._forward(jobs, batch, budget)

    def _forward(self, jobs: list[_Job], batch: list, budget: list[int]) -> None:
        pick = [jobs[j] for j, *_ in batch]
        y = torch.cat([t for *_, t in batch])
        strengths = [[job.strength["denoise"], job.strength["deblur"] if job.kernel is None else 0.0] for job in pick]
        cond = torch.cat([torch.cat([job.est["noise_sigma_read"] for job in pick])[:, None],
                          torch.cat([job.est["blur"] for job in pick])[:, None],
                          torch.tensor(strengths, device=self.device)], 1)
        sharpen = any(row[1] > 0 for row in strengths)  # else the U-Net skips its sharpen head
        out = self._local(y, cond, sharpen, budget) if any(v > 0 for row in strengths for v in row) else y
        wiener = [i for i, job in enumerate(pick) if job.kernel is not None]
        if wiener:  # after denoising: noise came after blur
            sharp = deconvolve(out[wiener], torch.stack([pick[i].kernel for i in wiener]))
            s = torch.tensor([pick[i].strength["deblur"] for i in wiener], device=out.device).view(-1, 1, 1, 1)
            out = out.clone()
            out[wiener] += s * (sharp - out[wiener])
        for (j, r, c, _), tile in zip(batch, out):
            jobs[j].add(r, c, tile, self.cfg.halo)

    def _local(self, y: torch.Tensor, cond: torch.Tensor, sharpen: bool, budget: list[int]) -> torch.Tensor:
        """Denoise and sharpen a batch of tiles (on the device, where the tone correction and rounding
        follow); on CUDA out-of-memory, halve the batch and this call's budget (the restore's threads
        share self.cfg, which never changes) and go on. The halves run after the handler
        has ended: until then the exception's traceback holds the failed pass's activations (on a
        GPU capped at 400 MiB, halving inside the handler ran out of memory down to one tile)."""
        try:
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                r_n, r_b = self.net.local(y.contiguous(memory_format=self.memory_format), cond[:, 0], cond[:, 1],
                                          sharpen)
            s_n, s_b = cond[:, 2, None, None, None], cond[:, 3, None, None, None]
            return y + s_n * r_n.float() + s_b * r_b.float() if sharpen else y + s_n * r_n.float()
        except torch.cuda.OutOfMemoryError:
            if len(y) == 1:
                raise
        torch.cuda.empty_cache()
        budget[0] = max(1, budget[0] // 2)
        h = len(y) // 2
        return torch.cat([self._local(y[:h], cond[:h], sharpen, budget),
                          self._local(y[h:], cond[h:], sharpen, budget)])


ImageLike = np.ndarray | str | Path  # or a PIL image


def _tell(est: dict[str, torch.Tensor], i: int, told: dict) -> None:
    """Image i's estimates overwritten by told tone damages, as tone_cues.read gives them (cast as log gains,
    exposure in EV, contrast as a log factor around mean_luma): read by --assume, or a group's (_as_read)."""
    if "cast" in told:
        est["cast_log_gain"][i] = told["cast"]
    if "exposure" in told:
        est["exposure_ev"][i] = told["exposure"]
    if "contrast" in told:
        est["contrast"][i] = told["contrast"]
        est["curve"][i] = tone_cues.undo_contrast_curve(told["contrast"], told["mean_luma"], est["curve"].shape[1])


def _as_read(told: dict, pixels: np.ndarray) -> dict:
    """A group's told damages (GroupDecision.tone: cast as log R/G and log B/G) as tone_cues.read gives them."""
    out = {t: float(v) for t, v in told.items() if t != "cast"}
    if "cast" in told:
        out["cast"] = tone_cues.chroma_to_log_gains(np.asarray(told["cast"], dtype=np.float64))
    if "contrast" in told:
        out["mean_luma"] = tone_cues.mean_luma(tone_cues.rgb_view(pixels))
    return out


def is_one_image(x) -> bool:
    """An array, a PIL image, a path or a tensor where a list of images belongs (iterating an HxWx3
    array would restore each of its rows as an image)."""
    return isinstance(x, np.ndarray | str | Path | torch.Tensor) or hasattr(x, "getexif")


def as_array(image) -> tuple[np.ndarray, bool]:
    """Pixels of an array, a PIL image or an image file, and whether they came from a JPEG."""
    if isinstance(image, np.ndarray):
        return image, False
    if isinstance(image, torch.Tensor):
        raise TypeError("a torch tensor is not taken as an image: pass an HxWxC NumPy array (tensor.permute(1, 2, "
                        "0).numpy() for a CHW one)")
    from PIL import Image, ImageOps

    if isinstance(image, str | Path):
        with Image.open(image) as img:
            return as_array(ImageOps.exif_transpose(img) if img.getexif() else img.copy())[0], img.format == "JPEG"
    if not hasattr(image, "getexif"):
        raise TypeError(f"not an image: {type(image).__name__} (pass a NumPy array, a PIL image or a path)")
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I;16"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    return np.asarray(image), image.format == "JPEG"


def needs(sev: dict[str, float], cfg: RestoreConfig, grey: bool = False) -> dict[str, bool]:
    """Which tasks an image needs: those whose estimated severity reaches the task's threshold."""
    return {"denoise": sev["noise_sigma"] >= cfg.min_noise_sigma,
            "deblur": sev["blur"] >= cfg.min_blur or deconvolves(sev, cfg),
            "cast": sev["cast"] >= cfg.min_cast and not grey, "exposure": abs(sev["exposure_ev"]) >= cfg.min_exposure,
            "contrast": sev["contrast_curve"] >= cfg.min_contrast}


def deconvolves(sev: dict[str, float], cfg: RestoreConfig) -> bool:
    """Whether the edges show a Gaussian-like blur to deconvolve (else the sharpen head deblurs).
    Never in a photo that reads as noisy: its edges are read through the noise, and a soft noisy
    camera photo deconvolved turns its noise into mottle."""
    return (sev["edge_blur"] >= cfg.min_edge_blur and sev["edge_anisotropy"] <= cfg.max_anisotropy
            and sev["noise_sigma"] < cfg.min_noise_sigma)


def _through(v: torch.Tensor, xs: list[float], ys: list[float]) -> torch.Tensor:
    """Piecewise-linear map through knots (xs -> ys), continued with slope 1 beyond the last."""
    a = v.numpy()
    return torch.from_numpy(np.where(a > xs[-1], ys[-1] + a - xs[-1], np.interp(a, xs, ys)).astype(np.float32))


def read_sigma(raw: torch.Tensor, curve: dict[str, list[float]]) -> torch.Tensor:
    """Raw noise readings -> sigma through the calibrated knots (model/tools/calibrate.py)."""
    return _through(raw, curve["raw"], curve["sigma"])


def severities(est: dict[str, torch.Tensor], i: int) -> dict[str, float]:
    """Plain numbers for one image: noise sigma (8-bit), blur (px), cast (max |log gain|), EV,
    log contrast factor, log gamma, and how far the tone curve departs from identity."""
    curve = est["curve"][i:i + 1]
    g = est["cast_log_gain"][i]
    return {
        "noise_sigma": float(est["noise_sigma_read"][i]), "blur": float(est["blur"][i]),
        "edge_blur": float(est["edge_blur"][i]), "edge_anisotropy": float(est["edge_anisotropy"][i]),
        # the flat patches' bound only where it was read (not in a JPEG, nor outside the readings it can change)
        **({"noise_sigma_cap": float(est["noise_sigma_cap"][i])}
           if "noise_sigma_cap" in est and math.isfinite(float(est["noise_sigma_cap"][i])) else {}),
        **{k: float(est[k][i]) for k in est  # a brightness bin with no patch has no level: left out
           if (k.startswith("noise_level_") or k == "noise_rms") and not math.isnan(float(est[k][i]))},
        "cast": float(g.abs().max()), "cast_r": float(g[0]), "cast_g": float(g[1]), "cast_b": float(g[2]),
        "exposure_ev": float(est["exposure_ev"][i]), "contrast": float(est["contrast"][i]),
        "gamma": float(est["gamma"][i]),
        "contrast_curve": float((curve - identity_curve(curve)).abs().max()),
    }
