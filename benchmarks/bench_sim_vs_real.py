"""The simulator against recorded real runs: every real run of `simcode study sim_vs_real` (full size) kept
in benchmarks/data/real_runs-epyc-2core.csv, from several sittings of this 2-core machine, against its
simulated twin (the same cell and seed), simulated now with this version's model and the shipped profile.

A study scores one sitting, and the machine's pace drifts between sittings. Pooled, the real runs at pace
(speed probe and environment steps within 5% of the profile's: simcode.study.sim_vs_real.at_pace) give
several runs per cell and the model's own error, the drift left out. Run it after changing the model or the
profile; it only simulates (no Ray):

    python benchmarks/bench_sim_vs_real.py [RESULTS.csv ...] [--study NAME]    (about 15 s)

RESULTS.csv: results.csv files of sim_vs_real studies (or of the study NAME, such as sim_vs_real_beyond),
whose real runs are taken (default: the recording).
Prints per cell the real runs at pace and simulated / real over them and over every real run, then how
many cells are within 10% and 5%.
"""

import argparse
import sys
from pathlib import Path

from simcode.errors import BadInput
from simcode.study.recorded import real_runs, scored
from simcode.study.sim_vs_real import CLOSE, WITHIN, within
from simcode.study.spec import load_study

RECORDING = Path(__file__).resolve().parent / "data" / "real_runs-epyc-2core.csv"


def score(ratios) -> str:
    ratios = ratios.dropna()
    hits, close = (int(within(ratios, bound).sum()) for bound in (WITHIN, CLOSE))
    return (f"{len(ratios)} cells, {hits} within {WITHIN:.0%} and {close} within {CLOSE:.0%}; sim/real "
            f"{ratios.min():.3f} to {ratios.max():.3f}, mean |error| {(ratios - 1).abs().mean():.3f}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, help="results.csv of the study (default: the recording)")
    parser.add_argument("--study", default="sim_vs_real", help="the study they are results of (sim_vs_real)")
    args = parser.parse_args(argv)
    try:
        study = load_study(args.study)
        real = real_runs(args.results or [RECORDING], study)
        table = scored(real, study)
    except BadInput as exc:
        print(f"bench_sim_vs_real: {exc}", file=sys.stderr)
        return 2
    sittings = real["study"].nunique() if "study" in real.columns else len(args.results)
    print(f"{len(real)} real runs from {sittings} studies, {int(table['real runs at pace'].sum())} of them at pace")
    print(table.round(3).to_string())
    print("at pace:  ", score(table["sim/real at pace"]))
    print("every run:", score(table["sim/real, every run"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
