"""benchmarks/bench_groups.py on three tiny photos: the harness runs and prints every row (never a speed)."""

from pathlib import Path
import subprocess
import sys

REPO = Path(__file__).resolve().parents[1]


def test_groups_benchmark_prints_each_row():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_groups.py"), "--images", "3",
                          "--megapixels", "0.02", "--repeats", "1"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("--group-by none", "--group-by folder", "(kept readings)", "finished rerun, grouped"):
        assert row in out.stdout, out.stdout
    assert "photos decoded by pass 1: 0" in out.stdout  # the rerun read the kept readings
