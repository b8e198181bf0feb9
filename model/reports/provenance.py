"""What produced a report: the command, the commit, the weights and the machine, for its header.

A number in docs/ is only worth something if it says how to get it again; every generated document
starts with these lines.
"""

import os
import platform
import shlex
import subprocess
import sys
import time

import torch

from ..evaluation.suites import Case

PLACEHOLDER = "untrained placeholder"


def commit() -> str:
    """The checked-out commit, with '+changes' when tracked files differ from it."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + (" +changes" if dirty else "")


def is_placeholder(restorer) -> bool:
    return restorer.meta.get("info", {}).get("note") == PLACEHOLDER


def weights_line(restorer, name: str) -> str:
    info = restorer.meta.get("info", {})
    if is_placeholder(restorer):
        what = f"**{PLACEHOLDER}: these numbers say nothing about the method**"
    elif "stages" in info:  # trained in stages and merged (MODEL_CARD.md)
        what = "trained in stages: " + ", ".join(f"{s.get('stage')} {s.get('steps')} steps" for s in info["stages"])
        what += f" on `{info['stages'][-1].get('data', '?')}`" + ("; calibrated" if "thresholds" in info else "")
    elif "steps" in info:
        what = f"trained {info['steps']} steps on `{info.get('data', '?')}`, tasks {', '.join(info.get('tasks', []))}"
    else:
        what = "no training record in the file"
    return f"`{name}`, sha256 `{restorer.weights_sha256}` ({what})"


def header(argv: list[str] | None, restorer, weights_name: str, cases: tuple[Case, ...], code: str) -> list[str]:
    """Markdown bullet lines: command, commit (`code`: commit() taken when the run started, since the
    checkout may move while it runs), weights, machine, date, cases."""
    argv = sys.argv[1:] if argv is None else argv
    lines = [f"- command: `imagemend {shlex.join(argv)}`", f"- commit: `{code}`"]
    if restorer is not None:
        lines.append(f"- weights: {weights_line(restorer, weights_name)}")
    lines += [f"- machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}, "
              f"Python {platform.python_version()}",
              f"- generated: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
              f"- cases: {', '.join(c.name for c in cases)}"]
    return lines
