"""The parts of a target around the PE array: registers, buffers, accumulators, the on-chip interconnect.

Each is a table of the target file with a source for every number, and each
adds its per-access energy, leakage and area to the same breakdown as the
memories:

- `[pe_registers]`: per PE, the registers a MAC reads its operands from and
  keeps its partial sum in; `entries` stationary values per PE (a weight-
  stationary array with deep register files holds a whole block of weights);
  energies per access, accesses per MAC;
- `[[buffer]]`: operand buffers between the memories and the array (EdgeBERT's
  two 64 KB input buffers), mask buffers (the bit masks of sparse operands)
  and the auxiliary buffer (LayerNorm parameters and biases); numbers from a
  memory technology model (`model = "sram"`, as memory levels) or given;
- `[accumulators]`: partial sums between array tiles (EdgeBERT: 16 x 16 x 16 bit);
- `[noc]`: energy per byte every transfer spends on the wires between a
  memory or buffer and the array (DMA and interconnect), its leakage and area.

Registers and accumulators are logic: energies published at another node
(`reference_node`, `reference_voltage_v` in their table) are scaled to the
target's node and supply by the same Stillmaker & Baas fit as the compute
energies (`targets.scaling`), and their areas by the same node factors; the
interconnect's energy may be given as a multiple of the array's MAC
(`energy_macs_per_byte`, as Eyeriss states its data-movement costs), and
then follows the MAC's scaling. Leakage is kept as given (the fits are of
dynamic energy and delay).

Every table is optional for a user's target: a missing one costs nothing and
holds nothing (no buffers: operands stream from their memories; no
accumulators: partial sums go back to memory).
"""

from __future__ import annotations

from dataclasses import dataclass

from aalbert.targets.hardware.levels import on_chip_model
from aalbert.targets.hardware.tables import Table, TargetError, named_table

BUFFER_ROLES = ("operands", "masks", "aux")


@dataclass(frozen=True)
class PERegisters:
    entries: int = 1                     # stationary operand values each PE holds
    operand_pj: float = 0.0              # one access to a register holding an operand value
    psum_pj: float = 0.0                 # one access to a partial-sum register
    operand_accesses_per_mac: float = 0.0
    psum_accesses_per_mac: float = 0.0
    leakage_mw: float = 0.0
    area_mm2: float = 0.0
    source: str = "not described: costs nothing"
    reference: tuple[int, float] | None = None   # (node, volts) of the energies given, scaled to the target's

    def per_mac_pj(self) -> float:
        return self.operand_accesses_per_mac * self.operand_pj + self.psum_accesses_per_mac * self.psum_pj


@dataclass(frozen=True)
class Buffer:
    name: str
    holds: str                           # operands | masks | aux
    capacity_bytes: int
    read_pj_per_byte: float
    write_pj_per_byte: float
    leakage_mw: float
    area_mm2: float
    source: str


@dataclass(frozen=True)
class Accumulators:
    entries: int = 0                     # partial sums held between array tiles
    bits: int = 32
    access_pj: float = 0.0               # one read or write of an entry
    leakage_mw: float = 0.0
    area_mm2: float = 0.0
    source: str = "not described: none"
    reference: tuple[int, float] | None = None   # (node, volts) of the energy given, scaled to the target's


@dataclass(frozen=True)
class NoC:
    energy_pj_per_byte: float = 0.0      # every byte a transfer moves between a memory or buffer and the array
    leakage_mw: float = 0.0
    area_mm2: float = 0.0
    source: str = "not described: costs nothing"
    macs_per_byte: float | None = None   # energy given as this many of the array's MACs (matmul format)


@dataclass(frozen=True)
class Components:
    registers: PERegisters = PERegisters()
    buffers: tuple[Buffer, ...] = ()
    accumulators: Accumulators = Accumulators()
    noc: NoC = NoC()

    def buffer(self, name: str) -> Buffer:
        for b in self.buffers:
            if b.name == name:
                return b
        raise KeyError(name)

    def operand_buffers(self) -> tuple[Buffer, ...]:
        return tuple(b for b in self.buffers if b.holds == "operands")

    def role(self, holds: str) -> Buffer | None:
        return next((b for b in self.buffers if b.holds == holds), None)

    @property
    def leakage_mw(self) -> float:
        return (self.registers.leakage_mw + self.accumulators.leakage_mw + self.noc.leakage_mw
                + sum(b.leakage_mw for b in self.buffers))

    @property
    def area_mm2(self) -> float:
        return (self.registers.area_mm2 + self.accumulators.area_mm2 + self.noc.area_mm2
                + sum(b.area_mm2 for b in self.buffers))

    def leakage_parts(self) -> dict[str, float]:
        """mW per component name, as the energy breakdown names them."""
        out = {"pe_regs": self.registers.leakage_mw, "acc": self.accumulators.leakage_mw, "noc": self.noc.leakage_mw}
        out.update({b.name: b.leakage_mw for b in self.buffers})
        return {k: v for k, v in out.items() if v}


def parse_components(where: str, data: dict, mhz: float, used: set) -> Components:
    """The optional tables of a target file (`used` collects the top-level keys read)."""

    regs = PERegisters()
    if "pe_registers" in data:
        t = Table(f"{where}: [pe_registers]", data["pe_registers"])
        regs = PERegisters(t.positive("entries", int), t.positive("operand_pj", allow_zero=True),
                           t.positive("psum_pj", allow_zero=True),
                           t.positive("operand_accesses_per_mac", allow_zero=True),
                           t.positive("psum_accesses_per_mac", allow_zero=True),
                           t.positive("leakage_mw", allow_zero=True), t.positive("area_mm2", allow_zero=True),
                           t.get("source", str), _reference(t))
        t.done()
    acc = Accumulators()
    if "accumulators" in data:
        t = Table(f"{where}: [accumulators]", data["accumulators"])
        acc = Accumulators(t.positive("entries", int, allow_zero=True), t.positive("bits", int),
                           t.positive("access_pj", allow_zero=True), t.positive("leakage_mw", allow_zero=True),
                           t.positive("area_mm2", allow_zero=True), t.get("source", str), _reference(t))
        t.done()
    noc = NoC()
    if "noc" in data:
        t = Table(f"{where}: [noc]", data["noc"])
        if ("energy_pj_per_byte" in t.data) == ("energy_macs_per_byte" in t.data):
            raise TargetError(f"{t.where}: give one of 'energy_pj_per_byte' and 'energy_macs_per_byte' (a multiple "
                              "of the array's MAC)")
        macs = t.positive("energy_macs_per_byte", allow_zero=True) if "energy_macs_per_byte" in t.data else None
        noc = NoC(t.positive("energy_pj_per_byte", allow_zero=True) if macs is None else 0.0,
                  t.positive("leakage_mw", allow_zero=True), t.positive("area_mm2", allow_zero=True),
                  t.get("source", str), macs)
        t.done()
    buffers = []
    raw = data.get("buffer", [])
    if not isinstance(raw, list):
        raise TargetError(f"{where}: [[buffer]] must be an array of tables")
    for i, b in enumerate(raw, start=1):
        buffers.append(_buffer(where, i, b, mhz))
    names = [b.name for b in buffers]
    if len(set(names)) != len(names):
        raise TargetError(f"{where}: two buffers are named '{next(n for n in names if names.count(n) > 1)}'")
    used.update({"pe_registers", "accumulators", "noc", "buffer"})
    return Components(regs, tuple(buffers), acc, noc)


def _reference(t: Table) -> tuple[int, float] | None:
    """The (node, volts) a table's energies were published at, when it gives them (both keys or neither)."""
    from aalbert.targets.hardware.scaling import NODES

    if "reference_node" not in t.data and "reference_voltage_v" not in t.data:
        return None
    node = t.positive("reference_node", int)
    if node not in NODES:
        raise TargetError(f"{t.where}: key 'reference_node' must be one of {', '.join(map(str, NODES))} (the nodes "
                          f"Stillmaker & Baas fit), got {node}")
    return node, t.positive("reference_voltage_v")


def scale_components(c: Components, tech, mac_pj: float) -> Components:
    """Registers and accumulators scaled from their reference node and supply to `tech`'s (energy and area), the
    interconnect's energy from the array's MAC (`mac_pj`, already scaled) when given as a multiple of it."""
    import dataclasses

    from aalbert.targets.hardware.scaling import UNSCALED, Technology

    def moved(ref) -> Technology | None:
        if ref is None or tech is UNSCALED:
            return None
        return Technology(tech.node_nm, tech.scaling_node, tech.voltage_v, ref[0], ref[1], tech.source)
    regs, acc, noc = c.registers, c.accumulators, c.noc
    t = moved(regs.reference)
    if t is not None:
        regs = dataclasses.replace(regs, operand_pj=regs.operand_pj * t.energy_factor, psum_pj=regs.psum_pj
                                   * t.energy_factor, area_mm2=regs.area_mm2 * t.area_factor,
                                   source=f"{regs.source}; {t.describe()}")
    t = moved(acc.reference)
    if t is not None:
        acc = dataclasses.replace(acc, access_pj=acc.access_pj * t.energy_factor,
                                  area_mm2=acc.area_mm2 * t.area_factor, source=f"{acc.source}; {t.describe()}")
    if noc.macs_per_byte is not None:
        noc = dataclasses.replace(noc, energy_pj_per_byte=noc.macs_per_byte * mac_pj,
                                  source=f"{noc.source}; energy {noc.macs_per_byte:g} x the array's "
                                  f"{mac_pj:.4g} pJ MAC = {noc.macs_per_byte * mac_pj:.4g} pJ per byte")
    return dataclasses.replace(c, registers=regs, accumulators=acc, noc=noc)


def _buffer(where: str, index: int, data, mhz: float) -> Buffer:
    t = named_table(where, "buffer", index, data)
    name = t.get("name", str)
    holds = t.choice("holds", BUFFER_ROLES)
    capacity = t.positive("capacity_bytes", int)
    source = t.get("source", str)
    if "model" in t.data:
        _, n = on_chip_model(t, capacity, mhz, t.positive("banks", int, None) if "banks" in t.data else None)
        word = n.word_bits / 8
        values = {"read_pj_per_byte": n.read_energy_pj / word, "write_pj_per_byte": n.write_energy_pj / word,
                  "leakage_mw": n.leakage_mw, "area_mm2": n.area_mm2}
        source = f"{source}; numbers: {n.source}"
    else:
        values = {k: t.positive(k, allow_zero=True) for k in ("read_pj_per_byte", "write_pj_per_byte",
                                                              "leakage_mw", "area_mm2")}
    t.done()
    return Buffer(name, holds, capacity, values["read_pj_per_byte"], values["write_pj_per_byte"],
                  values["leakage_mw"], values["area_mm2"], source)
