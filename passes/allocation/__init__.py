"""The machinery of the `allocate` pass: the placement problem of a module on a target (`problem`), what each
option costs (`prices`), the integer program and its fallbacks (`solvers`), the decision as a record
(`record`), and the placement verifier (`verify`)."""
