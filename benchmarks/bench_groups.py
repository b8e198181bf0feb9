"""What pass 1 of grouping (pipeline/groups.py: each photo decoded again and its tone reading taken) costs
against the whole job (issue #21's target: at most 10 % of the job's time). Nothing here asserts a speed.

    PYTHONPATH=$PWD python benchmarks/bench_groups.py --images 40 --megapixels 0.25
    PYTHONPATH=$PWD python benchmarks/bench_groups.py --images 24 --megapixels 1 --model-free
    PYTHONPATH=$PWD python benchmarks/bench_groups.py --megapixels 12 --one-photo

--model-free gives the bound for a GPU, where the network's share of the job shrinks toward nothing: the photos
are clean and the JPEG noise floor is off, so the network runs on none of them and the job is what a GPU does not
speed up (reading, decoding, the readings every photo gets, encoding, writing). Pass 1's share of that job is at
least its share of any job that also runs the network.

N noisy photos (benchmarks/common.photo, JPEG quality 90) in one folder; the job (`imagemend.pipeline.job.run`, the
in-process FnApiRunner, as `imagemend run` starts it) runs into a fresh output with --group-by none and with
--group-by folder, alternately, `--repeats` times each; rows give the best wall time of each, their
difference, and pass 1's own thread-seconds (the `group_stats_ms` counter: reading, decoding, the reading
itself, the stats file), which overlap pass 2 only where the runner runs them at once. A rerun of the grouped
job on its finished output shows what a resume costs (kept readings, no photo decoded). Last, pass 1's two steps
for one photo on one thread: its decode and its reading (alone with --one-photo).
"""

import argparse
import io
import os
from pathlib import Path
import sys
import tempfile
import time

from common import best_of, photo
from PIL import Image
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--megapixels", type=float, default=0.25)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--model-free", action="store_true", help="clean photos, JPEG noise floor off: no network runs")
    ap.add_argument("--one-photo", action="store_true", help="only the last line: one photo's decode and reading")
    args = ap.parse_args()
    if args.one_photo:
        buf = io.BytesIO()
        Image.fromarray(photo(args.megapixels, seed=0, noise=0 if args.model_free else 8)).save(buf, "JPEG", quality=90)
        print_one_photo(buf.getvalue(), args.megapixels)
        return
    from imagemend.pipeline import job, options

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in" / "roll"
        src.mkdir(parents=True)
        for i in range(args.images):
            buf = io.BytesIO()
            Image.fromarray(photo(args.megapixels, seed=i, noise=0 if args.model_free else 8)).save(buf, "JPEG",
                                                                                                  quality=90)
            (src / f"{i:03d}.jpg").write_bytes(buf.getvalue())
        model = {"jpeg_noise_floor": 0.0} if args.model_free else {}
        best: dict[str, float] = {}
        pass1: dict[str, float] = {}
        for r in range(args.repeats):
            for by, overwrite in (("none", False), ("folder", False), ("folder", True)):
                row = by + (" (kept readings)" if overwrite else "")
                out = Path(tmp) / f"out-{by}-{r}"  # --overwrite: the grouped output just written, again
                opts = options.RunOptions.of(str(src.parent), str(out), group_by=by, progress=False,
                                             overwrite=overwrite, **model)
                t = time.perf_counter()
                summary = job.run(opts, options.beam_args([]))
                best[row] = min(best.get(row, 1e9), time.perf_counter() - t)
                ms = summary["beam_counters"].get("group_stats_ms", 0) / 1000
                pass1[row] = min(pass1.get(row, 1e9), ms)
                tasks = summary["tasks"]
        t = time.perf_counter()
        again = job.run(options.RunOptions.of(str(src.parent), str(out), group_by="folder", progress=False, **model),
                        options.beam_args([]))
        rerun = time.perf_counter() - t
        first = next(src.iterdir()).read_bytes()
    base = best["none"]
    print(f"{args.images} photos of {args.megapixels} MP in one folder, {os.cpu_count()} CPUs seen, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, best of {args.repeats}:")
    for row, sec in best.items():
        print(f"  --group-by {row:24} {sec:7.2f} s  {100 * (sec - base) / base:+6.1f} %  pass 1 thread-s "
              f"{pass1[row]:.2f} ({100 * pass1[row] / base:.1f} % of the ungrouped job)")
    print(f"  what the photos got (task: reason counts, last run): {tasks}")
    print(f"  finished rerun, grouped: {rerun:.2f} s, photos decoded by pass 1: "
          f"{again['beam_counters'].get('group_stats_read_photos', 0)}")
    print_one_photo(first, args.megapixels)


def print_one_photo(data: bytes, megapixels: float) -> None:
    decode_ms, reading_ms = one_photo(data)
    print(f"  one photo of {megapixels} MP, one thread, best of 5: decode {decode_ms:.1f} ms, its group reading "
          f"{reading_ms:.1f} ms")


def one_photo(data: bytes) -> tuple[float, float]:
    """Pass 1's two steps for one photo, in ms: its decode and its reading (the 256 px view and the cues)."""
    from imagemend.model.core import groups
    from imagemend.pipeline.decode import decode

    torch.set_num_threads(1)
    pixels = decode(data).pixels
    groups.photo_reading(pixels)  # the tone-cue table, read once
    return (1000 * best_of(lambda: decode(data), 5), 1000 * best_of(lambda: groups.photo_reading(pixels), 5))


if __name__ == "__main__":
    main()
