"""The reports a compile prints: the summary, the memory map, the mapping table, the simulation, early exit,
and why each weight is where it is."""
