"""The `imagemend` command: one entry point, a subcommand per job.

`run`, `demo` and `eval` take imagemend's own flags; every other flag is a Beam pipeline option and
is passed through (--runner, --job_endpoint, --environment_type, --project, ...). `eval` exits 3
when any damaged photo has no scores (a failure, never a silent gap in the means).
"""

import argparse
import logging
import sys


def _logging() -> None:
    # force: importing Beam has already configured the root logger
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", force=True)
    logging.getLogger("imagemend").setLevel(logging.INFO)


def _job(make_options, args: argparse.Namespace) -> tuple:
    """Run the Beam job; bad input exits 2, a failed job exits 1 (record errors do not)."""
    from . import job, options

    _logging()
    try:
        opts = make_options()
        summary = job.run(opts, options.beam_args(args.beam_argv, opts.workers))
    except (job.NoInput, ValueError) as e:
        print(f"imagemend: {e}", file=sys.stderr)
        sys.exit(2)
    except job.JobFailed as e:
        print(f"imagemend: the job failed: {e}", file=sys.stderr)
        sys.exit(1)
    print(job.report(summary))
    return opts, summary


def _run(args: argparse.Namespace) -> None:
    from . import options

    _job(lambda: options.from_args(args), args)


def _demo(args: argparse.Namespace) -> None:
    from . import demo, job

    _logging()
    try:
        demo.main(args)
    except job.JobFailed as e:
        print(f"imagemend: the job failed: {e}", file=sys.stderr)
        sys.exit(1)


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="imagemend", description="Clean large photo archives.")
    sub = parser.add_subparsers(dest="command", required=True)

    from model import estimators as estimators_mod
    from model import report as report_mod
    from model import train as train_mod

    from . import demo, options, reference

    p = sub.add_parser("train", help="train the multitask network on clean photos")
    train_mod.add_arguments(p)
    p.set_defaults(func=train_mod.main)

    p = sub.add_parser("run", allow_abbrev=False, help="restore an archive with an Apache Beam batch job "
                       "(other flags are Beam pipeline options)")
    options.add_arguments(p)
    p.set_defaults(func=_run)

    p = sub.add_parser("demo", allow_abbrev=False, help="damage scikit-image's sample photos and restore them")
    demo.add_arguments(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("eval", allow_abbrev=False, help="damage clean photos with a named suite, restore them with "
                       "the `run` job and add full-reference columns (other flags are Beam pipeline options)")
    reference.add_arguments(p)
    p.set_defaults(func=_eval)

    p = sub.add_parser("report", help="write docs/QUALITY.md: imagemend against classical and single-task methods")
    report_mod.add_arguments(p)
    p.set_defaults(func=report_mod.main)

    p = sub.add_parser("estimators", help="write docs/ESTIMATORS.md: do the no-reference estimates track the damage?")
    estimators_mod.add_arguments(p)
    p.set_defaults(func=estimators_mod.main)

    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("run", "demo", "eval"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_argv = extra
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
