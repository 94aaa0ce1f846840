"""Early exit and DVFS policies: how each sentence of a stream is run, and what that gives.

Three policies run the same requests and sentences (`targets.sentences`):

- `none`: every layer, at the top operating point (the off-ramps are
  computed and ignored): conventional inference;
- `early-exit`: each sentence leaves at its off-ramp, at the top point
  (EdgeBERT's latency-unbounded early exit);
- `predict-scale`: EdgeBERT's scheme: layer 1 and its off-ramp run at the top
  point; if the sentence does not leave there, its exit is predicted from that
  first entropy, and the rest runs at the lowest-voltage point that still
  finishes the predicted layers within the latency target, counting what the
  request already waited, the first layer and the switch (`choose_point`; the
  top point when none does). The sentence leaves at its own off-ramp, or at
  the predicted layer if that comes first (EdgeBERT's count-down: a forced
  exit, whose answer is the earlier off-ramp's: accuracy lost);
- `predict-run-on`: the same prediction and operating point, but a sentence
  predicted to leave before its own off-ramp runs on to it at the chosen
  point (no forced exit: the layers the prediction did not plan for may
  miss the deadline).

Switching stalls the chip for the transition, leaking, and costs the
regulator's energy, once down and, if the chip stays powered, once back up.
On a target with a predicated format (`targets.hardware.predication`), every
policy but `none` runs what follows the first off-ramp in that format, as
EdgeBERT's 12 nm chip may after its first entropy (the upper bound: every
sentence that goes on does); `none` runs every product in its own format.

Each policy's stream reports the latency of every request (waiting, loading
weights and the inference), deadline misses against the target, energy per
inference, the mean number of layers run, the operating points used and how
the predictions went: of the sentences whose exit was predicted (all that
do not leave at the first off-ramp, when a latency target and operating
points are given), how many were predicted exactly, too early (`under`:
forced exits under `predict-scale`, run-ons under `predict-run-on`) and too
late (`over`: they leave at their own off-ramp, on a point chosen for more
layers than they ran).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aalbert.targets.runtime.sentences import Sentence
from aalbert.targets.sim.exit_costs import ExitCosts
from aalbert.targets.sim.requests import Request, Served, StreamResult, run_stream

POLICIES = {"none": "no early exit", "early-exit": "early exit", "predict-scale": "predict, then scale",
            "predict-run-on": "predict, scale, run on"}
PREDICTING = ("predict-scale", "predict-run-on")


def choose_point(first_s: float, rest_s: list[float], transition_s: float, budget_s: float) -> int:
    """The operating point (index into `rest_s`, highest voltage first) for the rest of a sentence: the lowest-
    voltage one at which the first layer (`first_s`, at the top point), the switch (`transition_s`, none to stay
    at the top) and the rest (`rest_s[q]`) fit in `budget_s`; the top point (0) when none does."""
    for q in range(len(rest_s) - 1, 0, -1):
        if first_s + transition_s + rest_s[q] <= budget_s:
            return q
    return 0


@dataclass
class PolicyResult:
    policy: str
    stream: StreamResult
    target_s: float | None             # the latency target (None: none given)
    layers: list[int]                  # layers each request ran
    forced: int = 0                    # sentences stopped at the predicted layer before their off-ramp let them go
    points: dict[str, int] = field(default_factory=dict)   # operating point -> sentences that ran at it
    predicted: int = 0                 # sentences whose exit was predicted
    under: int = 0                     # ... predicted before their own off-ramp (forced out, or run on)
    over: int = 0                      # ... predicted after it
    run_on: int = 0                    # sentences that ran on past the predicted layer to their own off-ramp

    @property
    def exact(self) -> int:
        return self.predicted - self.under - self.over

    @property
    def misses(self) -> int | None:
        if self.target_s is None:
            return None
        return int((self.stream.latencies > self.target_s * (1 + 1e-12)).sum())

    @property
    def mean_layers(self) -> float:
        return sum(self.layers) / len(self.layers) if self.layers else 0.0


class _Serving:
    """Serves the requests of a stream under one policy (request i being `sentences[i]`), counting the layers
    each runs, the operating points chosen and the exits a prediction forced early."""

    def __init__(self, policy: str, costs: ExitCosts, sentences: list[Sentence], per_wake: int,
                 target_s: float | None):
        self.policy, self.costs, self.sentences, self.per_wake, self.target_s = (policy, costs, sentences, per_wake,
                                                                                 target_s)
        self.layers: list[int] = []
        self.points: dict[str, int] = {}
        self.forced = self.run_on = self.predicted = self.under = self.over = 0

    def __call__(self, i: int, r: Request, cold: bool, waited: float) -> Served:
        costs, policy, target_s = self.costs, self.policy, self.target_s
        dvfs = costs.target.dvfs
        s, task = self.sentences[i], r.task
        cuts = costs.layers(task)
        end = len(cuts) - 1
        q, stop = 0, end if policy == "none" else s.exit
        mode = "" if policy == "none" else costs.mode
        if policy in PREDICTING and s.exit > 0 and dvfs is not None and target_s is not None:
            early = s.predicted < s.exit
            self.predicted += 1
            self.under += early
            self.over += s.predicted > s.exit
            if policy == "predict-scale":
                stop = min(s.exit, s.predicted)
                self.forced += early
            else:
                self.run_on += early
            first = costs.upto(task, 0, 0, cold)
            rest = [costs.timeline(task, p, mode).seconds(s.predicted) - costs.timeline(task, p, mode).seconds(0)
                    for p in range(len(costs.points))]
            q = choose_point(first[0], rest, dvfs.transition_ns * 1e-9, target_s - waited)
        self.layers.append(cuts[stop])
        label = costs.points[q].label()
        self.points[label] = self.points.get(label, 0) + 1
        if q == 0 and (not mode or stop == 0):
            return Served(*costs.upto(task, 0, stop, cold))
        seconds, energy, dram = costs.between(task, q, 0, stop, cold, mode)
        first_s, first_e, first_dram = costs.upto(task, 0, 0, cold)
        for k, v in first_e.items():
            energy[k] = energy.get(k, 0.0) + v
        if q == 0:  # the rest in the predicated format at the top point: no switch of supply
            return Served(first_s + seconds, energy, first_dram + dram)
        stall = costs.results[task].warm.idle_mw * dvfs.transition_ns  # mW x ns = pJ: the chip waits, leaking
        energy["leakage:transition"] = stall
        next_cold = (i + 1) % self.per_wake == 0
        energy["transition"] = dvfs.transition_pj * (1 if next_cold else 2)
        return Served(first_s + dvfs.transition_ns * 1e-9 + seconds, energy, first_dram + dram)


def run_policies(requests: list[Request], costs: ExitCosts, sentences: list[Sentence], inferences_per_wakeup: float,
                 target_ms: float | None, policies: tuple[str, ...] = tuple(POLICIES)) -> dict[str, PolicyResult]:
    """Every policy's (or those of `policies`) stream over `requests`, request i being `sentences[i]`."""
    target = costs.target
    target_s = target_ms / 1e3 if target_ms is not None else None
    per_wake = max(1, int(round(inferences_per_wakeup)))
    out = {}
    for policy in policies:
        serve = _Serving(policy, costs, sentences, per_wake, target_s)
        stream = run_stream(requests, costs.module, target, costs.results, inferences_per_wakeup, serve)
        out[policy] = PolicyResult(policy, stream, target_s, serve.layers, serve.forced, serve.points,
                                   serve.predicted, serve.under, serve.over, serve.run_on)
    return out
