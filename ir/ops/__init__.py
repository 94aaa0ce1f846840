"""The op set. Importing this package imports each of its modules, so every op registers in `ir.registry`;
a new op is a declaration in the module of its kind (or a new module here)."""

import importlib
import pkgutil

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")
