"""Off-ramps: the naming convention by which a graph says where a sentence may leave its layer stack.

A graph output named `exit_logits_<k>` is the logits of an exit classifier
(an off-ramp) after layer k (k = 1, 2, ...; any increasing set of layers);
the `early-exit` pass gives each an `entropy` of its softmax, the output
`exit_entropy_<k>`, which the program compares with the task's threshold
after layer k. A sentence whose entropy falls below the threshold leaves
there; one that never does runs to the graph's end. Models imported from
ONNX or PyTorch get off-ramps recognized by naming their outputs this way;
the built-in example names them so with `--off-ramps`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aalbert.errors import AalbertError
from aalbert.ir.graph import Graph, Value

LOGITS = "exit_logits_"
ENTROPY = "exit_entropy_"
_NAME = re.compile(r"exit_(logits|entropy)_(.*)")


class ExitError(AalbertError):
    """Off-ramps that do not follow the convention, or exit settings that cannot be used."""


@dataclass(frozen=True)
class OffRamp:
    layer: int                  # the off-ramp sits after this layer (1-based)
    logits: Value
    entropy: Value | None       # None until the early-exit pass has run

    @property
    def labels(self) -> int:
        return self.logits.type.shape[-1] if self.logits.type.rank else 1


def off_ramps(graph: Graph) -> list[OffRamp]:
    """The graph's off-ramps in layer order (empty when it has none); one `ExitError` for a misnamed one."""
    logits: dict[int, Value] = {}
    entropy: dict[int, Value] = {}
    for name, value in graph.outputs:
        m = _NAME.fullmatch(name)
        if m is None:
            continue
        digits = m.group(2)
        if not digits.isdigit() or int(digits) < 1 or digits != str(int(digits)):
            raise ExitError(f"task {graph.name!r}: output '{name}' is not an off-ramp name: write "
                            f"'{LOGITS}<k>' with k the layer it follows (1, 2, ...)")
        table = logits if m.group(1) == "logits" else entropy
        k = int(digits)
        if k in table:
            raise ExitError(f"task {graph.name!r}: two outputs are named '{name}'")
        table[k] = value
    for k, v in logits.items():
        if not v.type.dtype.is_float or v.type.rank < 1:
            raise ExitError(f"task {graph.name!r}: off-ramp '{LOGITS}{k}' must be floating-point logits with a "
                            f"class axis, got {v.type}")
    stray = sorted(set(entropy) - set(logits))
    if stray:
        raise ExitError(f"task {graph.name!r}: output '{ENTROPY}{stray[0]}' has no '{LOGITS}{stray[0]}'")
    return [OffRamp(k, logits[k], entropy.get(k)) for k in sorted(logits)]


def exit_labels(ramps: list[OffRamp]) -> list[str]:
    """The exit points' names: the layer after which each off-ramp sits, then 'end' (every layer ran)."""
    return [str(r.layer) for r in ramps] + ["end"]
