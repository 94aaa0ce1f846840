"""The compile summary's LoRA lines: how the pairs run (the `lora` pass's mode) and, for pairs merged on a task
switch, what a switch to each task costs (`ir.switch`)."""

from __future__ import annotations

from aalbert.ir.module import Module
from aalbert.ir.switch import actives, switch_costs
from aalbert.mapper.reports.summary import count, megabytes, table
from aalbert.passes.lora import LoraRewrite

HOW = {"unmerged": "two low-rank products beside the shared projection",
       "merged": "merged into a copy of the projection per task",
       "merge-on-switch": "merged into one active copy per projection, rewritten at a task switch"}


def mode_lines(rewrite: LoraRewrite) -> list[str]:
    """One line: the mode and what it changed, or that the module has no pair for it to change."""
    if not rewrite.pairs:
        return [f"LoRA: {rewrite.mode}: no LoRA pairs found, the module is unchanged"]
    line = f"LoRA: {rewrite.mode}: {count(rewrite.pairs, 'pair')}, {HOW[rewrite.mode]}"
    if rewrite.mode != "unmerged":
        line += f" ({count(rewrite.copies, 'copy', 'copies')})"
        if rewrite.merged < rewrite.pairs:
            line += f"; {rewrite.pairs - rewrite.merged} left unmerged (not a fixed scale of B A x beside W x)"
    return [line]


def switch_lines(module: Module) -> list[str]:
    """What a switch to each task costs, when the module has active copies (else nothing)."""
    copies = actives(module)
    if not copies:
        return []
    held = sum(m.active.nbytes for m in copies)
    lines = [f"merged on a task switch: {count(len(copies), 'active copy', 'active copies')}, "
             f"{megabytes(held)} (writable), rewritten from the base and the task's pair", ""]
    rows = [[task, str(c.copies), f"{c.macs:,}", f"{c.bytes_read:,}", f"{c.bytes_written:,}"]
            for task, c in switch_costs(module).items()]
    return lines + table(["switch to", "copies", "MACs", "bytes read", "bytes written"], rows, "lrrrr")
