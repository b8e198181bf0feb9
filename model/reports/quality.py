"""`imagemend report`: docs/QUALITY.md, its charts and contact sheets, from one command.

    imagemend report --data ../shared/data/val/CBSD68 --data ../shared/data/val/Set14 \\
        [--single-task denoise=runs/single-denoise/final.safetensors ...] [--limit N] [--cases a,b]

On the same photos and the same seeded cases (model/evaluation/suites.py) it scores the damaged input, the
classical methods of each case's task (model/evaluation/baselines.py, each with what it is told), the shipped
multitask model with every task on and with only the case's task on, and single-task models of the
same architecture and training budget where they are given. PSNR, SSIM and CIEDE2000 per photo
(model/metrics.py), mean and worst per case, seconds per megapixel. The verdicts at the top are
computed, not written: where multitask loses, the report says where and by how much.
"""

import argparse
from collections.abc import Callable
import json
from pathlib import Path
import shlex

import torch

from ..core.config import TrainConfig
from ..core.restore import Restorer
from ..core.tasks import TASKS
from ..core.weights import DEFAULT_WEIGHTS
from ..data import load_photos
from ..evaluation import baselines, groups
from ..evaluation.scoring import Method, ScoreCache, classical, identity, model_version, score_all, summarise
from ..evaluation.suites import Case, markdown, suite
from . import real_photos
from .figures import SAMPLE_PHOTOS, TILE, contact_sheet, psnr_chart, speed_chart
from .provenance import commit, header, is_placeholder

NO_HARM_DB = 40.0  # a clean photo must come back at least this close to itself
SINGLE_TASK_MARGIN_DB = 0.3  # multitask may trail a single-task model by this much on its task
MULTI, ONLY, SINGLE = "imagemend", "imagemend, task only", "single-task"
SAME = "multitask, same budget"  # trained with the single-task models' recipe and budget, all tasks at once


def restorer_method(name: str, kind: str, r: Restorer, only_task: bool) -> Method:
    def run(x, case: Case):
        return r.restore([x], tasks={case.task: 1.0} if only_task else None)[0].image

    return Method(name, kind, run, version=model_version(name, r))


def methods_for(r: Restorer, single: dict[str, Restorer], names: list[str] | None,
                same: Restorer | None = None) -> Callable[[Case], list[Method]]:
    """The methods that apply to a case: the clean case only asks whether imagemend leaves it alone."""
    def pick(case: Case) -> list[Method]:
        multi = restorer_method(MULTI, "imagemend", r, False)
        if case.task == "clean":
            return [multi]
        ms = [identity(), *(classical(b) for b in baselines.for_task(case.task, names) if b.available), multi]
        if case.task in TASKS:
            ms.append(restorer_method(ONLY, "imagemend", r, True))
            if case.task in single:
                ms.append(restorer_method(SINGLE, "single-task", single[case.task], True))
                if same is not None:
                    ms.append(restorer_method(SAME, "multitask-same-budget", same, False))
        return ms

    return pick


def parse_single(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        task, _, path = item.partition("=")
        if task not in TASKS or not path:
            raise SystemExit(f"--single-task takes TASK=WEIGHTS with TASK in {', '.join(TASKS)}; got {item!r}")
        out[task] = path
    return out


def recipe(info: dict, out: str, tasks: list[str] | None = None) -> str:
    """The commands that train and calibrate weights like those whose recorded info this is; with
    tasks, the same recipe and budget for those tasks only (a single-task model)."""
    t = {**TrainConfig().__dict__, **info.get("train", {})}
    loss = info.get("loss", {})
    data = shlex.quote(info["data"]) if "data" in info else "TRAINING_PHOTOS"  # the placeholder records none
    cmd = [f"imagemend train --data {data} --out {out} --tasks {','.join(tasks or info.get('tasks', TASKS))}",
           f"--steps {t['steps']} --batch {t['batch']} --patch {t['patch']} --lr {t['lr']:g} --seed {t['seed']}",
           f"--weighting {loss.get('weighting', 'fixed')}"]
    if loss.get("weights"):
        cmd.append("--loss-weights " + ",".join(f"{k}={v:g}" for k, v in loss["weights"].items()))
    if not tasks and info.get("stage", "joint") != "joint":
        cmd.append(f"--stage {info['stage']}")
    if not tasks and info.get("init"):
        cmd.append(f"--init {shlex.quote(info['init'])}")
    if info.get("minutes"):
        cmd.append(f"--minutes {info['minutes']:g}")
    if info.get("device", "cpu") != "cpu":
        cmd.append(f"--device {info['device']}")
    cal = info.get("calibration")
    if cal:
        cmd.append(f"&& python -m imagemend.model.tools.calibrate --data {shlex.quote(cal['data'])} "
                   f"--weights {out}/final.safetensors "
                   f"--quantile {cal['quantile']:g} --global-quantile {cal['global_quantile']:g}"
                   + ("".join(f" --disable {d}" for d in cal["disabled"]) + f" --reason {shlex.quote(cal['reason'])}"
                      if cal.get("disabled") and not tasks else ""))
    return " ".join(cmd)


def provenance(label: str, path: str, r: Restorer, tasks: list[str]) -> list[str]:
    """Where a comparison model came from, read from its own file, and how to make it again."""
    info = r.meta["info"]
    trained = info.get("tasks", list(TASKS))
    done = (f"{info['steps']:,} steps in {info['wall_s'] / 60:.1f} min on {info.get('device', 'cpu')}"
            if "steps" in info and "wall_s" in info else "steps not recorded")
    odd = f" **Not a fair comparison: it was trained on {', '.join(trained)}.**" if trained != tasks else ""
    return [f"- **{label}**: `{path}`, sha256 `{r.weights_sha256[:16]}`, tasks {', '.join(trained)}, {done}"
            + (f" ({info['stored_as']})" if "stored_as" in info else "") + "." + odd,
            f"  `{recipe(info, 'runs/' + Path(path).stem)}`"]


# ---------------------------------------------------------------- verdicts

def _row(s: dict, dataset: str, case: str, method: str) -> dict | None:
    return s.get((dataset, case, method))


def _db(row: dict | None) -> str:
    if row is None:
        return "not run"
    if row["psnr_mean"] is None:
        return f"FAILED on {row['failed']} of {row['images']} photos ({row['first_error']})"
    return f"{row['psnr_mean']:.2f} dB"


def verdict_classical(s: dict, dataset: str, cases: tuple[Case, ...], given: dict[str, str]) -> list[str]:
    lines = [f"### Does the shipped model beat every classical method on its own task? ({dataset}, mean PSNR)", ""]
    for c in cases:
        if c.task not in TASKS:
            continue
        ours = _row(s, dataset, c.name, MULTI)
        rivals = [(m, row) for (d, cn, m), row in s.items() if d == dataset and cn == c.name and m in given]
        if not rivals:
            lines.append(f"- `{c.name}`: no classical method was run")
            continue
        if ours is None or ours["psnr_mean"] is None or any(r["psnr_mean"] is None for _, r in rivals):
            lines.append(f"- `{c.name}`: incomplete: imagemend {_db(ours)}; "
                         + "; ".join(f"{m} {_db(r)}" for m, r in rivals))
            continue
        best, row = max(rivals, key=lambda mr: mr[1]["psnr_mean"])
        gap = ours["psnr_mean"] - row["psnr_mean"]
        text = (f"- `{c.name}`: imagemend {ours['psnr_mean']:.2f} dB, best classical {best} {row['psnr_mean']:.2f} dB"
                f": **{'beats it by' if gap >= 0 else 'loses by'} {abs(gap):.2f} dB**")
        if gap < 0:
            text += (f". {best} is given the {given[best]}, which imagemend has to estimate from the photo"
                     if given[best] else f". {best} is blind like imagemend: this is a gap to close")
            damaged = _row(s, dataset, c.name, "input")
            if damaged and damaged["psnr_mean"] is not None and abs(ours["psnr_mean"] - damaged["psnr_mean"]) < 0.05:
                text += (". imagemend left these photos as they came (within 0.05 dB of the input): a task runs "
                         "only where its reading exceeds what the clean training photos read, so that clean photos "
                         f"are left alone, and {best} corrects every photo it is given, clean or not "
                         "(model/weights/MODEL_CARD.md)")
        lines.append(text)
    return lines + [""]


def verdict_no_harm(s: dict, dataset: str) -> list[str]:
    row = _row(s, dataset, "clean", MULTI)
    if row is None:
        return []
    if row["psnr_mean"] is None:
        return ["### Does it leave clean photos alone?", "", f"- {_db(row)}", ""]
    ok = row["psnr_worst"] >= NO_HARM_DB
    return ["### Does it leave clean photos alone?", "",
            f"- {dataset}, output against the clean input: mean {row['psnr_mean']:.2f} dB, worst "
            f"{row['psnr_worst']:.2f} dB (`{row['worst_image']}`): **{'meets' if ok else 'fails'}** the "
            f"{NO_HARM_DB:.0f} dB bar", ""]


def verdict_single(s: dict, dataset: str, cases: tuple[Case, ...], r: Restorer, single: dict[str, str],
                   same: bool = False) -> list[str]:
    """Multitask against single-task: the same-budget multitask model where one is given (a fair
    match), else the shipped model (which may have had more training than the single-task models)."""
    versus = SAME if same else MULTI
    lines = [f"### Multitask against single-task models ({dataset}, mean PSNR, margin {SINGLE_TASK_MARGIN_DB} dB)",
             "", "Compared: " + ("a multitask model trained with the single-task models' recipe and budget "
                                 "(`--same-budget`); the shipped model's numbers are given beside it." if same else
                                 "the shipped model."), ""]
    for task in TASKS:
        mine = [c for c in cases if c.task == task]
        if not mine:
            continue
        if task not in single:
            lines.append(f"- {task}: **not measured yet**. Train the single-task model with "
                         f"`{recipe(r.meta.get('info', {}), f'runs/single-{task}', [task])}`"
                         f" and rerun this report with `--single-task {task}=runs/single-{task}/final.safetensors`.")
            continue
        for c in mine:
            multi, only, one = (_row(s, dataset, c.name, m) for m in (versus, ONLY, SINGLE))
            if any(x is None or x["psnr_mean"] is None for x in (multi, only, one)):
                lines.append(f"- {task}, `{c.name}`: incomplete: multitask {_db(multi)}, task only {_db(only)}, "
                             f"single-task {_db(one)}")
                continue
            gap = multi["psnr_mean"] - one["psnr_mean"]
            status = ("within the margin" if gap >= -SINGLE_TASK_MARGIN_DB
                      else f"**multitask loses by {-gap:.2f} dB, beyond the margin**")
            shipped = _row(s, dataset, c.name, MULTI)
            beside = (f"shipped model {_db(shipped)}, with only this task on {only['psnr_mean']:.2f} dB" if same else
                      f"multitask with only this task on: {only['psnr_mean']:.2f} dB, task only "
                      f"{only['psnr_mean'] - one['psnr_mean']:+.2f} dB")
            lines.append(f"- {task}, `{c.name}`: multitask {multi['psnr_mean']:.2f} dB, single-task "
                         f"{one['psnr_mean']:.2f} dB ({gap:+.2f} dB): {status} ({beside})")
    stage = r.meta.get("info", {}).get("stage", "joint")
    if not same and stage != "joint" and len(single) < len([t for t in TASKS if any(c.task == t for c in cases)]):
        lines += ["", f"The shipped weights' training record ends with a `{stage}` stage: give each single-task "
                  "model the same stages (the commands above are its joint stage), so the budgets match."]
    lines += ["", "The margin is checked with every task on, as `imagemend run` works; the task-only number shows "
              "how much of a gap comes from other tasks acting where they should not."]
    return lines + [""]


# ---------------------------------------------------------------- tables

def _fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def table(s: dict, dataset: str, cases: tuple[Case, ...], given: dict[str, str]) -> list[str]:
    lines = ["| case | method | PSNR mean | PSNR worst (photo) | SSIM mean | CIEDE2000 mean | s/MP |",
             "|---|---|---|---|---|---|---|"]
    for c in cases:
        for (d, cn, m), row in s.items():
            if d != dataset or cn != c.name:
                continue
            label = m + (f" (given the {given[m]})" if given.get(m) else "")
            if row["psnr_mean"] is None:
                lines.append(f"| `{c.name}` | {label} | FAILED on {row['failed']} of {row['images']}: "
                             f"{row['first_error']} | | | | |")
                continue
            lines.append(f"| `{c.name}` | {label} | {row['psnr_mean']:.2f} | {row['psnr_worst']:.2f} "
                         f"(`{row['worst_image']}`) | {_fmt(row['ssim_mean'], '.4f')} | "
                         f"{_fmt(row['ciede2000_mean'], '.2f')} | {row['seconds_per_mp']:.2f} |")
    return lines


def speeds(s: dict) -> dict[str, float]:
    """Seconds per megapixel per method over every case it ran on (the identity left out)."""
    acc: dict[str, list[float]] = {}
    for (_, _, m), row in s.items():
        if m != "input":
            acc.setdefault(m, []).append(row["seconds_per_mp"])
    return {m: sum(v) / len(v) for m, v in acc.items()}


def chart_columns(s: dict, dataset: str, given: dict[str, str]) -> list[tuple[str, Callable]]:
    def best_classical(case: str):
        rows = [row for (d, cn, m), row in s.items() if d == dataset and cn == case and m in given
                and row["psnr_mean"] is not None]
        return max(rows, key=lambda r: r["psnr_mean"]) if rows else None

    return [("damaged input", lambda c: _row(s, dataset, c, "input")),
            ("best classical method", best_classical),
            ("imagemend, all tasks", lambda c: _row(s, dataset, c, MULTI)),
            (ONLY, lambda c: _row(s, dataset, c, ONLY)),
            ("single-task model", lambda c: _row(s, dataset, c, SINGLE)),
            (SAME, lambda c: _row(s, dataset, c, SAME))]


# ---------------------------------------------------------------- the command

def check_extra() -> None:
    """The charts need matplotlib (the `report` extra): say so before hours of scoring, not after."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise SystemExit("imagemend report draws charts with matplotlib: pip install -e '.[report]' -c constraints.txt")


def run(args: argparse.Namespace) -> str:
    check_extra()
    if args.groups:
        groups.check_root(args.groups)
    code = commit()  # now: the checkout may move during a run of hours
    torch.set_num_threads(args.threads)
    cases = suite(args.suite, args.cases.split(",") if args.cases else None)
    names = args.baselines.split(",") if args.baselines else None
    weights_path = args.weights or str(DEFAULT_WEIGHTS)
    r = Restorer(weights_path, device="cpu")
    single_paths = parse_single(args.single_task or [])
    single = {t: Restorer(p, device="cpu") for t, p in single_paths.items()}
    same = Restorer(args.same_budget, device="cpu") if args.same_budget else None
    pick = methods_for(r, single, names, same)
    cache = ScoreCache(args.cache) if args.cache else None
    scores, datasets = [], []
    for d in args.data:
        photos = load_photos(d, args.limit)
        name = Path(d.rstrip("/")).name
        datasets.append((name, d, len(photos)))
        print(f"{name}: {len(photos)} photos, {len(cases)} cases", flush=True)
        scores += score_all(pick, cases, photos, name, cache=cache)
    s = summarise(scores)
    given = {b.name: b.given for b in baselines.BASELINES}
    out = Path(args.out)
    assets = out / "quality"
    assets.mkdir(parents=True, exist_ok=True)
    real, real_scores = [], []
    for url in args.real_pairs or []:
        pairs = real_photos.load_pairs(url)
        name = Path(url.rstrip("/")).name
        print(f"{name}: {len(pairs)} real noisy captures with references", flush=True)
        chosen = real_photos.methods(r, model_version("imagemend", r), all(map(real_photos.is_jpeg, pairs)), names)
        real_scores += real_photos.score_pairs(pairs, chosen, name, cache)
        real.append((name, url))
    sheets = [(url, real_photos.noisy_sheet(r, url, assets / "real" / f"sheet-{Path(url.rstrip('/')).name}.png"))
              for url in args.real_noisy or []]
    s_real = summarise(real_scores)
    (assets / "results.json").write_text(json.dumps(
        {"datasets": datasets, "cases": [c.name for c in cases], "weights_sha256": r.weights_sha256,
         "summary": [{"dataset": k[0], "case": k[1], "method": k[2], **v} for k, v in s.items()],
         "real": [{"dataset": k[0], "method": k[2], **v} for k, v in s_real.items()]}, indent=1))
    made = [line for t, p in single_paths.items() for line in provenance(f"single-task {t}", p, single[t], [t])]
    made += provenance(SAME, args.same_budget, same, list(TASKS)) if same else []
    real_lines = [line for i, (name, url) in enumerate(real) for line in real_photos.section(
        real_scores, s_real, name, url, sheets if i == len(real) - 1 else [])]
    group_lines = ["## Tone and colour per group of photos", "",
                   "Blind tone and colour correction is judged per group of photos (`--group-by`, model card: "
                   "\"Per group of photos\"), on seeded pseudo-archives of the collections under "
                   f"`{args.groups}`.", "", *groups.evaluate(args.groups, r, level=3)] if args.groups else []
    text = document(args, r, Path(weights_path).name, cases, s, datasets, given, single_paths, names, assets, pick,
                    code, cache, made, real_lines + group_lines)
    (out / "QUALITY.md").write_text(text)
    return text


def document(args, r: Restorer, weights_name: str, cases: tuple[Case, ...], s: dict, datasets: list,
             given: dict[str, str], single: dict[str, str], names: list[str] | None, assets: Path,
             pick: Callable[[Case], list[Method]], code: str, cache: ScoreCache | None = None,
             made: list[str] | None = None, real: list[str] | None = None) -> str:
    first = datasets[0][0]
    lines = ["# Quality: imagemend against the damaged input, classical methods and single-task models", "",
             "Generated by `imagemend report`; do not edit by hand, rerun the command.", "",
             *header(None, r, weights_name, cases, code),
             "- photos: " + "; ".join(f"`{path}` ({n} photos)" for _, path, n in datasets)
             + (f", first {args.limit} of each" if args.limit else ""),
             f"- single-task weights: {', '.join(f'{t}=`{p}`' for t, p in single.items()) or 'none given'}",
             f"- multitask weights of the same budget: `{args.same_budget or 'none given'}`"]
    if cache:
        lines.append(f"- scores: {cache.added} computed by this run, {cache.reused} kept from earlier runs in "
                     f"`{cache.path}` (same method versions; their seconds are those runs' timings)")
    lines.append("")
    if is_placeholder(r):
        lines += ["> **The shipped weights are an untrained placeholder.** Every model number below measures the "
                  "placeholder, not the method; rerun this command once trained weights ship.", ""]
    missing = [b.name for b in baselines.BASELINES if not b.available and (names is None or b.name in names)]
    if missing:
        lines += [f"> Not run because their package is not installed: {', '.join(sorted(set(missing)))} "
                  "(`pip install -e .[report]`).", ""]
    lines += ["## Verdicts", "", *verdict_classical(s, first, cases, given), *verdict_no_harm(s, first),
              *verdict_single(s, first, cases, r, single, bool(args.same_budget))]
    if made:
        lines += ["### How the comparison models were made", "",
                  "Each was trained from scratch by the project's own `imagemend train` with one recipe and one "
                  "budget, then calibrated like the shipped model. The command under each is rebuilt from what its "
                  "file records (data, recipe, budget, calibration); a time budget (`--minutes`) gives a different "
                  "number of steps on other hardware.", "", *made, ""]
    for name, path, n in datasets:
        chart = psnr_chart(s, name, [c.name for c in cases if c.task != "clean"], chart_columns(s, name, given),
                           assets / f"psnr-{name}.png")
        lines += [f"## {name} ({n} photos from `{path}`)", "",
                  "PSNR (dB, capped at 100), SSIM and CIEDE2000 against the clean photo: mean over the photos, and "
                  "the worst photo. For the clean case the output is compared with its own input.", "",
                  *table(s, name, cases, given), "",
                  f"![mean PSNR per case, {name}]({chart.relative_to(assets.parent)})", ""]
    sp = speeds(s)
    chart = speed_chart(sp, assets / "speed.png")
    lines += ["## Speed", "", f"Seconds per megapixel on this machine ({torch.get_num_threads()} torch threads, "
              "one photo at a time), averaged over the cases each method ran on. Timings vary between runs; "
              "the quality numbers do not.", "", "| method | s/MP |", "|---|---|"]
    lines += [f"| {m} | {v:.2f} |" for m, v in sorted(sp.items(), key=lambda kv: kv[1])]
    lines += ["", f"![seconds per megapixel]({chart.relative_to(assets.parent)})", ""]
    if not args.no_sheets:
        lines += ["## Before and after", "",
                  f"Contact sheets of scikit-image's own sample photos ({', '.join(SAMPLE_PHOTOS)}), shrunk to "
                  f"{TILE} px, one case per task: the evaluation photos are research-only and are never put in the "
                  "repository. Under each tile, its PSNR against the clean tile.", ""]
        shown: list[str] = []
        for c in cases:
            if c.task in shown or c.task == "clean":
                continue
            photo = SAMPLE_PHOTOS[len(shown) % len(SAMPLE_PHOTOS)]
            shown.append(c.task)
            sheet = contact_sheet(c, [m for m in pick(c) if m.kind != "input"], [photo],
                                  assets / f"sheet-{c.task}.png")
            lines += [f"![{c.name}]({sheet.relative_to(assets.parent)})", ""]
    lines += real or []
    lines += ["## The cases", "", f"Suite `{args.suite}` (model/evaluation/suites.py); each photo's damage is seeded "
              "from the "
              "case name and the photo's file name, so every run and every method sees the same damaged photos.",
              "", markdown(cases), "",
              "## Classical methods", "",
              "| task | method | told |", "|---|---|---|"]
    lines += [f"| {b.task} | {b.name} | {b.given or 'nothing (blind)'} |" for b in baselines.BASELINES]
    lines += ["", "BM3D is the `bm3d` package by Tampere University (Dabov et al. 2007; Makinen et al. 2020), "
              "licensed for non-commercial use only: it is an optional extra, never a dependency of imagemend.", ""]
    return "\n".join(lines)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", action="append", required=True,
                   help="folder of clean photos (repeatable; the first one decides the verdicts)")
    p.add_argument("--out", default="out/report", help="folder for QUALITY.md; charts and sheets go to <out>/quality/ "
                   "(the project's own docs/QUALITY.md is made with --out docs)")
    p.add_argument("--suite", default="standard")
    p.add_argument("--cases", help="comma-separated subset of the suite's cases")
    p.add_argument("--limit", type=int, help="only the first N photos of each folder")
    p.add_argument("--baselines", help="comma-separated subset of the classical methods (e.g. leave out bm3d)")
    p.add_argument("--weights", help="multitask weights (default: the shipped weights)")
    p.add_argument("--single-task", action="append", metavar="TASK=WEIGHTS",
                   help="a single-task model trained with `imagemend train --tasks TASK` (repeatable)")
    p.add_argument("--same-budget", metavar="WEIGHTS",
                   help="a multitask model trained with the single-task models' recipe and budget: the fair match")
    p.add_argument("--no-sheets", action="store_true", help="skip the contact sheets")
    p.add_argument("--cache", metavar="FILE",
                   help="JSON-lines file of scores: a stopped run resumes, and a rerun recomputes only what changed")
    p.add_argument("--real-pairs", action="append", metavar="DIR",
                   help="real noisy captures `*_real.*` with references `*_mean.*` beside them, e.g. PolyU70 "
                        "(repeatable): the \"Real photos\" section")
    p.add_argument("--real-noisy", action="append", metavar="DIR",
                   help="real noisy photos without reference, e.g. RNI15: before/after sheets written under "
                        "<out>/quality/real/, which git ignores (research-only photos are never committed)")
    p.add_argument("--groups", metavar="ROOT",
                   help="data root holding train/CBSD432, val/ and extra/ (e.g. ../shared/data): the \"Tone and "
                        "colour per group of photos\" section, from seeded pseudo-archives of its collections")
    p.add_argument("--threads", type=int, default=2)


def main(args: argparse.Namespace) -> None:
    print(run(args))
