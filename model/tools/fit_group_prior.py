"""`python -m imagemend.model.tools.fit_group_prior`: fit the clean-group prior (model/evaluation/group_prior.py)
and write it to model/weights/group_prior.json.

    python -m imagemend.model.tools.fit_group_prior --data ../shared/data
"""

import argparse
from pathlib import Path
import sys

from ..core.groups import PRIOR
from ..evaluation.group_prior import (
    COLLECTIONS,
    LONG_SIDE,
    cast_weights,
    fit_prior,
    load_collection,
    read_all,
    response,
)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the data root holding train/, val/ and extra/")
    ap.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gain-photos", type=int, default=4, help="every n-th CBSD432 photo measures the gains")
    ap.add_argument("--out", type=Path, default=PRIOR)
    a = ap.parse_args(argv)
    train = list(load_collection(a.data, "CBSD432").values())
    weights = cast_weights(train)
    readings = read_all(a.data, a.collections, weights, {"CBSD432": train})
    prior = fit_prior(readings, a.seed, {"command": "python -m imagemend.model.tools.fit_group_prior " + " ".join(
        sys.argv[1:] if argv is None else argv), "collections": {n: len(r) for n, r in readings.items()},
        "long_side": LONG_SIDE, "gain_photos": len(train[::a.gain_photos]), "cast_weight_photos": len(train)},
        response(train[::a.gain_photos], a.seed), weights)
    prior.save(a.out)
    print(f"wrote {a.out}: {prior.provenance['sources']}")


if __name__ == "__main__":
    main()
