"""Reading model files that may come from anyone, bounded and checked: the zip
directory (no paths, duplicates, nested archives, encryption or bombs), ``meta.json``
(size, JSON, format version) and ``arrays.npz`` streamed entry by entry, each
``.npy`` header checked against what the meta data declares before its data are
read. :func:`_read` gives the meta data and the arrays; nothing is unpickled.
"""

from __future__ import annotations

import collections
import io
import json
import math
import os
import struct
import zipfile
import zlib
from typing import Any

import numpy as np

from latentem.persistence.file_format import (
    _ALLOWANCE,
    _ARRAYS,
    _CHUNK,
    _ENTRY_OVERHEAD,
    _MAX_NPY_HEADER,
    _META,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_COMPRESSION_RATIO,
    MAX_META_BYTES,
    _declared_shape,
    _plain_dtype,
)


def _path_like(name: str) -> bool:
    """Whether an entry name could address something other than itself (a path)."""
    return (
        not name
        or name.startswith(".")
        or any(c in name for c in "/\\")
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


def _array_refs(meta: dict) -> list[str]:
    """Every ``{"$array": key}`` in the meta data, in order (an iterative walk)."""
    refs, stack = [], [meta.get("model"), meta.get("metadata")]
    while stack:
        v = stack.pop()
        if isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            if "$array" in v:
                key = v["$array"]
                if not isinstance(key, str):
                    raise ValueError(f"bad array reference {key!r} in {_META}")
                refs.append(key)
            stack.extend(v.values())
    return refs


class _Entry:
    """Reads one zip entry as a stream, never past what its header declared."""

    def __init__(self, raw: Any, size: int, where: str) -> None:
        self.raw, self.left, self.where = raw, size, where

    def read(self, n: int, what: str) -> bytes:
        if n > self.left:
            raise ValueError(
                f"{self.where}: {_ARRAYS} ends inside {what} (truncated or tampered with)"
            )
        data = self.raw.read(n)
        if len(data) != n:
            raise ValueError(f"{self.where}: {_ARRAYS} is truncated inside {what}")
        self.left -= n
        return data

    def fill(self, out: memoryview, what: str, crc: int) -> int:
        pos = 0
        while pos < len(out):
            chunk = self.read(min(_CHUNK, len(out) - pos), what)
            out[pos : pos + len(chunk)] = chunk
            crc = zlib.crc32(chunk, crc)
            pos += len(chunk)
        return crc

    def skip(self, n: int, what: str, crc: int) -> int:
        while n:
            chunk = self.read(min(_CHUNK, n), what)
            crc = zlib.crc32(chunk, crc)
            n -= len(chunk)
        return crc


def _zip64_sizes(extra: bytes, usize: int, csize: int) -> tuple[int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        if tag == 1:
            values = list(struct.unpack_from(f"<{len(body) // 8}Q", body))
            if usize == 0xFFFFFFFF and values:
                usize = values.pop(0)
            if csize == 0xFFFFFFFF and values:
                csize = values.pop(0)
            break
        pos += 4 + size
    return usize, csize


def _npy_header(entry: _Entry, key: str) -> tuple[bytes, tuple, bool, np.dtype]:
    """(header bytes, shape, fortran_order, dtype) of one ``.npy`` entry, checked."""
    what = f"the header of array {key!r}"
    magic = entry.read(8, what)
    if magic[:6] != b"\x93NUMPY":
        raise ValueError(
            f"{entry.where}: entry {key!r} of {_ARRAYS} is not a NumPy array (nested archives "
            "and other files are refused)"
        )
    major = magic[6]
    if major not in (1, 2):
        raise ValueError(f"{entry.where}: array {key!r} has an unknown .npy version {major}")
    size_bytes = entry.read(2 if major == 1 else 4, what)
    (hlen,) = struct.unpack("<H" if major == 1 else "<I", size_bytes)
    if hlen > _MAX_NPY_HEADER:
        raise ValueError(
            f"{entry.where}: the header of array {key!r} declares {hlen} bytes, more than the "
            f"{_MAX_NPY_HEADER} a .npy header may have"
        )
    header = entry.read(hlen, what)
    reader = (
        np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
    )
    try:
        shape, fortran, dtype = reader(io.BytesIO(size_bytes + header), _MAX_NPY_HEADER)
    except Exception as exc:  # any failure to parse untrusted header text (tokenize, ast)
        raise ValueError(
            f"{entry.where}: the header of array {key!r} is damaged ({_short(exc)})"
        ) from None
    if _plain_dtype(dtype) is None:
        raise ValueError(
            f"{entry.where}: array {key!r} has dtype {dtype}; model files hold plain numbers "
            "and booleans only"
        )
    shape = _declared_shape(list(shape))
    if shape is None:
        raise ValueError(f"{entry.where}: array {key!r} declares a bad shape")
    return magic + size_bytes + header, shape, bool(fortran), np.dtype(dtype)


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _read_arrays(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    expected: set,
    declared: dict | None,
    where: str,
    keep: bool,
) -> dict:
    """Stream ``arrays.npz``: each entry's declared shape and dtype are read and checked
    before its data, and the data go straight into an array of that shape, so memory
    stays within the declared bytes (plus one chunk)."""
    out: dict = {}
    with zf.open(info) as raw:
        entry = _Entry(raw, info.file_size, where)
        while True:
            sig = entry.read(4, "an entry's header")
            if sig in (b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06"):  # the directory at the end
                break
            if sig != b"PK\x03\x04":
                raise ValueError(f"{where}: {_ARRAYS} is damaged (no entry header where expected)")
            fields = struct.unpack("<HHHHHIIIHH", entry.read(26, "an entry's header"))
            _, flags, method, _, _, crc, csize, usize, nlen, xlen = fields
            raw_name = entry.read(nlen, "an entry's name")
            extra = entry.read(xlen, "an entry's header")
            name = raw_name.decode("utf-8" if flags & 0x800 else "cp437")
            if flags & 0x9 or method != zipfile.ZIP_STORED:
                raise ValueError(
                    f"{where}: entry {name!r} of {_ARRAYS} is compressed, encrypted or streamed; "
                    "latentem writes plain .npy entries"
                )
            usize, csize = _zip64_sizes(extra, usize, csize)
            if _path_like(name):
                raise ValueError(f"{where}: {_ARRAYS} has an entry named like a path: {name!r}")
            key = name[:-4] if name.endswith(".npy") else None
            if key is None or key not in expected:
                raise ValueError(
                    f"{where}: {_ARRAYS} holds an unexpected entry {name!r} (its {_META} names "
                    "no such array)"
                )
            if key in out:
                raise ValueError(f"{where}: {_ARRAYS} holds the entry {name!r} twice")
            if csize != usize or usize > entry.left:
                raise ValueError(
                    f"{where}: entry {name!r} declares {usize} bytes but {_ARRAYS} has "
                    f"{min(csize, entry.left)} left (truncated or tampered with)"
                )
            head, shape, fortran, dtype = _npy_header(entry, key)
            hbytes = len(head)
            nbytes = math.prod(shape) * dtype.itemsize
            if hbytes + nbytes != usize:
                raise ValueError(
                    f"{where}: array {key!r} declares shape {shape} of {dtype} "
                    f"({nbytes} bytes) but its entry holds {usize - hbytes} bytes of data"
                )
            if declared is not None and declared[key] != (shape, dtype):
                raise ValueError(
                    f"{where}: array {key!r} is {dtype} {shape} but {_META} declares "
                    f"{declared[key][1]} {declared[key][0]}"
                )
            check = zlib.crc32(head)
            what = f"the data of array {key!r}"
            if keep:
                arr = np.empty(shape, dtype=dtype, order="F" if fortran else "C")
                flat = (arr.T if fortran else arr).reshape(-1).view(np.uint8)
                check = entry.fill(memoryview(flat), what, check)
                out[key] = arr
            else:
                check = entry.skip(nbytes, what, check)
                out[key] = (shape, dtype)
            if check != crc:
                raise ValueError(f"{where}: array {key!r} is damaged (its checksum does not match)")
        missing = sorted(expected - set(out))
        if missing:
            raise ValueError(f"{where}: array {missing[0]!r} is missing from {_ARRAYS}")
        allowed = 512 + sum(128 + 2 * len(k) for k in out)
        if entry.left > allowed:
            raise ValueError(
                f"{where}: {_ARRAYS} holds {entry.left} bytes after its arrays (at most "
                f"{allowed} are expected)"
            )
        entry.read(entry.left, f"the end of {_ARRAYS}")  # to the end, so its checksum is checked
    return out


def _open_entries(zf: zipfile.ZipFile, where: str) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    names = [i.filename for i in infos]
    for name in names:
        if _path_like(name):
            raise ValueError(f"{where}: it has an entry named like a path: {name!r}")
    counts = collections.Counter(names)
    twice = sorted(n for n, c in counts.items() if c > 1)
    if twice:
        raise ValueError(f"{where}: it holds the entry {twice[0]!r} twice")
    other = sorted(set(names) - {_META, _ARRAYS})
    if other:
        raise ValueError(
            f"{where}: it holds an unexpected entry {other[0]!r} (a model file holds {_META} "
            f"and {_ARRAYS} only; nested archives and other files are refused)"
        )
    if len(names) != 2:
        raise ValueError(f"{where}: it lacks {_META} or {_ARRAYS}")
    by_name = {i.filename: i for i in infos}
    for info in infos:
        if info.flag_bits & 0x1:
            raise ValueError(f"{where}: its entry {info.filename!r} is encrypted")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ValueError(
                f"{where}: its entry {info.filename!r} uses a compression latentem does not "
                "write (stored or deflated only)"
            )
        if info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
            raise ValueError(f"{where}: its entry {info.filename!r} has inconsistent sizes")
        if info.compress_size > info.file_size + info.file_size // 100 + 1024:
            raise ValueError(
                f"{where}: its entry {info.filename!r} stores {info.compress_size} bytes for "
                f"{info.file_size} declared (deflate never grows data that much)"
            )
    return by_name


def _check_declared(meta: dict, refs: list[str], where: str) -> dict | None:
    """The ``arrays`` section of the meta data, checked against the references: key ->
    (shape, dtype). None for files written before the section existed."""
    table = meta.get("arrays")
    if table is None:
        return None
    if not isinstance(table, dict) or set(table) != set(refs):
        raise ValueError(f"{where}: the arrays declared in {_META} do not match those it uses")
    declared = {}
    for key, entry in table.items():
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: bad declaration of array {key!r}")
        dtype, shape = _plain_dtype(entry.get("dtype")), _declared_shape(entry.get("shape"))
        if dtype is None:
            raise ValueError(
                f"{where}: array {key!r} is declared with dtype {entry.get('dtype')!r}; model "
                "files hold plain numbers and booleans only"
            )
        if shape is None:
            raise ValueError(f"{where}: array {key!r} is declared with a bad shape")
        declared[key] = (shape, dtype)
    return declared


def _read(path: str | os.PathLike, *, keep: bool = True) -> tuple[dict, dict]:
    """The checked meta data and the arrays (``keep=False``: their (shape, dtype) only).

    Every limit is checked from what the file declares before what it declares
    is read: the meta data's size, the arrays' total size against the arrays
    the meta data declares, and the compression ratio.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such model file: {path}")
    where = f"{path} is not a readable latentem model file"
    if os.path.isdir(path):
        raise ValueError(f"{where}: it is a directory")
    try:
        with zipfile.ZipFile(path) as zf:
            entries = _open_entries(zf, where)
            info = entries[_META]
            if info.file_size > MAX_META_BYTES:
                raise ValueError(
                    f"{where}: its {_META} declares {info.file_size} bytes, more than the "
                    f"{MAX_META_BYTES} latentem reads"
                )
            with zf.open(info) as f:
                meta_bytes = f.read(MAX_META_BYTES + 1)
            meta = _parse_meta(meta_bytes, path, where)
            refs = _array_refs(meta)
            if len(set(refs)) != len(refs):
                raise ValueError(f"{where}: its {_META} uses one array twice")
            declared = _check_declared(meta, refs, where)
            info = entries[_ARRAYS]
            limit = max(MAX_COMPRESSION_RATIO * info.compress_size, info.compress_size + _ALLOWANCE)
            if info.file_size > limit:
                raise ValueError(
                    f"{where}: its {_ARRAYS} would inflate {info.compress_size} stored bytes to "
                    f"{info.file_size} (a compression bomb?); model files compress less"
                )
            if declared is not None:
                need = sum(math.prod(s) * d.itemsize for s, d in declared.values())
                need += 1024 + sum(_ENTRY_OVERHEAD + 2 * len(k) for k in declared)
                if info.file_size > need:
                    raise ValueError(
                        f"{where}: its {_ARRAYS} holds {info.file_size} bytes but the arrays "
                        f"its {_META} declares need at most {need}"
                    )
            arrays = _read_arrays(zf, info, set(refs), declared, where, keep)
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        EOFError,
        OSError,
        zlib.error,
        struct.error,
        NotImplementedError,
        UnicodeDecodeError,
        OverflowError,
    ) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        if not zipfile.is_zipfile(path):
            raise ValueError(
                f"{where}: it is not a zip archive (model files are written by model.save or "
                "'latentem fit'), or it is truncated"
            ) from None
        raise ValueError(f"{where} (damaged or truncated: {_short(exc)})") from None
    return meta, arrays


def _parse_meta(meta_bytes: bytes, path: str, where: str) -> dict:
    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    try:
        meta = json.loads(meta_bytes.decode("utf-8"), parse_constant=no_constants)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ValueError(f"{where}: {_META} is not valid JSON ({_short(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{where}: its {_META} does not say format {FORMAT_NAME!r}")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{where}: bad format_version {version!r}")
    if version > FORMAT_VERSION:
        from latentem import __version__

        raise ValueError(
            f"{path} was written by latentem {str(meta.get('latentem_version', '?'))[:40]} in "
            f"model-file format version {version}; this latentem ({__version__}) reads versions "
            f"up to {FORMAT_VERSION}. Upgrade latentem to load it."
        )
    if not isinstance(meta.get("class"), str):
        raise ValueError(f"{where}: its {_META} names no class")
    return meta
