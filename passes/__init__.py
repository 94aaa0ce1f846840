"""Passes over `ir.Module`s: small frozen dataclasses run by a checked pass manager (`passes.base`).

Importing this package registers every built-in pass; each lives in the module named for what it does.
"""

from . import allocate, canonicalize, cleanup, compress, plan, share  # noqa: F401  (registers the passes)
