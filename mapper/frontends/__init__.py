"""Frontends: bring models into an `ir.Module` (ONNX files, torch.export programs and `nn.Module`s).

Importing this package imports neither onnx nor torch: `DimSpec` is here, and `import_onnx` loads the ONNX
frontend (and onnx) on first use; the torch frontend is `frontends.torch_import`.
"""

from aalbert.mapper.frontends.dims import DimSpec

__all__ = ["DimSpec", "import_onnx"]


def __getattr__(name: str):
    """`import_onnx` on first use (PEP 562), so that a command reading no ONNX file never imports onnx."""
    if name == "import_onnx":
        from aalbert.mapper.frontends.onnx_import import import_onnx
        return import_onnx
    raise AttributeError(f"module 'aalbert.mapper.frontends' has no attribute {name!r}")
