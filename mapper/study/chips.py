"""Chips sized to a configuration: the smallest chip of each memory architecture that holds it on chip.

For a placed-able module and a template target (`edge_accel`, possibly with
some numbers changed), four architectures, each with just the memory the
configuration needs (no off-chip weight traffic per inference or per task
switch):

- `sram`: one SRAM holding every weight and the activations (for ALBERT,
  every fine-tuned copy: the adapter-ALBERT paper's baseline);
- `rram_sram`: write-once RRAM for the weights that never change (the
  shared backbone), SRAM for the task-specific weights and the activations;
- `rram_sram_fixed`: the same with task weights fixed after deployment, so
  they may live in RRAM too (RRAM for every weight, SRAM for activations);
- `mram_sram`: STT-MRAM, non-volatile and field-writable, for every weight
  (task weights that change in the field included), SRAM for the
  activations (technology `stt_mram`, `targets/hardware/technologies/`).

A decoder's KV cache (`Sizes.state`) is counted with the activations
unless the study leaves it to off-chip memory (`mapper.study.decoder`).

SRAM comes in at least 16 banks (edge_accel's, so the datapath reads 16
words at once) of at most 256 KiB (4 KiB steps), RRAM and STT-MRAM in
NVMExplorer's 2 MB banks (64 KiB steps). Technologies, compute, clock and
DRAM are the template's (STT-MRAM's level is the template's RRAM level with
the STT-MRAM model, field-writable).
"""

from __future__ import annotations

import copy
import dataclasses

from aalbert.ir.analysis import align_up
from aalbert.ir.module import Module
from aalbert.passes.base import PassManager
from aalbert.passes.pipelines import Placement
from aalbert.targets.hardware.spec import Target, target_from_dict
from aalbert.targets.sim.workload import Workload

ARCHITECTURES = {
    "sram": "sized: all SRAM",
    "rram_sram": "sized: RRAM + SRAM",
    "rram_sram_fixed": "sized: RRAM + SRAM, task weights fixed",
    "mram_sram": "sized: STT-MRAM + SRAM",
}
MRAM_MODEL = "stt_mram"
SRAM_BANK = 256 * 1024
SRAM_STEP = 4 * 1024
RRAM_STEP = 64 * 1024


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Bytes a configuration needs: weights that may go to write-once memory, the others, the arena, and a
    decoder's KV cache (`state`; 0 to leave it to off-chip memory)."""

    frozen: int
    mutable: int
    arena: int
    state: int = 0


def sizes(module: Module, target: Target, fixed_tasks: bool) -> Sizes:
    planned = PassManager(Placement(target).passes()[:1]).run(module.copy())  # plan-activations only
    aligned = [(w, align_up(w.nbytes, target.alignment_bytes)) for w in module.weights.values()]
    frozen = sum(b for w, b in aligned if w.role.shared or fixed_tasks)
    mutable = sum(b for _, b in aligned) - frozen
    arena = align_up(max(g.arena.size for g in planned.graphs.values()), target.alignment_bytes)
    state = align_up(max(g.arena.state for g in planned.graphs.values()), target.alignment_bytes)
    return Sizes(frozen, mutable, arena, state)


def sized_target(template: dict, where: str, s: Sizes, arch: str) -> Target:
    """`template` (a target file's tables, with levels named rram, sram and dram) with its on-chip memory sized
    to `s` for architecture `arch`."""
    data = copy.deepcopy(template)
    levels = {m["name"]: m for m in data["memory"]}
    sram = levels["sram"]
    memories = []
    if arch == "mram_sram":  # every weight in STT-MRAM, written in the field as tasks change
        need = s.arena + s.state
        weights = s.frozen + s.mutable
        mram = copy.deepcopy(levels["rram"])
        for k in ("banks", "model", "technology", "field_writable"):
            mram.pop(k, None)
        mram.update(name="mram", technology="mram", model=MRAM_MODEL, field_writable=True, holds=["weights"],
                    capacity_bytes=max(RRAM_STEP, -(-weights // RRAM_STEP) * RRAM_STEP))
        mram["source"] = (f"sized: {mram['capacity_bytes']:,} bytes, the {weights:,} bytes of every weight (shared "
                          f"and task-specific) rounded up to 64 KiB; STT-MRAM ({MRAM_MODEL}), field-writable; "
                          f"reaches and gating as {where}'s RRAM")
        memories.append(mram)
    elif arch == "sram" or s.frozen == 0:  # nothing for RRAM to hold: the chip is all SRAM
        need = s.frozen + s.mutable + s.arena + s.state
    else:
        need = s.mutable + s.arena + s.state
        rram = levels["rram"]
        rram.pop("banks", None)
        rram["capacity_bytes"] = max(RRAM_STEP, -(-s.frozen // RRAM_STEP) * RRAM_STEP)
        rram["source"] = (f"sized: {rram['capacity_bytes']:,} bytes, the {s.frozen:,} bytes of weights that never "
                          f"change rounded up to 64 KiB; technology as {where}")
        memories.append(rram)
    banks = max(16, -(-need // SRAM_BANK))
    bank = -(-need // banks // SRAM_STEP) * SRAM_STEP
    sram.update(capacity_bytes=banks * bank, banks=banks, holds=["weights", "activations"],
                source=f"sized: {banks} banks of {bank:,} bytes for {need:,} bytes (the weights that change, if any, "
                       f"and the {s.arena:,}-byte activation arena"
                       + (f", and the {s.state:,}-byte KV cache" if s.state else "") + f"); technology as {where}")
    if arch == "mram_sram":
        sram["holds"] = ["activations"]
    memories.append(sram)
    memories += [m for m in data["memory"] if m.get("off_chip")]
    data["memory"] = memories
    data["name"] = f"{data['name']}/{arch}"
    data["description"] = f"{ARCHITECTURES[arch]} for this configuration ({data.get('description', '')})"
    return target_from_dict(data, f"{where}, {ARCHITECTURES[arch]}")


def workload_for(arch: str, wl: Workload) -> Workload:
    """Task weights are fixed after deployment on `rram_sram_fixed` (so they may live in RRAM)."""
    return dataclasses.replace(wl, task_weights_change=False) if arch == "rram_sram_fixed" else wl
