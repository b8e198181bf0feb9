"""The `imagemend` command: one entry point, a table of subcommands (COMMANDS).

Each subcommand is a module with `add_arguments(parser)` and `main(args)`, imported only when it is
the one chosen: `imagemend run` never imports the training, report or evaluation code.

`run`, `demo` and `eval` take imagemend's own flags; every other flag is a Beam pipeline option and
is passed through (--runner, --job_endpoint, --environment_type, --project, ...); a flag neither
knows exits 2 naming it. `eval` exits 3 when any damaged photo has no scores (a failure, never a
silent gap in the means). Records that the store, the network or the disk failed after retries exit 75 with
one line, and Ctrl-C exits 130 with one line: a rerun finishes what is left.
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
import importlib
import logging
import os
import signal
import sys
import threading

BEAM_EPILOG = ("Every other flag is an Apache Beam pipeline option, passed to the runner: --runner (default: "
               "the in-process FnApiRunner), --direct_num_workers, --job_endpoint, --environment_type, Dataflow's "
               "--project/--region/--temp_location, ...; a flag neither imagemend nor Beam knows exits 2, and "
               "flags after a bare -- go to the runner unchecked. docs/RUNNING.md has the cluster commands.")
_INTERRUPTED = threading.Event()


def _logging(verbose: bool = False) -> None:
    # force: importing Beam has already configured the root logger
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(message)s",
                        force=True)
    logging.getLogger("imagemend").setLevel(logging.INFO)
    if not verbose:  # Beam's own warnings and its harness chatter are for --verbose
        logging.getLogger("apache_beam").setLevel(logging.ERROR)


def _on_sigint(signum, frame) -> None:
    """Beam turns a KeyboardInterrupt inside a DoFn into a RuntimeError and logs its traceback: remember
    the interrupt and silence logging, so that the command can still say one line and exit 130."""
    _INTERRUPTED.set()
    logging.disable(logging.CRITICAL)
    raise KeyboardInterrupt


@contextmanager
def _interrupts() -> Iterator[None]:
    """SIGINT marked while a command runs (from the main thread only: signal handlers live there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, _on_sigint)
    _INTERRUPTED.clear()
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        logging.disable(logging.NOTSET)


@contextmanager
def _exit_statuses() -> Iterator[None]:
    """Bad input exits 2, a launch or job failure 1 (record errors do not), Ctrl-C as Beam re-raised it 130."""
    from . import job

    try:
        yield
    except (job.NoInput, ValueError) as e:
        print(f"imagemend: {e}", file=sys.stderr)
        sys.exit(2)
    except job.LaunchFailed as e:
        print(f"imagemend: error: {e}", file=sys.stderr)
        sys.exit(1)
    except job.JobFailed as e:
        if _INTERRUPTED.is_set():
            raise KeyboardInterrupt from e
        print(f"imagemend: the job failed: {e}", file=sys.stderr)
        sys.exit(1)


@dataclass(frozen=True)
class Command:
    """A subcommand: the module that holds its add_arguments(parser) and main(args), imported only when chosen."""
    module: str
    help: str
    beam: bool = False  # a Beam job: other flags are pipeline options, --verbose, exit statuses of a job
    parser: dict = field(default_factory=dict)  # how its parser differs from argparse's defaults


class DefaultsFormatter(argparse.HelpFormatter):
    """States a flag's default where its help does not already, and only a default that says something:
    not for switches, required flags or a default of None or empty (their help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        h, d = action.help or "", action.default
        if ("default" in h or action.required or action.nargs == 0 or d is None or d in ("", [], {})
                or d is argparse.SUPPRESS):
            return h
        return f"{h} (default: {','.join(map(str, d)) if isinstance(d, (list, tuple)) else d})".lstrip()


JOB_PARSER = dict(allow_abbrev=False, formatter_class=DefaultsFormatter, epilog=BEAM_EPILOG)
COMMANDS = {
    "train": Command("imagemend.model.training.train", "train the multitask network on clean photos"),
    "run": Command("imagemend.pipeline.job", "restore an archive with an Apache Beam batch job (other flags are "
                   "Beam pipeline options)", beam=True, parser=JOB_PARSER),
    "demo": Command("imagemend.pipeline.demo", "damage scikit-image's sample photos and restore them", beam=True,
                    parser=dict(allow_abbrev=False)),
    "eval": Command("imagemend.pipeline.evaluate", "damage clean photos with a named suite, restore them with the "
                    "`run` job and add full-reference columns (other flags are Beam pipeline options)", beam=True,
                    parser=JOB_PARSER),
    "report": Command("imagemend.model.reports.quality", "write docs/QUALITY.md: imagemend against classical and "
                      "single-task methods"),
    "estimators": Command("imagemend.model.reports.estimators", "write docs/ESTIMATORS.md: do the no-reference "
                          "estimates track the damage?"),
    "preview": Command("imagemend.pipeline.preview", "a before/after page of a run's output (static HTML, from the "
                       "outputs alone)"),
    "schema": Command("imagemend.pipeline.schema", "the columns of the metrics and errors Parquet tables, with what "
                      "each means"),
}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("imagemend")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _chosen(argv: list[str]) -> str | None:
    """The subcommand named on the command line: the first word that is not a flag (the top level has no
    flag that takes a value)."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if "--verbose" not in argv:  # Beam warns as it is imported (apitools)
        logging.getLogger().setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="imagemend", description="Clean large photo archives.")
    parser.add_argument("--version", action="version", version=f"imagemend {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = _chosen(argv)
    module = None
    for name, command in COMMANDS.items():
        p = sub.add_parser(name, help=command.help, **command.parser)
        if name != chosen:  # only the chosen command's module is imported (and only its flags are needed)
            continue
        module = importlib.import_module(command.module)
        module.add_arguments(p)
        if command.beam:
            p.add_argument("--verbose", action="store_true",
                           help="Beam's own warnings and worker logs too, not imagemend's alone")

    args, extra = parser.parse_known_args(argv)
    beam = COMMANDS[args.command].beam
    if beam:
        from . import options

        args.beam_argv = options.check_beam_flags(extra, sub.choices[args.command])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with _interrupts():
            if beam:
                _logging(args.verbose)
                with _exit_statuses():
                    module.main(args)
            else:
                module.main(args)
    except KeyboardInterrupt:
        resume = ": rerun the same command to finish" if beam else ""
        print(f"interrupted{resume}", file=sys.stderr)
        sys.exit(130)


def entry() -> None:
    """The `imagemend` command: main(), then out without the C++ runtime's static destructors. After a job,
    a native thread pool (torch's, grpc's, Arrow's) can still be joinable while the interpreter tears down,
    and the runtime aborts ("terminate called without an active exception", exit status 134) after
    everything was written; so the streams are flushed and the process leaves with main's own status."""
    status = 0
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        if e.code is not None and not isinstance(e.code, int):
            print(e.code, file=sys.stderr)
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


if __name__ == "__main__":
    entry()
