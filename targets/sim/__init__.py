"""Simulation of a `Program` on its target: cycles and dynamic energy (`timing`), static energy by power state
(`power`), request streams over a workload (`requests`, `workload`), functional execution on numpy
(`functional`), traces (`trace`), the roofline (`roofline`), and the cost of any node at given weight levels,
which the allocator prices with (`nodecost`)."""
