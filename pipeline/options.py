"""All configuration of an `imagemend run` in one place: four small frozen parts and their command-line flags.

    RunOptions(input: InputOptions, output: OutputOptions, model: ModelOptions, work: WorkOptions, run_id,
               groups: GroupOptions)

Each part holds its own defaults and checks, and each function takes the part it uses: the sources
the input part, the sinks the output part, the model loader the model part (pipeline/infer.py), a
shard's pass the work part. The parts travel to every worker (pickled inside the DoFn), so they hold
plain values only. Flags that imagemend does not know must be Beam pipeline options, which pass through
untouched; a flag neither knows is refused (Beam would drop it with a warning and run with defaults).
Flags after a bare `--` go to the runner unchecked, for options only a Java runner knows.
"""

import argparse
from dataclasses import dataclass, field, fields, replace
import difflib
import json
import secrets
import time

from imagemend.model.core.config import RestoreConfig
from imagemend.model.core.groups import GROUP_TASKS
from imagemend.model.core.tasks import TASKS, TONE_TASKS

LAYOUTS = ("auto", "files", "tar", "parquet")
IMAGE_FORMATS = ("same", "png", "jpeg", "webp", "tiff")


@dataclass(frozen=True)
class InputOptions:
    """What to read and how: listing, shards, record budgets."""
    url: str = ""
    layout: str = "auto"
    files_per_shard: int = 256  # loose files per virtual shard
    exclude: tuple[str, ...] = ()  # globs of input keys, or of file or folder names in them, that are not inputs
    include_hidden: bool = False  # list names starting with '.' too (.DS_Store, ._IMG_0001.JPG are left out)
    parquet_image_column: str = "jpg"
    parquet_key_column: str = "key"
    max_pixels: int = 120_000_000  # larger images go to errors instead of exhausting memory
    max_bytes: int = 512 * 2**20  # larger files, tar members or Parquet cells go to errors unread
    sample: int = 0  # restore a seeded sample: this many loose files, or this many tar/Parquet shards (0: all)
    seed: int = 0  # of the sample
    storage: dict = field(default_factory=dict)  # fsspec options of the input's store

    def __post_init__(self):
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}")
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError("--max-bytes and --max-pixels must be >= 1")


@dataclass(frozen=True)
class OutputOptions:
    """Where and how to write: image format, and what to do with what an earlier run wrote."""
    url: str = ""
    image_format: str = "same"  # or png|jpeg|webp|tiff
    quality: int | None = None  # JPEG/WebP quality; None keeps a JPEG's own tables, else 92
    overwrite: bool = False
    prune: bool = False  # remove the outputs of finished shards the listing no longer has (else the run stops)
    storage: dict = field(default_factory=dict)  # fsspec options of the output's store

    def __post_init__(self):
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"image format must be one of {IMAGE_FORMATS}")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise ValueError("quality must be in 1..100")


@dataclass(frozen=True)
class ModelOptions:
    """What the model does and how a worker process loads and runs it; equal parts share one loaded model."""
    strengths: dict[str, float] = field(default_factory=lambda: {t: 1.0 for t in TASKS})  # task -> strength
    # tasks whose damage the user vouches for: corrected wherever the model reads any, clean photos
    # included, instead of only beyond every clean training photo (the weights' thresholds)
    assume: tuple[str, ...] = ()
    weights: str | None = None  # path or fsspec URL; None: the weights shipped in the package
    device: str = "auto"  # auto (cuda when present), cpu, cuda, cuda:N; cuda without CUDA fails
    amp: bool | None = None  # None: mixed precision on CUDA only
    compile: bool = False  # torch.compile the U-Net (CUDA: minutes of compiling per process, for long runs)
    tile: int = RestoreConfig.tile
    jpeg_noise_floor: float = RestoreConfig.jpeg_noise_floor  # 8-bit sigma a JPEG is denoised at least with; 0: off
    pixel_budget: int | None = None  # padded tile pixels per forward pass; None: the device's default
    torch_threads: int | None = None  # intra-op threads per restore; None: the cores split (pipeline/infer.py)
    restores: int = 0  # restore calls at once per process; 0: 1 on CUDA, else the cores split (pipeline/infer.py)

    def __post_init__(self):
        unknown = (set(self.strengths) | set(self.assume)) - set(TASKS)
        if unknown:
            raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {', '.join(TASKS)}")
        if self.restores < 0 or (self.torch_threads is not None and self.torch_threads < 1):
            raise ValueError("--restores must be >= 0, --torch-threads >= 1")
        if not 0 <= self.jpeg_noise_floor <= 50:
            raise ValueError("--jpeg-noise-floor must be in 0..50 (an 8-bit noise sigma)")

    @property
    def restore_config(self) -> RestoreConfig:
        return replace(RestoreConfig(), tile=self.tile, pixel_budget=self.pixel_budget,
                       jpeg_noise_floor=self.jpeg_noise_floor)


@dataclass(frozen=True)
class WorkOptions:
    """How the work is paced: batches, threads, worker processes, retries, the progress bar."""
    batch_images: int = 32  # at most this many images per restore call (tiles still share passes)
    threads: int = 2  # decode/encode threads per shard, overlapping inference
    workers: int = 0  # local worker processes (FnApiRunner multi-processing) sharing this machine's cores
    # a read or write failing for the store, the network or the disk is retried this many times, waiting
    # retry_wait_s, then twice that, ...: 7 tries after 0.5 s ride out about a minute (pipeline/retry.py)
    retries: int = 7
    retry_wait_s: float = 0.5
    progress: bool = True  # a bar on the terminal where the job runs in this process

    def __post_init__(self):
        if self.workers < 0:
            raise ValueError("--workers must be >= 0")
        if self.retries < 0 or self.retry_wait_s < 0:
            raise ValueError("--retries and --retry-wait must be >= 0")


GROUP_KINDS = ("none", "folder", "shard", "archive", "exif:Model", "exif:date")  # and column:NAME


@dataclass(frozen=True)
class GroupOptions:
    """Tone and colour read per group of photos (pipeline/groups.py): which photos form a group, how small a
    group is read per photo, the share of clean groups that may be corrected by mistake, and the tone tasks a
    group may correct (the others are tested and reported only: model.core.groups.GROUP_TASKS)."""
    group_by: str = "folder"  # folder, shard, archive, exif:Model, exif:date, column:NAME or none
    min_group: int = 8
    group_alpha: float = 0.01
    group_tasks: tuple[str, ...] = GROUP_TASKS

    def __post_init__(self):
        if self.group_by not in GROUP_KINDS and not (self.group_by.startswith("column:") and self.group_by[7:]):
            raise ValueError(f"--group-by must be one of {', '.join(GROUP_KINDS)} or column:NAME, "
                             f"not {self.group_by!r}")
        if self.min_group < 1 or not 0 < self.group_alpha < 1:
            raise ValueError("--min-group must be >= 1 and --group-alpha in (0, 1)")
        try:  # in the registry's order: the recorded settings compare equal
            object.__setattr__(self, "group_tasks", parse_group_tasks(",".join(self.group_tasks)))
        except argparse.ArgumentTypeError as e:
            raise ValueError(str(e)) from None

    @property
    def active(self) -> bool:
        return self.group_by != "none"


PARTS = {"input": InputOptions, "output": OutputOptions, "model": ModelOptions, "work": WorkOptions,
         "groups": GroupOptions}


@dataclass(frozen=True)
class RunOptions:
    """One run's options: its four parts and the run id stored in every row (default: time + random)."""
    input: InputOptions
    output: OutputOptions
    model: ModelOptions = field(default_factory=ModelOptions)
    work: WorkOptions = field(default_factory=WorkOptions)
    run_id: str = ""
    groups: GroupOptions = field(default_factory=GroupOptions)

    def __post_init__(self):
        if not self.run_id:
            object.__setattr__(self, "run_id", new_run_id())

    @classmethod
    def of(cls, input: str = "", output: str = "", *, run_id: str = "", storage_options: dict | None = None,
           input_storage_options: dict | None = None, output_storage_options: dict | None = None,
           **values) -> "RunOptions":
        """From flat values, each going to the part that has a field of its name (the parts hold the defaults):
        RunOptions.of("in/", "out/", max_bytes=2**20, threads=4). storage_options serve input and output,
        input_ and output_storage_options override them for one side."""
        parts: dict[str, dict] = {name: {} for name in PARTS}
        owner = {f.name: name for name, part in PARTS.items() for f in fields(part) if f.name not in ("url", "storage")}
        for k, v in values.items():
            if k not in owner:
                raise TypeError(f"RunOptions has no option {k!r}")
            parts[owner[k]][k] = v
        shared = storage_options or {}
        return cls(InputOptions(input, storage={**shared, **(input_storage_options or {})}, **parts["input"]),
                   OutputOptions(output, storage={**shared, **(output_storage_options or {})}, **parts["output"]),
                   ModelOptions(**parts["model"]), WorkOptions(**parts["work"]), run_id,
                   GroupOptions(**parts["groups"]))

    def settings(self) -> dict:
        """What changes the bytes a run writes, not how fast it runs: an output keeps one set. `suite` and
        `cases` are an evaluation's (pipeline/evaluate.py): empty in a run, as in the outputs written before;
        the grouping only where a run groups (outputs written per photo resume with --group-by none)."""
        return {"tasks": self.model.strengths, "assume": sorted(self.model.assume), "weights": self.model.weights,
                "jpeg_noise_floor": self.model.jpeg_noise_floor,
                "image_format": self.output.image_format, "quality": self.output.quality, "suite": "", "cases": [],
                **({"group_by": self.groups.group_by, "min_group": self.groups.min_group,
                    "group_alpha": self.groups.group_alpha, "group_tasks": list(self.groups.group_tasks)}
                   if self.groups.active else {})}


def new_run_id() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def parse_tasks(text: str) -> list[str]:
    if text.strip() in ("", "all"):
        return list(TASKS)
    tasks = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown task(s) {bad}; choose from {', '.join(TASKS)}")
    return tasks


def parse_group_tasks(text: str) -> tuple[str, ...]:
    """--group-tasks: a comma list of cast, exposure, contrast, or all (at least one)."""
    tasks = TONE_TASKS if text.strip() == "all" else tuple(t.strip() for t in text.split(",") if t.strip())
    bad = [t for t in tasks if t not in TONE_TASKS]
    if bad or not tasks:
        raise argparse.ArgumentTypeError(f"--group-tasks takes a comma list of {', '.join(TONE_TASKS)} or all, "
                                         f"not {text!r}")
    return tuple(t for t in TONE_TASKS if t in tasks)


def parse_strength(text: str) -> dict[str, float]:
    """'0.5' scales every task; 'denoise=0.5,cast=1.2' scales the named ones (others stay at 1)."""
    try:
        if "=" not in text:
            return {t: float(text) for t in TASKS}
        out = {}
        for part in text.split(","):
            name, value = part.split("=")
            out[name.strip()] = float(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"bad --strength {text!r}: {e}") from e
    bad = [t for t in out if t not in TASKS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown task(s) {bad} in --strength")
    return out


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"not JSON: {e}") from e
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("storage options must be a JSON object")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `imagemend run`; anything else on the command line goes to Beam."""
    p.add_argument("--input", required=True, help="fsspec URL: prefix, glob, *.tar or *.parquet shards")
    p.add_argument("--output", required=True, help="fsspec URL of the output prefix (nothing is written outside)")
    add_processing_arguments(p)


def add_processing_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by `run` and `demo`."""
    i, m, w, g = InputOptions(), ModelOptions(), WorkOptions(), GroupOptions()
    p.add_argument("--layout", choices=LAYOUTS, default="auto", help="force the input layout (default: detect)")
    p.add_argument("--image-format", choices=IMAGE_FORMATS, default="same", help="output image format")
    p.add_argument("--quality", type=int, help="JPEG/WebP quality (default: keep a JPEG's own tables, else 92)")
    p.add_argument("--tasks", type=parse_tasks, default=list(TASKS), help="comma-separated subset of "
                   + ",".join(TASKS) + " (default: all)")
    p.add_argument("--strength", type=parse_strength, default={},
                   help="scale corrections: 0.5 for all tasks, or denoise=0.5,cast=1.2")
    p.add_argument("--assume", type=parse_tasks, default=[], help="tasks whose damage you know the archive has, "
                   "e.g. exposure,contrast: corrected wherever the model reads any, not only where no clean photo "
                   "reads as much (clean photos get corrected too); cast, exposure and contrast are then read from "
                   "the photo's statistics (model/core/tone_cues.py)")
    p.add_argument("--group-by", default=g.group_by, metavar="KEY", help="read tone and colour damage per group "
                   "of photos: folder (default), shard, archive (all one group), exif:Model (camera), exif:date "
                   "(day taken), column:NAME (a Parquet input's column) or none (per photo only)")
    p.add_argument("--min-group", type=int, default=g.min_group, help="smaller groups are read per photo "
                   "(default %(default)s)")
    p.add_argument("--group-alpha", type=float, default=g.group_alpha, help="share of clean groups that may be "
                   "corrected by mistake (default %(default)s)")
    p.add_argument("--group-tasks", type=parse_group_tasks, default=g.group_tasks, metavar="TASKS",
                   help="the tone tasks a group may correct: a comma list of cast, exposure, contrast, or all "
                   "(default: cast; exposure and contrast by group fired on most held-out clean groups of real "
                   "camera photos, model/weights/eval-groups/results.md); the others are still tested and reported")
    p.add_argument("--jpeg-noise-floor", type=float, default=m.jpeg_noise_floor, metavar="SIGMA",
                   help="denoise every JPEG at least at this 8-bit sigma (default %(default)s; 0: only where noise is "
                   "read): camera noise after the camera's processing and JPEG reads as clean, and at 4 every clean "
                   "web JPEG measured stays above 40 dB (model card, \"Real camera photos\")")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (cuda never falls back to cpu)")
    p.add_argument("--weights", help="weights file (path or fsspec URL; default: the shipped weights)")
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                   help="auto: bf16 autocast on CUDA, fp32 on CPU")
    p.add_argument("--compile", action="store_true", help="torch.compile the U-Net in each worker process")
    p.add_argument("--tile", type=int, default=m.tile, help="tile side in pixels (multiple of 8)")
    p.add_argument("--pixel-budget", type=int, default=m.pixel_budget,
                   help="padded tile pixels per forward pass (default: one tile on CPU, 8 on CUDA)")
    p.add_argument("--batch-images", type=int, default=w.batch_images, help="images per restore call, at most")
    p.add_argument("--files-per-shard", type=int, default=i.files_per_shard, help="loose files per virtual shard")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="leave out input keys, or file or folder names, matching GLOB ('*.xmp', 'raw/*', "
                   "'_selects'); repeatable")
    p.add_argument("--include-hidden", action="store_true",
                   help="list names starting with '.' too (left out by default: .DS_Store, ._IMG_0001.JPG)")
    p.add_argument("--parquet-image-column", default=i.parquet_image_column,
                   help="a Parquet input's column of encoded image bytes")
    p.add_argument("--parquet-key-column", default=i.parquet_key_column,
                   help="a Parquet input's column of record keys (the output file names)")
    p.add_argument("--max-pixels", type=int, default=i.max_pixels, help="larger images are reported as errors")
    p.add_argument("--max-bytes", type=int, default=i.max_bytes, help="larger files, tar members or Parquet "
                   "cells are reported as errors without being read (default 512 MiB)")
    p.add_argument("--threads", type=int, default=w.threads, help="decode/encode threads per worker")
    p.add_argument("--retries", type=int, default=w.retries, help="retries of a read or write that failed for the "
                   "store, the network or the disk, with exponential backoff; what still fails is left for a rerun "
                   "(exit status 75)")
    p.add_argument("--retry-wait", dest="retry_wait_s", type=float, default=w.retry_wait_s, metavar="SECONDS",
                   help="wait before the first retry; it doubles with each")
    p.add_argument("--torch-threads", type=int, help="intra-op threads per restore (default: this process's "
                   "share of the cores, split between --restores)")
    p.add_argument("--restores", type=int, default=0, help="restore calls at once per process (default: 1 on CUDA "
                   "or with --torch-threads; else one single-thread restore per core, at most 4)")
    p.add_argument("--overwrite", action="store_true", help="forget finished shards and redo everything")
    p.add_argument("--sample", type=int, default=0, metavar="N",
                   help="restore a seeded sample to try settings: N loose files, or N whole tar/Parquet shards "
                        "(a later full run to the same output finishes the rest, no record twice)")
    p.add_argument("--seed", type=int, default=0, help="which sample --sample draws")
    p.add_argument("--prune", action="store_true", help="remove the outputs (images, metrics, errors) of finished "
                   "shards that the input no longer has (deleted or moved inputs, another --files-per-shard); "
                   "without it such a rerun stops")
    p.add_argument("--no-progress", dest="progress", action="store_false",
                   help="no progress bar (it shows where the job runs in this process: the default runner)")
    p.add_argument("--storage-options", type=_json, default={}, help="JSON fsspec options for input and output")
    p.add_argument("--input-storage-options", type=_json, default={}, help="JSON fsspec options for input only")
    p.add_argument("--output-storage-options", type=_json, default={}, help="JSON fsspec options for output only")
    p.add_argument("--run-id", default="", help="identifier stored in every row (default: time + random)")
    p.add_argument("--workers", type=int, default=0,
                   help="local worker processes (FnApiRunner multi_processing); 0: in-process")


def from_args(args: argparse.Namespace, **overrides) -> RunOptions:
    strengths = {t: args.strength.get(t, 1.0) for t in args.tasks}
    values = dict(
        input=getattr(args, "input", ""), output=getattr(args, "output", ""), layout=args.layout,
        image_format=args.image_format, quality=args.quality, strengths=strengths,
        assume=tuple(args.assume), device=args.device,
        amp=None if args.precision == "auto" else args.precision == "bf16", compile=args.compile,
        weights=args.weights, tile=args.tile, jpeg_noise_floor=args.jpeg_noise_floor, pixel_budget=args.pixel_budget,
        batch_images=args.batch_images,
        files_per_shard=args.files_per_shard, exclude=tuple(args.exclude), include_hidden=args.include_hidden,
        parquet_image_column=args.parquet_image_column,
        parquet_key_column=args.parquet_key_column, max_pixels=args.max_pixels, max_bytes=args.max_bytes,
        threads=args.threads, retries=args.retries, retry_wait_s=args.retry_wait_s,
        torch_threads=args.torch_threads, restores=args.restores, workers=args.workers, overwrite=args.overwrite,
        prune=args.prune,
        progress=args.progress, sample=args.sample, seed=args.seed,
        storage_options=args.storage_options,
        input_storage_options=args.input_storage_options, output_storage_options=args.output_storage_options,
        run_id=args.run_id, group_by=args.group_by, min_group=args.min_group, group_alpha=args.group_alpha,
        group_tasks=tuple(args.group_tasks),
    )
    values.update(overrides)
    return RunOptions.of(**values)


def beam_args(extra: list[str], workers: int = 0) -> list[str]:
    """Beam flags with a runner always chosen: the default DirectRunner would try to download Prism."""
    args = list(extra)
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.append("--runner=FnApiRunner")
    if workers:
        args += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    return args


class _BeamFlagError(Exception):
    pass


def _beam_parser() -> argparse.ArgumentParser:
    """Beam's parser of every registered PipelineOptions class, as PipelineOptions.get_all_options builds it,
    raising instead of exiting so that the message comes from imagemend's parser."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    class Parser(_BeamArgumentParser):
        def error(self, message):
            raise _BeamFlagError(message)

    parser = Parser(allow_abbrev=False, add_help=False)
    classes = {str(cls): cls for cls in PipelineOptions.__subclasses__()}
    for cls in classes.values():
        cls._add_argparse_args(parser)
    return parser


def _unrecognized(unknown: list[str], *parsers: argparse.ArgumentParser) -> str:
    """argparse's message, with the nearest known flag for each misspelled one."""
    known = [o for p in parsers for a in p._actions for o in a.option_strings if o.startswith("--")]
    hints = []
    for arg in unknown:
        name = arg.split("=", 1)[0]
        close = difflib.get_close_matches(name, known, n=1) if name.startswith("--") else []
        hints += [f"{name}: did you mean {close[0]}?"] if close else []
    return f"unrecognized arguments: {' '.join(unknown)}" + (f" ({'; '.join(hints)})" if hints else "")


def check_beam_flags(extra: list[str], parser: argparse.ArgumentParser) -> list[str]:
    """The flags imagemend left, if Beam knows each of them; else `parser` exits 2 naming the others."""
    cut = extra.index("--") if "--" in extra else len(extra)
    checked, unchecked = extra[:cut], extra[cut + 1:]
    beam = _beam_parser()
    try:
        _, unknown = beam.parse_known_args(checked)
    except _BeamFlagError as e:
        parser.error(f"{e} (a Beam pipeline option)")
    if unknown:
        parser.error(_unrecognized(unknown, parser, beam))
    return checked + unchecked
