"""Where EdgeBERT's SST-2 sentences leave its ALBERT: the exit histogram behind examples/workloads/edgebert_sst2.toml.

EdgeBERT publishes, for every sentence of SST-2's evaluation set, the entropy of
each of its off-ramps (harvard-acc/EdgeBERT, sw/Entropy_LUT/dataset_sst2_eval.txt:
one line per sentence, comma-separated, the first 11 columns the off-ramps after
layers 1 to 11; its predictor notebook reads those columns). A sentence leaves
at the first off-ramp whose entropy is below the threshold (EdgeBERT's scripts
evaluate SST-2 at 0.23, 0.28 and 0.46 nats), else it runs all 12 layers. This
prints the histogram aalbert's workload files take, and the mean exit layer:

    python benchmarks/edgebert_exits.py dataset_sst2_eval.txt --threshold 0.28
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/edgebert_exits.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("entropies", type=Path, help="EdgeBERT's sw/Entropy_LUT/dataset_sst2_eval.txt")
    p.add_argument("--threshold", type=float, default=0.28, help="entropy threshold in nats (default: 0.28)")
    args = p.parse_args(argv)
    try:
        data = np.loadtxt(args.entropies, delimiter=",", ndmin=2)
    except (OSError, ValueError) as e:
        print(f"{p.prog}: error: {args.entropies}: {e}", file=sys.stderr)
        return 2
    if data.shape[1] < RAMPS or not np.isfinite(data).all():
        print(f"{p.prog}: error: {args.entropies}: expected {RAMPS} or more finite columns per line", file=sys.stderr)
        return 2
    counts = histogram(data, args.threshold)
    mean = sum((i + 1) * c for i, c in enumerate(counts)) / sum(counts)
    print(f"{sum(counts)} sentences, threshold {args.threshold:g} nats")
    print(f"histogram = {counts}")
    print(f"mean exit layer {mean:.2f} of {RAMPS + 1}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
