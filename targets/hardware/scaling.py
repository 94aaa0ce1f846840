"""Technology node and supply voltage: scaling compute energy and area between nodes.

Compute energies and areas in the target files are published at one node
and voltage (Horowitz, ISSCC 2014: 45 nm, 0.9 V). A target states its own
node and supply (`[technology]`, `[clock] voltage_v`); this module scales
with Stillmaker & Baas, "Scaling equations for the accurate prediction of
CMOS device performance from 180 nm to 7 nm", Integration 58 (2017): energy
per operation at node n and supply V is their fitted polynomial
e_n(V) = a V^2 + b V + c, so energy scales by e_to(V_to) / e_from(V_from);
area by their published node-to-node factors. The coefficients are the
paper's high-performance (HP) fits, as tabulated in UCLA NanoCAD's nodeScale
(wromaszkan/nodeScale). DVFS (`targets.dvfs`) changes `voltage_v` and gets the
energy through the same polynomial, and each operating point's clock from
the delay fit: delay at node n and supply V is d_n(V) = a V^3 + b V^2 + c V + d,
so the frequency scales by d(V_from) / d(V_to).

12 nm has no fit of its own; TSMC's 12 nm FinFET is a shrink of its 16 nm
process, so a 12 nm target names the 16 nm fit (`scaling_node = 16`), and the
sensitivity study also tries the 10 nm fit, which brackets it from below.
"""

from __future__ import annotations

from dataclasses import dataclass

STILLMAKER = "Stillmaker & Baas, Integration 58 (2017), HP fits (as tabulated in wromaszkan/nodeScale)"

# energy per operation, relative: e(V) = a V^2 + b V + c
ENERGY_FIT: dict[int, tuple[float, float, float]] = {
    45: (1.018, -0.3107, 0.1539), 32: (0.8367, -0.4341, 0.1701), 20: (0.373, -0.1582, 0.04104),
    16: (0.2958, -0.1241, 0.03024), 14: (0.2363, -0.09675, 0.02239), 10: (0.2068, -0.09311, 0.02375),
    7: (0.1776, -0.09097, 0.02447),
}
# gate delay, relative: d(V) = a V^3 + b V^2 + c V + d
DELAY_FIT: dict[int, tuple[float, float, float, float]] = {
    45: (-501.6, 1567.0, -1619.0, 566.1), 32: (-1047.0, 2982.0, -2797.0, 873.5), 20: (0.0, 34.63, -66.37, 41.15),
    16: (0.0, 24.8, -47.52, 28.87), 14: (-40.66, 109.2, -100.6, 35.92), 10: (-34.95, 93.65, -85.99, 30.4),
    7: (-28.58, 76.6, -70.26, 24.69),
}
# area of a design at 45 nm divided by its area at the node
AREA_FROM_45: dict[int, float] = {45: 1.0, 32: 2.2, 20: 4.7, 16: 5.3, 14: 5.8, 10: 9.8, 7: 17.0}
NODES = tuple(sorted(ENERGY_FIT))


def energy_fit(node: int, volts: float) -> float:
    a, b, c = ENERGY_FIT[node]
    return a * volts * volts + b * volts + c


def delay_fit(node: int, volts: float) -> float:
    a, b, c, d = DELAY_FIT[node]
    return ((a * volts + b) * volts + c) * volts + d


@dataclass(frozen=True)
class Technology:
    """The node a target is built in, the fit that scales to it, and the published figures' own node."""

    node_nm: float
    scaling_node: int            # the Stillmaker & Baas fit used for the node
    voltage_v: float             # supply of the compute logic (from [clock])
    reference_node: int          # node of the published compute energies and areas
    reference_voltage_v: float
    source: str

    @property
    def energy_factor(self) -> float:
        return energy_fit(self.scaling_node, self.voltage_v) / energy_fit(self.reference_node, self.reference_voltage_v)

    @property
    def area_factor(self) -> float:
        return AREA_FROM_45[self.reference_node] / AREA_FROM_45[self.scaling_node]

    def describe(self) -> str:
        return (f"scaled from {self.reference_node} nm at {self.reference_voltage_v:g} V to {self.node_nm:g} nm "
                f"({self.scaling_node} nm fit) at {self.voltage_v:g} V by {STILLMAKER}: energy x "
                f"{self.energy_factor:.3g}, area x {self.area_factor:.3g}")


UNSCALED = Technology(45, 45, 0.9, 45, 0.9, "no [technology] table: compute figures used as given")
