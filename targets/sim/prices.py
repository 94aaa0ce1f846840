"""Prices: every energy per action and power per state the simulator charges, read from a `Target`.

A price table is a flat `{name: value}`: pJ per action, mW per state, the
leakage fractions of the power states and their wake-up costs, the DRAM's
background by state. Names:

- `mac:<format>` pJ per MAC; `reg:operand`, `reg:psum` pJ per register access; `acc` pJ per accumulator
  access; `sfu` pJ per element and scan; `noc` pJ per byte moved;
- `read:<level or buffer>`, `write:<level or buffer>` pJ per byte;
- `leak:pe`, `leak:sfu`, `leak:<part>` mW while the chip is powered (`power.static_energy`'s parts);
- `bank:<level>` mW per bank (on); `retention:<level>`, `off:<level>` the fraction of it kept in those
  states; `wake_pj:<level>` pJ per bank wake-up;
- `dram:<level>:active`, `:power_down`, `:self_refresh`, `:refresh` mW, `dram:<level>:exit_pj` per
  self-refresh exit, `dram:<level>:sr_after_ns` the idle gap past which it enters self-refresh.

Each is the number the simulator charges: PE registers and accumulators as scaled to the target's node and
supply, the interconnect from the scaled MAC, memories at their own supply, and, for a target at a DVFS point
(`spec.at_point`), the rail's energies and leakage with its regulator's drawn factor. Latencies and rates
(a bank's wake-up latency, the DRAM's peak rate and power-down timing) are not prices: they set the schedule
and the DRAM's active time, which the counts hold (`targets.sim.counts`).

`counts.price` multiplies a compile's counts by such a table; `retarget` builds the `Target` whose numbers
are a table's, so that a recompile and a re-pricing can be compared.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from aalbert.targets.hardware.components import Components
from aalbert.targets.hardware.spec import Target

Prices = dict[str, Any]   # a number per price, or an array of samples of it


def prices_of(t: Target) -> Prices:
    """Every price `t` charges (see the module doc)."""
    p: Prices = {f"mac:{k}": f.energy_pj_per_mac for k, f in t.compute.formats.items()}
    regs = t.parts.registers
    p.update({"reg:operand": regs.operand_pj, "reg:psum": regs.psum_pj, "acc": t.parts.accumulators.access_pj,
              "sfu": t.sfu.energy_pj_per_element, "noc": t.parts.noc.energy_pj_per_byte,
              "leak:pe": t.compute.leakage_mw, "leak:sfu": t.sfu.leakage_mw})
    for name, mw in t.parts.leakage_parts().items():
        p[f"leak:{name}"] = mw
    for b in t.parts.buffers:
        p[f"read:{b.name}"], p[f"write:{b.name}"] = b.read_pj_per_byte, b.write_pj_per_byte
    for m in t.memories:
        p[f"read:{m.name}"], p[f"write:{m.name}"] = m.read_pj_per_byte, m.write_pj_per_byte
        if m.dram is not None:
            d = m.dram
            p.update({f"dram:{m.name}:active": d.active_mw, f"dram:{m.name}:power_down": d.power_down_mw,
                      f"dram:{m.name}:self_refresh": d.self_refresh_mw, f"dram:{m.name}:refresh": d.refresh_mw,
                      f"dram:{m.name}:exit_pj": d.self_refresh_exit_pj,
                      f"dram:{m.name}:sr_after_ns": d.self_refresh_after_ns})
        elif m.power is not None:
            s = m.power
            p.update({f"bank:{m.name}": m.bank_leakage_mw, f"off:{m.name}": s.off,
                      f"wake_pj:{m.name}": s.wakeup_pj})
            if s.retention is not None:
                p[f"retention:{m.name}"] = s.retention
    return p


def retarget(t: Target, prices: Prices) -> Target:
    """`t` with every number `prices` names replaced by the table's (a name it does not know is ignored)."""
    def get(name: str, old: float) -> float:
        return prices.get(name, old)

    c = t.compute
    formats = {k: dataclasses.replace(f, energy_pj_per_mac=get(f"mac:{k}", f.energy_pj_per_mac))
               for k, f in c.formats.items()}
    compute = dataclasses.replace(c, formats=formats, leakage_mw=get("leak:pe", c.leakage_mw))
    sfu = dataclasses.replace(t.sfu, energy_pj_per_element=get("sfu", t.sfu.energy_pj_per_element),
                              leakage_mw=get("leak:sfu", t.sfu.leakage_mw))
    parts = t.parts
    regs = dataclasses.replace(parts.registers, operand_pj=get("reg:operand", parts.registers.operand_pj),
                               psum_pj=get("reg:psum", parts.registers.psum_pj),
                               leakage_mw=get("leak:pe_regs", parts.registers.leakage_mw))
    acc = dataclasses.replace(parts.accumulators, access_pj=get("acc", parts.accumulators.access_pj),
                              leakage_mw=get("leak:acc", parts.accumulators.leakage_mw))
    noc = dataclasses.replace(parts.noc, energy_pj_per_byte=get("noc", parts.noc.energy_pj_per_byte),
                              leakage_mw=get("leak:noc", parts.noc.leakage_mw))
    buffers = tuple(dataclasses.replace(b, read_pj_per_byte=get(f"read:{b.name}", b.read_pj_per_byte),
                                        write_pj_per_byte=get(f"write:{b.name}", b.write_pj_per_byte),
                                        leakage_mw=get(f"leak:{b.name}", b.leakage_mw)) for b in parts.buffers)
    memories = []
    for m in t.memories:
        n = m.name
        word = m.word_bytes
        change: dict[str, Any] = {"read_energy_pj": get(f"read:{n}", m.read_pj_per_byte) * word,
                  "write_energy_pj": get(f"write:{n}", m.write_pj_per_byte) * word}
        if m.dram is not None:
            d = m.dram
            change["dram"] = dataclasses.replace(
                d, active_mw=get(f"dram:{n}:active", d.active_mw), power_down_mw=get(f"dram:{n}:power_down",
                                                                                       d.power_down_mw),
                self_refresh_mw=get(f"dram:{n}:self_refresh", d.self_refresh_mw),
                refresh_mw=get(f"dram:{n}:refresh", d.refresh_mw),
                self_refresh_exit_pj=get(f"dram:{n}:exit_pj", d.self_refresh_exit_pj),
                self_refresh_after_ns=get(f"dram:{n}:sr_after_ns", d.self_refresh_after_ns))
        elif m.power is not None:
            s = m.power
            change["leakage_mw"] = get(f"bank:{n}", m.bank_leakage_mw) * m.banks
            change["power"] = dataclasses.replace(
                s, off=get(f"off:{n}", s.off), wakeup_pj=get(f"wake_pj:{n}", s.wakeup_pj),
                retention=None if s.retention is None else get(f"retention:{n}", s.retention))
        memories.append(dataclasses.replace(m, **change))
    return dataclasses.replace(t, compute=compute, sfu=sfu, memories=tuple(memories),
                               parts=Components(regs, buffers, acc, noc))
