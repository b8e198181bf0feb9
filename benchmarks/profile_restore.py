"""Where a whole restore's time goes: the Python functions (cProfile) and the torch operations
(torch.profiler, host and device time) of restoring one photo, after a warm-up.

    python benchmarks/profile_restore.py --device cuda --megapixels 1 12

On a GPU a restore runs far below its U-Net (docs/PERFORMANCE.md): this says which parts issue the
operations that keep the host busy. Not a benchmark: the profilers slow what they watch.
"""

import argparse
import cProfile
import io
import pstats

from common import photo, restorer
import torch
from torch.profiler import ProfilerActivity, profile


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--megapixels", type=float, nargs="+", default=[1.0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=25)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    r = restorer(a.device, None)
    for mp in a.megapixels:
        img = photo(mp)
        r.restore([img])  # warm-up: kernels are picked per shape
        stats = io.StringIO()
        prof = cProfile.Profile()
        prof.runcall(r.restore, [img])
        pstats.Stats(prof, stream=stats).sort_stats("cumulative").print_stats(a.top)
        print(f"## {mp} MP: Python functions, by cumulative time\n{stats.getvalue()}")
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if a.device.startswith("cuda") else [])
        with profile(activities=activities) as tp:
            r.restore([img])
        ops = tp.key_averages()
        print(f"## {mp} MP: torch operations, {sum(e.count for e in ops)} calls\n")
        print(ops.table(sort_by="self_cpu_time_total", row_limit=a.top))
        if a.device.startswith("cuda"):
            print(ops.table(sort_by="self_device_time_total", row_limit=a.top))


if __name__ == "__main__":
    main()
