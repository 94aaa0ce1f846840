"""One linear layer as IR text, the smallest product a target maps: for the peer benchmark and the tests.

Its weight carries the placeholder hash "0"; whoever gives it data sets the hash to match.
"""

from __future__ import annotations

GEMM = """module {
  weight @w : tensor<%(k)dx%(n)dxf32> hash "0"
  graph @t(%%x: tensor<%(m)dx%(k)dxf32>) -> ("y": tensor<%(m)dx%(n)dxf32>) {
    %%0 = weight {name = @w} : tensor<%(k)dx%(n)dxf32>
    %%1 = linear(%%x, %%0) : tensor<%(m)dx%(n)dxf32>
    return %%1
  }
}
"""


def gemm_ir(m: int, k: int, n: int) -> str:
    """An m x k input times a k x n weight."""
    return GEMM % {"m": m, "k": k, "n": n}
