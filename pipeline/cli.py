"""The `imagemend` command: one entry point, a subcommand per job."""

import argparse
import sys


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="imagemend", description="Clean large photo archives.")
    sub = parser.add_subparsers(dest="command", required=True)

    from model import train as train_mod

    p = sub.add_parser("train", help="train the multitask network on clean photos")
    train_mod.add_arguments(p)
    p.set_defaults(func=train_mod.main)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main(sys.argv[1:])
