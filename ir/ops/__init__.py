"""The op set. Importing this package registers every op in `ir.registry`."""

from . import elementwise, layout, nn, reduce, source  # noqa: F401
