"""Reading and writing modules: text `.ir` plus a sidecar `.npz` of weight data.

`save_module` writes `name.ir` and `name.npz` side by side; `load_module`
reads the text, verifies it and, when the sidecar exists, loads and checks
every array against the weight it belongs to (name, type and content hash).
Files are written atomically (a temporary file renamed into place) and the
`.npz` is byte-for-byte reproducible (fixed zip timestamps, pool order).
"""

from __future__ import annotations

import io
import os
import tokenize
import tomllib
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .errors import AalbertError
from .limits import check_bytes
from .module import Module
from .outputs import atomic_writer, note_read
from .parser import parse_module
from .printer import print_module
from .types import DType, TensorType
from .verifier import verify

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sidecar_path(ir_path: str | os.PathLike) -> Path:
    return Path(ir_path).with_suffix(".npz")


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """A reproducible `.npz` (as numpy writes it, minus the timestamps), in dict order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(info, payload.getvalue())
    return buf.getvalue()


SCALES = "@scales"  # suffix of the entry holding a weight's per-channel scales


def weights_npz_bytes(module: Module) -> bytes:
    """The sidecar's bytes: one `.npy` entry per weight (plus its scales), in pool order."""
    arrays = {}
    for w in module.weights.values():
        if w.data is None:
            continue
        arrays[w.name] = w.data
        if w.scales is not None:
            arrays[w.name + SCALES] = w.scales
    return npz_bytes(arrays)


# What numpy raises on a damaged archive: besides I/O and zip errors, a corrupt
# array header fails in numpy's header parser (SyntaxError, tokenize.TokenError),
# and zipfile refuses features it does not implement (NotImplementedError,
# RuntimeError for an encrypted entry).
NPZ_ERRORS = (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, SyntaxError, tokenize.TokenError,
              MemoryError, NotImplementedError, RuntimeError, zlib.error)
_READABLE = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)


def open_npz(path: str | os.PathLike, what: str):
    """`np.load` of an `.npz`, after checking what its zip directory promises: only stored or deflated
    entries numpy can read, no encryption, and no more inflated bytes than the memory budget."""
    note_read(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except NPZ_ERRORS as e:
        raise AalbertError(f"{path}: not a readable .npz file of {what} ({e})") from None
    for info in infos:
        feature = ("is encrypted" if info.flag_bits & 0x1 else
                   "uses compressed patched data" if info.flag_bits & 0x20 else
                   f"uses compression method {info.compress_type}" if info.compress_type not in _READABLE else
                   f"needs zip version {info.extract_version / 10:g}" if info.extract_version > zipfile.MAX_EXTRACT_VERSION
                   else None)
        if feature:
            raise AalbertError(f"{path}: entry {info.filename!r} {feature}, which aalbert does not read "
                               "(write it with numpy.savez or numpy.savez_compressed)")
    check_bytes(sum(info.file_size for info in infos), f"{path} ({what}, inflated)")
    try:
        return np.load(path, allow_pickle=False)
    except NPZ_ERRORS as e:
        raise AalbertError(f"{path}: not a readable .npz file of {what} ({e})") from None


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    blob = npz_bytes(arrays)
    with atomic_writer(path) as f:
        f.write(blob)


def read_npz(path: str | os.PathLike, what: str = "arrays") -> dict[str, np.ndarray]:
    """All arrays of an `.npz`, or one clear error."""
    p = Path(path)
    if not p.exists():
        raise AalbertError(f"{path}: no such file")
    try:
        with open_npz(p, what) as archive:
            return {k: archive[k] for k in archive.files}
    except NPZ_ERRORS as e:
        raise AalbertError(f"{path}: not a readable .npz file of {what} ({e})") from None


def save_module(module: Module, ir_path: str | os.PathLike) -> list[Path]:
    """Write `x.ir` and, if the module has weight data, `x.npz`. Returns the paths."""
    ir_path = Path(ir_path)
    written = [ir_path]
    text = print_module(module)
    blob = weights_npz_bytes(module) if module.weights and module.has_data else None
    with atomic_writer(ir_path) as f:
        f.write(text.encode())
    if blob is not None:
        with atomic_writer(sidecar_path(ir_path)) as f:
            f.write(blob)
        written.append(sidecar_path(ir_path))
    return written


def read_toml(path: str | os.PathLike, error: type[AalbertError], missing: str, invalid: str) -> dict:
    """A TOML file's tables; `error(f"{path}: {missing}")` if it does not exist, `{invalid} (why)` if unreadable."""
    p = Path(path)
    if not p.exists():
        raise error(f"{path}: {missing}")
    note_read(p)
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as e:
        raise error(f"{path}: {invalid} ({e})") from None


def read_text(path: str | os.PathLike) -> str:
    note_read(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AalbertError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise AalbertError(f"{path}: is a directory, expected an .ir file") from None
    except UnicodeDecodeError:
        raise AalbertError(f"{path}: not a text file (expected aalbert IR)") from None
    except OSError as e:
        raise AalbertError(f"{path}: cannot read ({e.strerror})") from None


def load_module(path: str | os.PathLike, weights: str | os.PathLike | None = None,
                require_data: bool = False) -> Module:
    """Parse and verify `path`; attach weight data from the sidecar if present."""
    module = parse_module(read_text(path), str(path))
    verify(module)
    npz = Path(weights) if weights is not None else sidecar_path(path)
    note_read(npz)  # a missing sidecar too: an output may not appear in its place
    if npz.exists():
        load_weights(module, npz)
    elif weights is not None or (require_data and module.weights):
        raise AalbertError(f"{npz}: no such file (the weight data of {path})")
    return module


def _entry(archive, keys: set[str], npz_path, key: str, want: TensorType, what: str) -> np.ndarray:
    if key not in keys:
        raise AalbertError(f"{npz_path}: no array for {what}")
    try:
        array = archive[key]
    except NPZ_ERRORS as e:
        raise AalbertError(f"{npz_path}: array {key!r} is unreadable ({e})") from None
    try:
        got = TensorType.of(array)
    except ValueError:
        got = None
    if got != want:
        raise AalbertError(f"{npz_path}: array {key!r} is {got or array.dtype}, {what} needs {want}")
    return array


def load_weights(module: Module, npz_path: str | os.PathLike) -> None:
    """Attach arrays from an `.npz` to the module's weights, checking each one."""
    with open_npz(npz_path, "weights") as archive:
        keys = set(archive.files)
        expected = set()
        for w in module.weights.values():
            w.data = _entry(archive, keys, npz_path, w.name, w.code_type, f"weight @{w.name}")
            expected.add(w.name)
            if w.encoding.format == "int" and w.encoding.granularity == "channel":
                scales_type = TensorType((w.type.shape[-1],), DType.F32)
                w.scales = _entry(archive, keys, npz_path, w.name + SCALES, scales_type,
                                  f"the scales of @{w.name}")
                expected.add(w.name + SCALES)
            if w.expected_hash() != w.hash:
                raise AalbertError(f"{npz_path}: array {w.name!r} does not match the hash "
                                   f"{w.hash} of @{w.name} (data from another model?)")
        extra = sorted(keys - expected)
        if extra:
            raise AalbertError(f"{npz_path}: array {extra[0]!r} belongs to no weight of the IR")
