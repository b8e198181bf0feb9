"""The `imagemend` command: one entry point, a subcommand per job.

`run` and `demo` take imagemend's own flags; every other flag is a Beam pipeline option and is
passed through (--runner, --job_endpoint, --environment_type, --project, ...).
"""

import argparse
import logging
import sys


def _logging() -> None:
    # force: importing Beam has already configured the root logger
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", force=True)
    logging.getLogger("imagemend").setLevel(logging.INFO)


def _run(args: argparse.Namespace) -> None:
    from . import job, options

    _logging()
    try:
        summary = job.run(options.from_args(args), options.beam_args(args.beam_argv, args.workers))
    except job.NoInput as e:
        print(f"imagemend: {e}", file=sys.stderr)
        sys.exit(2)
    except job.JobFailed as e:
        print(f"imagemend: the job failed: {e}", file=sys.stderr)
        sys.exit(1)
    print(job.report(summary))


def _demo(args: argparse.Namespace) -> None:
    from . import demo, job

    _logging()
    try:
        demo.main(args)
    except job.JobFailed as e:
        print(f"imagemend: the job failed: {e}", file=sys.stderr)
        sys.exit(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="imagemend", description="Clean large photo archives.")
    sub = parser.add_subparsers(dest="command", required=True)

    from model import train as train_mod

    from . import demo, options

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

    args, extra = parser.parse_known_args(argv)
    if extra and args.command not in ("run", "demo"):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.beam_argv = extra
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
