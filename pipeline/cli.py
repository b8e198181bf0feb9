"""The `imagemend` command: one entry point, a subcommand per job.

`run`, `demo` and `eval` take imagemend's own flags; every other flag is a Beam pipeline option and
is passed through (--runner, --job_endpoint, --environment_type, --project, ...); a flag neither
knows exits 2 naming it. `eval` exits 3 when any damaged photo has no scores (a failure, never a
silent gap in the means). Records that the store, the network or the disk failed after retries exit 75 with
one line, and Ctrl-C exits 130 with one line: a rerun finishes what is left.
"""

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
import logging
import signal
import sys
import threading

BEAM_COMMANDS = ("run", "demo", "eval")
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


def _job(make_options, args: argparse.Namespace) -> tuple:
    """Run the Beam job and print its report."""
    from . import job, options

    _logging(args.verbose)
    with _exit_statuses():
        opts = make_options()
        summary = job.run(opts, options.beam_args(args.beam_argv, opts.workers))
    print(job.report(summary))
    left = job.left_behind(summary)
    if left:
        print(f"imagemend: {left}", file=sys.stderr)
        sys.exit(job.EX_TEMPFAIL)
    return opts, summary


def _run(args: argparse.Namespace) -> None:
    from . import options

    _job(lambda: options.from_args(args), args)


def _demo(args: argparse.Namespace) -> None:
    from . import demo

    _logging(args.verbose)
    with _exit_statuses():
        demo.main(args)


def _eval(args: argparse.Namespace) -> None:
    from . import reference

    def make_options():
        opts = reference.options_from(args)
        reference.check_output(opts)
        return opts

    opts, summary = _job(make_options, args)
    result = reference.summarise(summary["output"], opts.out_storage)
    print(reference.markdown(result))
    if result["failed"]:
        print(f"imagemend: the evaluation is incomplete: {result['failed']} damaged photos have no scores "
              "(see the table and errors/)", file=sys.stderr)
        sys.exit(3)


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("imagemend")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _preview(args: argparse.Namespace) -> None:
    from . import preview

    preview.main(args)


def _schema(args: argparse.Namespace) -> None:
    from . import schema

    tables = [("metrics/*.parquet", schema.EVAL_METRICS_SCHEMA if args.eval else schema.METRICS_SCHEMA),
              ("errors/*.parquet", schema.ERRORS_SCHEMA)]
    for where, s in tables:
        print(f"## {where}\n\n{schema.markdown(s)}\n")


def main(argv: list[str] | None = None) -> None:
    if "--verbose" not in (sys.argv[1:] if argv is None else argv):  # Beam warns as it is imported (apitools)
        logging.getLogger().setLevel(logging.ERROR)
    parser = argparse.ArgumentParser(prog="imagemend", description="Clean large photo archives.")
    parser.add_argument("--version", action="version", version=f"imagemend {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)

    from model import estimators_doc as estimators_mod
    from model import report as report_mod
    from model import train as train_mod

    from . import demo, options, reference
    from .preview import add_arguments as preview_add_arguments

    p = sub.add_parser("train", help="train the multitask network on clean photos")
    train_mod.add_arguments(p)
    p.set_defaults(func=train_mod.main)

    p = sub.add_parser("run", allow_abbrev=False, help="restore an archive with an Apache Beam batch job "
                       "(other flags are Beam pipeline options)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter, epilog=BEAM_EPILOG)
    options.add_arguments(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("demo", allow_abbrev=False, help="damage scikit-image's sample photos and restore them")
    demo.add_arguments(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("eval", allow_abbrev=False, help="damage clean photos with a named suite, restore them with "
                       "the `run` job and add full-reference columns (other flags are Beam pipeline options)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter, epilog=BEAM_EPILOG)
    reference.add_arguments(p)
    p.set_defaults(func=_eval)

    for name in BEAM_COMMANDS:
        sub.choices[name].add_argument("--verbose", action="store_true",
                                       help="Beam's own warnings and worker logs too, not imagemend's alone")

    p = sub.add_parser("report", help="write docs/QUALITY.md: imagemend against classical and single-task methods")
    report_mod.add_arguments(p)
    p.set_defaults(func=report_mod.main)

    p = sub.add_parser("estimators", help="write docs/ESTIMATORS.md: do the no-reference estimates track the damage?")
    estimators_mod.add_arguments(p)
    p.set_defaults(func=estimators_mod.main)

    p = sub.add_parser("preview", help="a before/after page of a run's output (static HTML, from the outputs alone)")
    preview_add_arguments(p)
    p.set_defaults(func=_preview)

    p = sub.add_parser("schema", help="the columns of the metrics and errors Parquet tables, with what each means")
    p.add_argument("--eval", action="store_true", help="also the columns `imagemend eval` adds")
    p.set_defaults(func=_schema)

    args, extra = parser.parse_known_args(argv)
    if args.command in BEAM_COMMANDS:
        args.beam_argv = options.check_beam_flags(extra, sub.choices[args.command])
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with _interrupts():
            args.func(args)
    except KeyboardInterrupt:
        resume = ": rerun the same command to finish" if args.command in BEAM_COMMANDS else ""
        print(f"interrupted{resume}", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main(sys.argv[1:])
