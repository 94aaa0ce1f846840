"""aalbert: a compiler-style mapper of transformer models to a heterogeneous-memory NLP edge accelerator.

The repository's folders install as the subpackages of this one package:
`aalbert.ir` (ir/), `aalbert.passes` (passes/), `aalbert.targets` (targets/),
`aalbert.mapper` (mapper/) and `aalbert.examples` (examples/). This file is
the package root; it imports nothing heavy, so `import aalbert.ir` needs
neither torch nor onnx.
"""

__version__ = "0.1.0"
