"""Join the two halves of a staged training into one weights file, keeping the history of both.

`imagemend train --stage local` and `--stage global` continue a model's U-Net and global branch
apart (in parallel, on different machines); this takes the U-Net of one result and the global
branch of the other. The stages of the model they started from come first in the history.

    python -m imagemend.model.tools.merge --local runs/local/final.safetensors --global runs/glob/final.safetensors \\
        --base model/weights/imagemend-base.safetensors --out merged.safetensors

The calibration (thresholds, noise curve) belongs to the estimator, the global branch, and comes with
it: a new U-Net under the shipped branch keeps the shipped calibration, while a newly trained branch
has none until model/tools/calibrate.py measures it.

    python -m imagemend.model.tools.merge --local runs/local/final.safetensors \\
        --global model/weights/imagemend-base.safetensors \\
        --base model/weights/imagemend-base.safetensors --out merged.safetensors
"""

import argparse

from ..core.noise_level import load_reader, reader_fit_info
from ..core.weights import load_weights, save_weights

CALIBRATION_KEYS = ("thresholds", "noise_curve", "calibration")
STAGE_KEYS = ("stage", "commit", "data", "images", "steps", "wall_s", "device", "amp", "minutes", "train", "loss")


def history(info: dict) -> list[dict]:
    """A weights file's training stages, oldest first (a file trained in one go is one stage)."""
    return info["stages"] if "stages" in info else [{k: info.get(k) for k in STAGE_KEYS if k in info}]


def merge(local: str | list[str], glob: str, base: str | None, out: str, name: str = "imagemend-base",
          commit: str | None = None, noise_reader: str | None = None) -> str:
    """local: one run's U-Net, or several runs' averaged weight by weight (runs of the local stage
    from the same start, e.g. with different seeds: a "model soup", Wortsman et al. 2022; runs that
    stay in the basin they share average to a model at least as good as each. Session 7's four
    seeds scored the same as one of them, MODEL_CARD.md)."""
    locals_ = [local] if isinstance(local, str) else list(local)
    net, gmeta = load_weights(glob)
    runs = [load_weights(path) for path in locals_]
    states = [run.local.state_dict() for run, _ in runs]
    net.local.load_state_dict({k: sum(s[k].double() for s in states) / len(states) if v.is_floating_point() else v
                               for k, v in states[0].items()})
    reader_info = gmeta["info"].get("noise_reader")
    if noise_reader:  # a reader fitted apart (model/tools/fit_noise_reader.py); else the global file's, if any
        net.noise_reader, reader_info = load_reader(noise_reader), reader_fit_info(noise_reader)
    stages = history(load_weights(base)[1]["info"]) if base else []
    for path, meta in [*zip(locals_, (m for _, m in runs)), (glob, gmeta)]:
        if "stage" not in meta["info"]:  # not a training run's output (the shipped file): its stages are --base's
            continue
        stage = {k: meta["info"].get(k) for k in STAGE_KEYS if k in meta["info"]}
        averaged = {"averaged_with": len(locals_) - 1} if len(locals_) > 1 and path in locals_ else {}
        stages.append({**stage, "commit": commit or stage.get("commit"), "file": str(path).rsplit("/", 1)[-1],
                       **averaged})
    calibration = {k: gmeta["info"][k] for k in CALIBRATION_KEYS if k in gmeta["info"]}
    reader = {"noise_reader": reader_info} if net.noise_reader is not None and reader_info else {}
    return save_weights(out, net.eval(), {"name": name, **calibration, "stages": stages, **reader})


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--local", required=True, nargs="+",
                   help="weights whose local U-Net to take (a --stage local run); several: their mean")
    p.add_argument("--global", dest="glob", required=True, help="weights whose global branch to take")
    p.add_argument("--base", help="weights both runs started from: their stages open the history")
    p.add_argument("--out", required=True)
    p.add_argument("--commit", help="commit the runs were trained at, for the history")
    p.add_argument("--noise-reader",
                   help="camera-noise reader weights (python -m imagemend.model.tools.fit_noise_reader)")
    a = p.parse_args(argv)
    print(merge(a.local, a.glob, a.base, a.out, commit=a.commit, noise_reader=a.noise_reader))


if __name__ == "__main__":
    main()
