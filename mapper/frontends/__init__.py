"""Frontends: bring models into an `ir.Module` (ONNX files, torch.fx modules)."""

from .dims import DimSpec
from .onnx_import import import_onnx

__all__ = ["DimSpec", "import_onnx"]
