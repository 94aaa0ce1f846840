"""Example models: ALBERT and adapter-ALBERT in PyTorch, with GLUE task heads.

`examples.albert` defines the models, `examples.zoo` builds the multi-task
families with seeded weights, `examples.export` writes per-task ONNX files, `examples.gemm` one linear layer
as IR text.
"""
