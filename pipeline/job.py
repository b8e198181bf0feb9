"""`imagemend run` on the launcher's side: list the shards, say what will happen, run the graph, report.

Listing happens here, once, so that an empty or mistyped input fails before any worker starts and
the plan (shards found, finished earlier, to do) is printed up front. What can fail before the job
starts fails here, in one line: a device the launching machine lacks when the job runs on it, an
input that cannot be listed, an output that cannot be written (LaunchFailed). Record-level failures never
fail the job: they are rows in errors/. The job fails, and the command exits non-zero, only when
the runner reports that the pipeline itself failed. Records that the store, the network or the disk failed
after retries are left for a rerun (`left` in the summary): the command then exits 75 (EX_TEMPFAIL).
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
import logging
import random
import sys
import time

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from imagemend.model.core.tasks import TASKS
from imagemend.model.core.weights import DEFAULT_WEIGHTS, recorded_digest, recorded_info

from . import graph, groups, lease, options, progress, reconcile
from .infer import model_name
from .options import ModelOptions, OutputOptions, RunOptions
from .shard import Hooks
from .sinks import OutputPaths, finished_shards, forget_finished, keep_settings, read_json, write_json, write_manifest
from .sources import NoInput, Shard, list_shards
from .storage import clean_partials, filesystem, to_uri

LOG = logging.getLogger("imagemend")


class JobFailed(RuntimeError):
    """The runner reports that the pipeline failed (the command exits with status 1)."""


class LaunchFailed(RuntimeError):
    """The input could not be listed or the output prepared, before the job started (exit status 1)."""


__all__ = ["EX_TEMPFAIL", "JobFailed", "LaunchFailed", "NoInput", "add_arguments", "finish", "left_behind", "main",
           "report", "run"]
EX_TEMPFAIL = 75  # sysexits.h: a temporary failure, the same command will finish the work
LOCAL_RUNNERS = {"fnapirunner", "directrunner", "bundlebaseddirectrunner", "switchingdirectrunner"}


def _store_errors() -> tuple[type[BaseException], ...]:
    """OSError, and what object-store clients raise outside it (botocore: unreachable endpoint, credentials)."""
    try:
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return (OSError,)
    return (OSError, BotoCoreError)


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}: {e.filename}" if e.filename else e.strerror
    return str(e) or type(e).__name__


@contextmanager
def _launch_step(what: str) -> Iterator[None]:
    """Storage errors of a launch step as one LaunchFailed line instead of a client's traceback."""
    try:
        yield
    except NoInput:
        raise
    except _store_errors() as e:
        raise LaunchFailed(f"{what}: {_reason(e)}") from e


def runs_here(beam_argv: list[str]) -> bool:
    """Whether the workers are this process (local runners, or a portable runner's LOOPBACK environment)."""
    from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

    options = PipelineOptions(beam_argv)
    runner = options.view_as(StandardOptions).runner
    runner = runner if isinstance(runner, str) else type(runner).__name__
    return (runner or "").lower() in LOCAL_RUNNERS or options.view_as(PortableOptions).environment_type == "LOOPBACK"


def in_this_process(beam_argv: list[str]) -> bool:
    """Whether the workers are this process's own threads (not worker processes): a bar can count them."""
    from apache_beam.options.pipeline_options import DirectOptions

    mode = PipelineOptions(beam_argv).view_as(DirectOptions).direct_running_mode
    return runs_here(beam_argv) and mode in (None, "in_memory")


def check_device(device: str, beam_argv: list[str]) -> None:
    """A CUDA device the job cannot have, refused before listing: otherwise every worker fails inside Beam.
    Only where the job runs in this process; a cluster's workers have their own GPUs."""
    if not device.startswith("cuda") or not runs_here(beam_argv):
        return
    import torch

    index = int(device.partition(":")[2] or 0)
    if not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine, where the job runs "
                         "(use --device auto or cpu)")
    if index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")


def sample(shards: list[Shard], n: int, seed: int) -> list[Shard]:
    """A seeded sample: n loose files (their shards keep only those, so a shard's fingerprint changes and a
    later full run redoes it whole), or n whole tar/Parquet shards (their records are not counted yet)."""
    rng = random.Random(seed)
    if shards[0].layout != "files":
        return sorted(rng.sample(shards, min(n, len(shards))), key=lambda s: s.id)
    every = [(i, j) for i, s in enumerate(shards) for j in range(len(s.items))]
    chosen = sorted(rng.sample(every, min(n, len(every))))
    out = []
    for i, s in enumerate(shards):
        keep = [j for k, j in chosen if k == i]
        if keep:
            out.append(replace(s, items=tuple(s.items[j] for j in keep), sizes=tuple(s.sizes[j] for j in keep),
                               versions=tuple(s.versions[j] for j in keep) if s.versions else ()))
    return out


def pipeline_for(beam_argv: list[str]) -> beam.Pipeline:
    """The Beam pipeline with its runner made: a runner whose package is missing (DataflowRunner without the
    `dataflow` extra) is a one-line launch failure."""
    try:
        return beam.Pipeline(options=PipelineOptions(beam_argv))
    except ImportError as e:
        hint = (" (the Dataflow runner comes with the `dataflow` extra: pip install -e \".[dataflow]\" -c "
                "constraints.txt)") if "dataflow" in str(e).lower() else ""
        raise LaunchFailed(f"the runner cannot start: {e}{hint}") from e


def warn_disabled(model: ModelOptions) -> None:
    """A task asked for by name (--tasks) that the weights keep off, said before the job rather than found
    in the metrics; the default, every task, does not warn."""
    if model.strengths == {t: 1.0 for t in TASKS}:
        return
    calibration = recorded_info(model.weights or DEFAULT_WEIGHTS).get("calibration", {})
    off = [t for t in calibration.get("disabled", []) if model.strengths.get(t, 0) > 0 and t not in model.assume]
    if off:
        LOG.warning("imagemend: these weights keep %s off (%s): those photos' %s columns will say "
                    "'disabled by weights'", ", ".join(off), calibration.get("reason", "no reason recorded"),
                    ", ".join(f"{t}_reason" for t in off))


def beam_counters(result) -> dict[str, int]:
    """The imagemend counters the runner collected (committed where supported, else attempted)."""
    try:
        counters = result.metrics().query()["counters"]
    except Exception:  # some runners cannot query metrics after the fact
        return {}
    out: dict[str, int] = {}
    for c in counters:
        if c.key.metric.namespace == "imagemend":
            value = c.committed if c.committed is not None else c.attempted
            out[c.key.metric.name] = out.get(c.key.metric.name, 0) + int(value or 0)
    return out


def _prepare_output(output: OutputOptions, run_id: str, shards: list, settings: dict) -> tuple:
    """With the output's lease held: clean what an interrupted run left, check the output's settings and the
    finished shards against the listing, remove the outputs of changed (and, with --prune, unlisted) shards,
    write the manifest. Every check that can refuse comes before the first removal."""
    fs, root = filesystem(output.url, output.storage)
    paths = OutputPaths(root)
    finished = finished_shards(fs, paths)
    old = reconcile.outdated(fs, paths, shards, finished)
    reconcile.refuse_unlisted(old, root, output.prune)
    redo = old.changed + old.unfinished + old.unlisted
    kept = set() if output.overwrite else finished - set(redo)
    keep_settings(fs, paths, settings, kept)
    stale = clean_partials(fs, root)  # no other live run writes here: this run holds the lease
    if stale:
        LOG.info("imagemend: removed %d temporary files an interrupted run left in %s", stale, root)
    reconcile.remove(fs, paths, redo)
    if redo:
        LOG.info("imagemend: removed the outputs of %d shards whose inputs changed and %d shards with records "
                 "left by an earlier run (both redone now), and of %d shards no longer in the input",
                 len(old.changed), len(old.unfinished), len(old.unlisted))
    if output.overwrite:
        forget_finished(fs, paths)
    return fs, root, kept, write_manifest(fs, paths, run_id, shards)


def run(opts: RunOptions, beam_argv: list[str], hooks: Hooks | None = None) -> dict:
    """Run the whole job and return its summary (summary.json plus the Beam counters). hooks: an
    evaluation's (pipeline/evaluate.py), which every shard's pass calls."""
    started = time.time()
    inp, output = opts.input, opts.output
    check_device(opts.model.device, beam_argv)
    with _launch_step(f"cannot list the input {inp.url}"):
        layout, shards, skipped = list_shards(inp, output)
    if not shards:
        raise NoInput(f"no {layout} input found at {inp.url}" + (f"; {_skipped_text(layout, skipped)}"
                                                                 if skipped else ""))
    if inp.sample:
        shards = sample(shards, inp.sample, inp.seed)
    # the weights by their recorded digest, not their path: a file replaced in place changes it
    settings = {**opts.settings(), **(hooks.settings() if hooks else {}),
                "weights_sha256": recorded_digest(opts.model.weights or DEFAULT_WEIGHTS), **groups.settings(opts)}
    warn_disabled(opts.model)
    p = pipeline_for(beam_argv)  # before the output is touched: a runner that cannot start leaves nothing
    out_fs, out_root = filesystem(output.url, output.storage)
    owner = lease.Owner.this(opts.run_id)
    with _launch_step(f"cannot write the output {output.url}"):
        held = _acquire(out_fs, out_root, owner)
    with lease.kept(out_fs, held, owner):
        return _launch(opts, hooks, p, beam_argv, shards, layout, skipped, settings, started)


def _acquire(fs, root: str, owner: lease.Owner) -> str:
    """The output's lease; another live run's is a launch failure (exit status 1), never cleaned up."""
    try:
        return lease.acquire(fs, root, owner)
    except lease.OutputInUse as e:
        raise LaunchFailed(str(e)) from e


def _launch(opts: RunOptions, hooks: Hooks | None, p: beam.Pipeline, beam_argv: list[str], shards: list, layout: str,
            skipped: dict, settings: dict, started: float) -> dict:
    """Prepare the output, run the graph and return the summary: all while this run holds the output's lease."""
    with _launch_step(f"cannot write the output {opts.output.url}"):
        fs, root, done, manifest = _prepare_output(opts.output, opts.run_id, shards, settings)
    paths = OutputPaths(root)
    todo = sum(s.id not in done for s in shards)
    plan = {
        "run_id": opts.run_id, "input": opts.input.url, "output": to_uri(fs, root), "layout": layout,
        "shards_listed": len(shards), "shards_finished_before": len(shards) - todo, "shards_to_do": todo,
        "records_listed": sum(len(s.items) for s in shards) if layout == "files" else None,
        "sample": opts.input.sample or None, "files_skipped": sum(skipped.values()),
        "files_skipped_by_extension": skipped, "tasks": opts.model.strengths,
        "assumed": list(opts.model.assume) or None, "image_format": opts.output.image_format,
        "model": model_name(opts.model.weights),
        "suite": settings["suite"] or None, "cases": settings["cases"] or None,
        "group_by": opts.groups.group_by if opts.groups.active else None,
        "manifest": manifest, "started_unix": started,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
    }
    LOG.info("imagemend run %s: %d %s shards listed, %d finished earlier, %d to do; output %s",
             opts.run_id, len(shards), layout, len(shards) - todo, todo, plan["output"])
    graph.build(p, opts, manifest, plan, hooks)
    todo_records = sum(len(s.items) for s in shards if s.id not in done) if layout == "files" else None
    try:
        with progress.bar(todo_records, opts.work.progress and in_this_process(beam_argv)):
            result = p.run()
            state = result.wait_until_finish()
    except Exception as e:
        raise JobFailed(f"pipeline failed: {type(e).__name__}: {e}") from e
    if state not in (PipelineState.DONE, None):
        raise JobFailed(f"pipeline ended in state {state}")
    fs.invalidate_cache()
    summary = read_json(fs, paths.summary(opts.run_id))
    if summary is None:
        raise JobFailed("pipeline finished without writing its summary")
    summary["beam_counters"] = beam_counters(result)
    write_json(fs, paths.summary(opts.run_id), summary)  # with the counters the runner collected
    write_json(fs, paths.summary(), summary)
    return summary


def _skipped_text(layout: str, skipped: dict[str, int]) -> str:
    """'3 files that are not images (.db 1, .txt 2)': what the listing left out, never decoded."""
    what = {"files": "images", "tar": "tar shards", "parquet": "Parquet shards"}[layout]
    by_ext = ", ".join(f"{ext or 'no extension'} {n}" for ext, n in skipped.items())
    return f"{sum(skipped.values())} files that are not {what} ({by_ext})"


def left_behind(summary: dict) -> str | None:
    """The line for records left for a rerun (exit status 75), or None when every record was done."""
    left = summary["counts"].get("left", 0)
    if not left:
        return None
    return (f"{left} records could not be read or written (store, network or disk): rerun the same command "
            "to finish them")


def report(summary: dict) -> str:
    """A few lines for the terminal: where things went and how many."""
    c = summary["counts"]
    rate = summary.get("images_per_s")
    lines = [
        f"run {summary['run_id']}: {summary['shards_listed']} {summary['layout']} shards "
        f"({c.get('shards_processed', 0)} processed, {c.get('shards_skipped', 0)} finished earlier)",
        f"records: {c['records']} = {c['restored']} restored + {c['unchanged']} unchanged + {c['failed']} failed"
        f"  ({c['images_processed']} images this run, {summary['elapsed_s']:.1f} s"
        + (f", {rate:.2f} images/s)" if rate else ")"),
        *([f"skipped:         {_skipped_text(summary['layout'], summary['files_skipped_by_extension'])}"]
          if summary.get("files_skipped") else []),
        *[f"{t + ':':16} " + ", ".join(f"{n} {why}" for why, n in sorted(reasons.items(), key=lambda kv: -kv[1]))
          for t, reasons in summary.get("tasks", {}).items()],
        *([f"groups:          {len(g['decisions'])} by {g['group_by']} ({g['table']}); " + "; ".join(
            f"{t} " + ", ".join(f"{n} {why}" for why, n in reasons.items()) for t, reasons in g["counts"].items())]
          if (g := summary.get("groups")) else []),
        *[f"failed at {stage + ':':7} " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())
          for stage, kinds in summary.get("failures", {}).items()],
        *([f"left for a rerun: {c['left']} of the failed (retryable: the store, the network or the disk)"]
          if c.get("left") else []),
        f"restored images: {summary['images']}",
        f"metrics:         {summary['metrics']}",
        f"errors:          {summary['errors']}",
        f"summary:         {summary['output'].rstrip('/')}/summary.json",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------- the `imagemend run` command (pipeline/cli.py)

def add_arguments(p: argparse.ArgumentParser) -> None:
    options.add_arguments(p)


def main(args: argparse.Namespace) -> dict:
    opts = options.from_args(args)
    return finish(run(opts, options.beam_args(args.beam_argv, opts.work.workers)))


def finish(summary: dict) -> dict:
    """Print the report; records left for a rerun exit 75 with one line."""
    print(report(summary))
    left = left_behind(summary)
    if left:
        print(f"imagemend: {left}", file=sys.stderr)
        sys.exit(EX_TEMPFAIL)
    return summary
