"""Where EdgeBERT's SST-2 sentences leave its ALBERT: the exit histogram behind examples/workloads/edgebert_sst2.toml.

EdgeBERT publishes, for every sentence of SST-2's evaluation set, the entropy of
each of its off-ramps (harvard-acc/EdgeBERT, sw/Entropy_LUT/dataset_sst2_eval.txt:
one line per sentence, comma-separated, the first 11 columns the off-ramps after
layers 1 to 11; its predictor notebook reads those columns). A sentence leaves
at the first off-ramp whose entropy is below the threshold (EdgeBERT's scripts
evaluate SST-2 at 0.23, 0.28 and 0.46 nats), else it runs all 12 layers. This
prints the histogram aalbert's workload files take, and the mean exit layer:

    python benchmarks/edgebert_exits.py dataset_sst2_eval.txt --threshold 0.28

With --lut, EdgeBERT's own exit predictor is run on the same sentences: its
lookup table (sw/Entropy_LUT/sst2_lookup_table_opt.csv: one row per 0.01 nats
of the first off-ramp's entropy, then the entropy it expects at the off-ramps
after layers 2 to 11; its notebook entropypredictor.ipynb fits the table on
the training set's entropies, so these evaluation sentences are held out).
As its model does (sw/EdgeBERT/transformers/src/transformers/
modeling_highway_albert.py, predict_layer 1), a sentence that does not leave
after layer 1 takes the table's row nearest its first entropy, and is
predicted to leave at the first later off-ramp whose expected entropy is
below the threshold (here: the end when none is). This prints, for the
sentences leaving after each layer (a row), how many were predicted to
leave after each layer (the columns): the `predicted` table of the workload
files, and how many predictions were exact, too early and too late:

    python benchmarks/edgebert_exits.py dataset_sst2_eval.txt --threshold 0.28 \
        --lut sst2_lookup_table_opt.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

RAMPS = 11  # off-ramps after layers 1..11 of ALBERT-base's 12


def histogram(entropies: np.ndarray, threshold: float) -> list[int]:
    """Sentences leaving after each layer, 1 .. RAMPS + 1 (the last: no off-ramp let them go)."""
    below = entropies[:, :RAMPS] < threshold
    layer = np.where(below.any(axis=1), below.argmax(axis=1) + 1, RAMPS + 1)
    return np.bincount(layer, minlength=RAMPS + 2)[1:].tolist()


def exit_points(entropies: np.ndarray, threshold: float) -> np.ndarray:
    """Each sentence's exit point: 0 .. RAMPS - 1 the off-ramps after layers 1 .. RAMPS, RAMPS the end."""
    below = entropies[:, :RAMPS] < threshold
    return np.where(below.any(axis=1), below.argmax(axis=1), RAMPS)


def predicted_points(entropies: np.ndarray, lut: np.ndarray, threshold: float) -> np.ndarray:
    """Each sentence's exit point as EdgeBERT's lookup table predicts it from the first off-ramp's entropy
    (column 0 of `lut` the first entropy, columns 1 .. the entropies expected at off-ramps 2, 3, ...); a
    sentence that leaves at the first off-ramp needs no prediction."""
    rows = np.abs(lut[None, :, 0] - entropies[:, :1]).argmin(axis=1)
    below = lut[rows, 1:] < threshold
    guess = np.where(below.any(axis=1), below.argmax(axis=1) + 1, RAMPS)
    return np.where(exit_points(entropies, threshold) == 0, 0, guess)


def confusion(entropies: np.ndarray, lut: np.ndarray, threshold: float) -> list[list[int]]:
    """Sentences leaving at each exit point (rows) by the exit point predicted for them (columns)."""
    counts = np.zeros((RAMPS + 1, RAMPS + 1), dtype=np.int64)
    np.add.at(counts, (exit_points(entropies, threshold), predicted_points(entropies, lut, threshold)), 1)
    return counts.tolist()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/edgebert_exits.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("entropies", type=Path, help="EdgeBERT's sw/Entropy_LUT/dataset_sst2_eval.txt")
    p.add_argument("--threshold", type=float, default=0.28, help="entropy threshold in nats (default: 0.28)")
    p.add_argument("--lut", type=Path, help="EdgeBERT's sw/Entropy_LUT/sst2_lookup_table_opt.csv: also print its "
                   "predictor's exit points against the sentences' own")
    args = p.parse_args(argv)
    try:
        data = np.loadtxt(args.entropies, delimiter=",", ndmin=2)
        lut = np.loadtxt(args.lut, delimiter=",", ndmin=2) if args.lut else None
    except (OSError, ValueError) as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    if lut is not None and (lut.shape[1] != RAMPS or not np.isfinite(lut).all()):
        print(f"{p.prog}: error: {args.lut}: expected {RAMPS} finite columns per line (the first entropy, then "
              f"the {RAMPS - 1} expected at the off-ramps after layers 2-{RAMPS})", file=sys.stderr)
        return 2
    if data.shape[1] < RAMPS or not np.isfinite(data).all():
        print(f"{p.prog}: error: {args.entropies}: expected {RAMPS} or more finite columns per line", file=sys.stderr)
        return 2
    counts = histogram(data, args.threshold)
    mean = sum((i + 1) * c for i, c in enumerate(counts)) / sum(counts)
    print(f"{sum(counts)} sentences, threshold {args.threshold:g} nats")
    print(f"histogram = {counts}")
    print(f"mean exit layer {mean:.2f} of {RAMPS + 1}")
    if lut is not None:
        table = confusion(data, lut, args.threshold)
        print("predicted = [" + ",\n             ".join(str(row) for row in table) + "]")
        c = np.array(table)
        asked = int(c[1:].sum())
        early, late = int(np.tril(c, -1).sum()), int(np.triu(c, 1).sum())
        print(f"of {asked} sentences predicted (those not leaving after layer 1): {asked - early - late} exact, "
              f"{early} too early, {late} too late")
        layers = np.arange(1, RAMPS + 2)
        forced = sum(c[i, j] * min(layers[i], layers[j]) for i in range(RAMPS + 1) for j in range(RAMPS + 1))
        print(f"mean exit layer with exits forced at the predicted layer {forced / c.sum():.2f} of {RAMPS + 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
