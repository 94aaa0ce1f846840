"""Code generation: an allocated task graph lowered into a `Program` (`lower`), a mapped matrix product into
its instructions (`mapped`, along the block schedule of `blocks`), a product without a mapping into column
chunks (`fixed`), and the early-exit test after every off-ramp (`exit_tests`)."""
