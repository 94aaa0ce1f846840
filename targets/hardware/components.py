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


@dataclass(frozen=True)
class NoC:
    energy_pj_per_byte: float = 0.0      # every byte a transfer moves between a memory or buffer and the array
    leakage_mw: float = 0.0
    area_mm2: float = 0.0
    source: str = "not described: costs nothing"


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
                           t.get("source", str))
        t.done()
    acc = Accumulators()
    if "accumulators" in data:
        t = Table(f"{where}: [accumulators]", data["accumulators"])
        acc = Accumulators(t.positive("entries", int, allow_zero=True), t.positive("bits", int),
                           t.positive("access_pj", allow_zero=True), t.positive("leakage_mw", allow_zero=True),
                           t.positive("area_mm2", allow_zero=True), t.get("source", str))
        t.done()
    noc = NoC()
    if "noc" in data:
        t = Table(f"{where}: [noc]", data["noc"])
        noc = NoC(t.positive("energy_pj_per_byte", allow_zero=True), t.positive("leakage_mw", allow_zero=True),
                  t.positive("area_mm2", allow_zero=True), t.get("source", str))
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
