"""Build hostile model files for the tests: a small zip writer that lies on request.

``zip_bytes`` writes exactly the entries it is given (duplicates, path-like
names, any compression method, any declared sizes), with ZIP64 records where
sizes need them, so that the tests can build what ``zipfile`` refuses to
write: bombs that declare gigabytes, entries whose sizes disagree with their
contents.
"""

import io
import json
import struct
import zipfile
import zlib

import numpy as np

__all__ = [
    "deflate",
    "meta_and_arrays",
    "model_file",
    "npy_bytes",
    "npz_bytes",
    "zero_bomb",
    "zip_bytes",
]


def deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return c.compress(data) + c.flush()


def zero_bomb(n_mib: int) -> bytes:
    """A raw deflate stream of ``n_mib`` MiB of zeros, built from one compressed MiB
    (after a full flush the compressor restarts, so each MiB compresses alike)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(bytes(1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return block * n_mib + c.flush()


def zip_bytes(entries) -> bytes:
    """A zip archive of ``entries``: dicts with ``name``, ``data`` (the stored bytes) and
    optional ``method`` (0 stored, 8 deflated, 12 bzip2), ``size`` (the declared inflated
    size), ``crc`` and ``flags``."""
    out = io.BytesIO()
    central = []
    for e in entries:
        name = e["name"].encode("utf-8")
        data = e["data"]
        method = e.get("method", 0)
        size = e.get("size", len(data))
        crc = e.get("crc", zlib.crc32(data) if method == 0 else 0)
        flags = e.get("flags", 0x800)
        offset = out.tell()
        big = size >= 0xFFFFFFFF or len(data) >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if big else b""
        sizes = (0xFFFFFFFF, 0xFFFFFFFF) if big else (len(data), size)
        out.write(
            struct.pack(
                "<IHHHHHIIIHH",
                0x04034B50,
                45,
                flags,
                method,
                0,
                0x21,
                crc,
                *sizes,
                len(name),
                len(extra),
            )
        )
        out.write(name + extra + data)
        central.append((name, method, crc, sizes, flags, offset, extra))
    start = out.tell()
    for name, method, crc, sizes, flags, offset, extra in central:
        out.write(
            struct.pack(
                "<IHHHHHHIIIHHHHHII",
                0x02014B50,
                45,
                45,
                flags,
                method,
                0,
                0x21,
                crc,
                *sizes,
                len(name),
                len(extra),
                0,
                0,
                0,
                0,
                offset,
            )
        )
        out.write(name + extra)
    end = out.tell()
    out.write(
        struct.pack(
            "<IHHHHIIH", 0x06054B50, 0, 0, len(central), len(central), end - start, start, 0
        )
    )
    return out.getvalue()


def npy_bytes(array=None, *, header=None, data=None) -> bytes:
    """One ``.npy`` entry: of ``array``, or with a hand-written header dict and data."""
    if array is not None:
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
        return buf.getvalue()
    text = repr(header).encode("latin1")
    text += b" " * (63 - (10 + len(text)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text + (data or b"")


def npz_bytes(members) -> bytes:
    """An ``arrays.npz`` as numpy writes it, from name -> .npy bytes (or arrays)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, value in members.items():
            raw = value if isinstance(value, bytes) else npy_bytes(value)
            with zf.open(
                name if name.endswith(".npy") else name + ".npy", "w", force_zip64=True
            ) as f:
                f.write(raw)
    return buf.getvalue()


def meta_and_arrays(path):
    """(meta dict, {key: array}) of a real model file."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("meta.json"))
        with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    return meta, arrays


def model_file(meta, arrays, *, npz=None, method=8, declare=True) -> bytes:
    """A model file from a meta dict and arrays (or ready ``arrays.npz`` bytes); with
    ``declare``, the meta data's table of arrays is rewritten to match ``arrays``."""
    if declare and npz is None:
        meta = dict(meta)
        meta["arrays"] = {
            k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in arrays.items()
        }
    text = json.dumps(meta).encode()
    raw = npz if npz is not None else npz_bytes(arrays)
    pack = deflate if method == 8 else (lambda b: b)
    return zip_bytes(
        [
            {
                "name": "meta.json",
                "data": pack(text),
                "method": method,
                "size": len(text),
                "crc": zlib.crc32(text),
            },
            {
                "name": "arrays.npz",
                "data": pack(raw),
                "method": method,
                "size": len(raw),
                "crc": zlib.crc32(raw),
            },
        ]
    )
