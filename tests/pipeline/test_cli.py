"""The `imagemend` command as a user starts it (cli.entry in a new process): what it prints reaches the
terminal and its exit status is main's, although it leaves without the C++ runtime's destructors."""

import subprocess
import sys


def imagemend(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imagemend.pipeline.cli", *args], capture_output=True, text=True,
                          timeout=600, cwd=cwd)


def test_the_command_flushes_its_output_and_keeps_mains_exit_status(tmp_path):
    out = imagemend("--version")
    assert out.returncode == 0 and out.stdout.startswith("imagemend ")
    missing = imagemend("run", "--input", str(tmp_path / "nothing"), "--output", str(tmp_path / "out"))
    assert missing.returncode == 2 and "no " in missing.stderr and not (tmp_path / "out").exists()
    assert imagemend("run", "--qualty", "9").returncode == 2


def test_the_demo_exits_0_every_time(tmp_path):
    """Left to the interpreter's teardown, the demo aborted (exit status 134) five runs in six here."""
    for i in range(3):
        out = imagemend("demo", "--output", str(tmp_path / f"demo{i}"), "--max-side", "64", "--no-progress")
        assert out.returncode == 0, out.stderr[-2000:]
        assert "restored" in out.stdout


def test_the_run_help_states_each_default_once_and_only_defaults_that_say_something():
    import re

    text = " ".join(imagemend("run", "--help").stdout.split())
    options = text.split("options:")[1].split("Every other")[0]
    flags = re.split(r" (?=--[a-z-]+ [A-Z_{]|--[a-z-]+ (?:[a-z]|\())", options)
    assert len(flags) > 30
    for f in flags:
        assert f.count("(default") <= 1, f
        assert not re.search(r"\(default: (None|False|True|\{\}|\[\]|\)|\(')", f), f
    assert "--tile TILE tile side in pixels (multiple of 8) (default: 1024)" in text
    assert "--parquet-key-column PARQUET_KEY_COLUMN a Parquet input's column of record keys" in text
