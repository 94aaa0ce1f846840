"""Passes over `ir.Module`s: small frozen dataclasses run by a checked pass manager (`passes.base`).

Importing this package imports each of its modules, so every pass registers; a new pass is one new
module here, named for what it does.
"""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
