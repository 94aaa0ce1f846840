"""aalbert: a compiler-style mapper of transformer models to a heterogeneous-memory NLP edge accelerator.

This folder is the package root, `aalbert`, and the support code every layer
uses: the error family (`errors`), the memory budget (`limits`), how a
command writes its files (`outputs`) and lifetime queries over program
positions (`intervals`). The repository's other folders install as its
subpackages: `aalbert.ir` (ir/), `aalbert.passes` (passes/),
`aalbert.targets` (targets/), `aalbert.mapper` (mapper/) and
`aalbert.examples` (examples/). Importing it imports nothing heavy, so
`import aalbert.ir` needs neither torch nor onnx.

`aalbert.compile(tasks, example_inputs, ...)` is the Python API
(`aalbert.mapper.api`), loaded on first use.
"""

__version__ = "0.1.0"

__all__ = ["compile", "Compiled", "__version__"]


def __getattr__(name: str):
    """The API on first use (PEP 562), so that importing any subpackage stays light."""
    if name in ("compile", "Compiled"):
        from aalbert.mapper import api
        return getattr(api, name)
    raise AttributeError(f"module 'aalbert' has no attribute {name!r}")
