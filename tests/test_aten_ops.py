"""Every operator of the ATen table, imported from real torch.export programs and checked against torch.

One module calls torch the ways encoders do (and a few more); it is exported
and decomposed both as `import_torch` does (linear, matmul and attention
kept whole) and fully to Core ATen, as a user may save a program, then run
on the interpreter. A second program has dynamic dimensions (sizes computed
from `sym_size`). A third calls the composite operators torch.export
records before decomposition, and is walked as recorded: it must import as
its decomposition does. Every handler of the table must have been used.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from aalbert.ir.interpreter import run  # noqa: E402
from aalbert.ir.module import Module  # noqa: E402
from aalbert.ir.printer import print_module  # noqa: E402
from aalbert.mapper.frontends import torch_import  # noqa: E402
from aalbert.mapper.frontends.aten_import import decompositions  # noqa: E402
from aalbert.mapper.frontends.aten_ops import ATEN_OPS  # noqa: E402
from aalbert.mapper.frontends.torch_import import ImportOptions, import_exported, import_torch  # noqa: E402


class Everything(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.emb, self.ln = torch.nn.Linear(4, 3), torch.nn.Embedding(10, 4), torch.nn.LayerNorm(4)

    def forward(self, x, y, ids, b, i32):
        p = x.abs() + 1
        return [
            x + y, x - 2, 2 - x, x * y, x * 3, x / y, x / 3, torch.div(x, y, rounding_mode="floor"), x ** 2, p ** y,
            2 ** x, torch.maximum(x, y), torch.minimum(x, y),
            x == y, x == 1, x != y, x != 0, x < y, x < 0, x <= y, x <= 1, x > y, x > 0, x >= y, x >= 1,
            b & (x > 0), b | (x > 0), b ^ (x > 0), ~b, torch.logical_and(b, x > 0), torch.logical_or(b, x > 0),
            torch.logical_xor(b, x > 0), torch.logical_not(b), b & True, b | False,
            -x, x.abs(), x.exp(), p.log(), p.sqrt(), p.rsqrt(), p.reciprocal(), x.tanh(), x.sigmoid(), x.relu(),
            torch.erf(x), x.sign(), x.floor(), x.ceil(), torch.isnan(x / p), F.gelu(x), F.gelu(x, approximate="tanh"),
            x.clamp(-0.5, 0.5), torch.where(b, x, y), x.masked_fill(b, 0.0), i32.to(torch.float32), x.type_as(i32),
            torch.full_like(x, 2.0), torch.zeros_like(x), x.new_full((3,), 4.0),
            x.view(-1), x.reshape(2, -1), x.permute(1, 0, 2), x.transpose(0, 1), x[0].t(), x.unsqueeze(0),
            x[:, :1].squeeze(1), x[:1].squeeze(), x.flatten(), x[:1].expand(2, 3, 4), torch.cat([x, y], 1), x[:, 1:3],
            x[:, 1], torch.split(x, [1, 2], 1)[1], torch.chunk(x, 2, 2)[0], x.repeat(1, 2, 1),
            torch.index_select(x, 1, torch.tensor([0, 2])), x[:, torch.tensor([2, 0])],
            x[torch.tensor([1]), torch.tensor([2])],
            self.lin(x), x @ y.transpose(1, 2), torch.mm(x[0], y[0].t()), torch.bmm(x, y.transpose(1, 2)),
            torch.addmm(y[0, 0, :3], x[0], y[0].t()), self.emb(ids), self.ln(x), F.layer_norm(x, (4,)),
            torch.softmax(x, -1), torch.log_softmax(x, -1), F.dropout(x, 0.1, False),
            x.sum(), x.sum(-1), b.sum(-1), i32.sum(0), x.mean(), x.mean(1, keepdim=True), x.amax(-1), x.amin(0),
            x.max(-1).values, x.min(1).values, b.any(), b.any(-1), b.any((0, 1)), b.all(), b.all(-1),
            ids.cumsum(-1), torch.cumsum(b, 0), x.sin(), x.cos(), F.silu(x), torch.ops.aten.alias.default(x),
            torch.index_copy(x, 1, torch.tensor([2, 0]), y[:, :2]),
            torch.ops.aten.index_put.default(x, [None, torch.tensor([1, 0])], y[:, :2]),
            F.scaled_dot_product_attention(x.unsqueeze(0), y.unsqueeze(0), y.unsqueeze(0)),
        ]


class Composite(torch.nn.Module):
    """Composite operators as torch.export records them before decomposition; no operator writes to its
    arguments, so the program is walked as recorded."""

    def __init__(self):
        super().__init__()
        self.ln, self.w = torch.nn.LayerNorm(4), torch.nn.Parameter(torch.randn(4, 4))
        self.drop = torch.nn.Dropout(0.1)

    def forward(self, x, y, ids, b, i32):
        return [
            self.ln(x), F.layer_norm(x, (4,)), x.softmax(-1), torch.softmax(i32, -1, dtype=torch.float32),
            x.log_softmax(1), x.reshape(6, 4), x.flatten(), x.flatten(1), x.transpose(0, 2), x @ self.w.t(),
            x @ self.w.transpose(0, 1), x[0].t(), x.to(torch.float64), i32.to(torch.float32),
            x @ self.w.to(torch.float32), x.type_as(i32), 1 - x, torch.rsub(x, 2.0, alpha=3), self.drop(x),
            F.dropout(x, 0.5, False), x.contiguous(), x.transpose(0, 1).contiguous(), x.masked_fill(b, -1.0),
            x.masked_fill(b, y[0, 0, 0]), x[:1].expand_as(y), torch.ops.aten._unsafe_view.default(x, [6, 4]),
            x.split(3, 2)[1],
        ]


def _refuse(*args, **kwargs):
    raise AssertionError("the program was decomposed")


def _inputs():
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(2, 3, 4, generator=g), "y": torch.randn(2, 3, 4, generator=g),
            "ids": torch.randint(0, 10, (2, 5), generator=g), "b": torch.rand(2, 3, 4, generator=g) > 0.5,
            "i32": torch.randint(-5, 5, (2, 3, 4), dtype=torch.int32, generator=g)}


class Dynamic(torch.nn.Module):
    def forward(self, x):
        n, s, h = x.shape
        return x.reshape(n * s, h).softmax(-1).view(n, s, 2, h // 2).sum(-1)


def _check(module: Module, want, feeds) -> None:
    got = run(module, "t", feeds)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got.values(), want)):
        w = w.detach().numpy()
        assert g.shape == w.shape and g.dtype == w.dtype, (i, g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6, err_msg=f"output {i}")


def test_every_table_operator_imports_and_matches_torch(monkeypatch):
    used: set[str] = set()

    def recorded(name, handler):
        def call(*args, **kwargs):
            used.add(name)
            return handler(*args, **kwargs)
        return call
    for name, handler in list(ATEN_OPS.items()):
        monkeypatch.setitem(ATEN_OPS, name, recorded(name, handler))

    model, inputs = Everything().eval(), _inputs()
    feeds = {k: v.numpy() for k, v in inputs.items()}
    with torch.no_grad():
        want = model(**inputs)
    module = Module()
    import_torch(model, inputs, module, "t", ImportOptions(tracer="export"))
    _check(module, want, feeds)
    with warnings.catch_warnings():  # fully decomposed, as a program may be saved
        warnings.simplefilter("ignore")
        ep = torch.export.export(model, (), inputs, strict=False).run_decompositions()
    module = Module()
    import_exported(ep, module, "t", shapes={k: v.shape for k, v in inputs.items()})
    _check(module, want, feeds)

    x = torch.randn(3, 5, 8)
    dims = {"x": {0: torch.export.Dim("n", min=2), 1: torch.export.Dim("s", min=2)}}
    ep = torch.export.export(Dynamic(), (torch.randn(2, 4, 8),), dynamic_shapes=dims, strict=False)
    module = Module()
    import_exported(ep, module, "t", shapes={"x": x.shape})
    _check(module, [Dynamic()(x)], {"x": x.numpy()})

    model = Composite().eval()
    with torch.no_grad():
        want = model(**inputs)
    module = Module()
    with monkeypatch.context() as m:
        m.setattr(torch_import, "decompose", _refuse)  # walked as recorded
        import_torch(model, inputs, module, "t", ImportOptions(tracer="export"))
    _check(module, want, feeds)
    assert set(ATEN_OPS) - used == set()


def test_a_program_walked_as_recorded_imports_as_its_decomposition(monkeypatch):
    """The composite operators' handlers build what the Core ATen operators they decompose into build: the same
    graph and the same weights (a matrix read transposed is stored transposed either way)."""
    inputs = _inputs()
    ep = torch.export.export(Composite().eval(), (), inputs, strict=False)
    shapes = {k: v.shape for k, v in inputs.items()}
    whole, decomposed = Module(), Module()
    with monkeypatch.context() as m:
        m.setattr(torch_import, "decompose", _refuse)
        import_exported(ep, whole, "t", shapes=shapes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        core = ep.run_decompositions(decompositions())
    import_exported(core, decomposed, "t", shapes=shapes)
    assert print_module(whole) == print_module(decomposed)


def test_a_program_the_table_cannot_walk_as_recorded_is_decomposed_first():
    """hardswish is not in the table, its decomposition is: the walk as recorded gives up, leaves no weight
    behind, and the decomposed program imports."""
    class Gated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return F.hardswish(self.lin(x)).softmax(-1)

    model, x = Gated().eval(), torch.randn(2, 4)
    module = Module()
    import_exported(torch.export.export(model, (x,), strict=False), module, "t", shapes={"x": x.shape})
    _check(module, [model(x)], {"x": x.numpy()})
    assert sorted(w.type.shape for w in module.weights.values()) == [(4,), (4, 4)]
