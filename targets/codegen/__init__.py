"""Code generation: an allocated task graph lowered into a `Program` (`lower`), a mapped matrix product into
its instructions (`mapped`), and the early-exit test after every off-ramp (`exit_tests`)."""
