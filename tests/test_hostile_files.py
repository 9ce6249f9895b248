"""Hostile model files: every damaged, tampered, bomb or foreign file is one clear
ValueError, found within bounded memory, and never a model that answers NaN.

The files are generated (see ``hostile.py``); ``CASES`` is the battery, by category.
"""

import copy
import io
import json
import os
import struct
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hostile import deflate, meta_and_arrays, model_file, npy_bytes, npz_bytes, zero_bomb, zip_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentem import (
    CategoricalHMM,
    EMImputer,
    FactorAnalysis,
    GaussianHMM,
    GaussianMixture,
    MixtureOfFactorAnalyzers,
    PoissonHMM,
)
from latentem.cli import main
from latentem.persistence import MAX_META_BYTES, describe, load

#: Loading any file of the battery may allocate at most this much (tracemalloc peak).
MEMORY_LIMIT = 32 << 20


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(-3, 1, (30, 2)), rng.normal(3, 0.5, (30, 2))])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Real model files of every kind, each written once."""
    root = tmp_path_factory.mktemp("models")
    X = _data()
    counts = np.random.default_rng(1).poisson(np.repeat([1.0, 8.0], 40))[:, None]
    models = {
        "gmm": GaussianMixture(2, random_state=0).fit(X),
        "gmm_diag": GaussianMixture(2, covariance_type="diag", random_state=0).fit(X),
        "ghmm": GaussianHMM(2, n_iter=5, random_state=0).fit(X),
        "ghmm_full": GaussianHMM(2, covariance_type="full", n_iter=5, random_state=0).fit(X),
        "poisson": PoissonHMM(2, n_iter=5, random_state=0).fit(counts),
        "categorical": CategoricalHMM(2, n_iter=5, random_state=0).fit(counts % 3),
        "imputer": EMImputer(random_state=0).fit(np.where(X > 2.5, np.nan, X)),
        "fa": FactorAnalysis(1, max_iter=20).fit(X),
        "mfa": MixtureOfFactorAnalyzers(2, n_factors=1, max_iter=10, random_state=0).fit(X),
    }
    paths = {}
    for name, model in models.items():
        paths[name] = root / f"{name}.lem"
        model.save(paths[name])
    return paths


def _key(arrays, suffix):
    (key,) = [k for k in arrays if k.endswith(suffix)]
    return key


def _tampered(path, suffix, change):
    """The file at ``path`` with the array named ``...suffix`` changed (sizes redeclared)."""
    meta, arrays = meta_and_arrays(path)
    key = _key(arrays, suffix)
    arrays[key] = change(arrays[key].copy())
    return model_file(meta, arrays)


def _meta_changed(path, change):
    meta, arrays = meta_and_arrays(path)
    meta = copy.deepcopy(meta)
    change(meta)
    return model_file(meta, arrays, declare=False)


def _entries(path):
    """The stored entries of a real file, for rebuilding it with changes."""
    with zipfile.ZipFile(path) as zf:
        meta, npz = zf.read("meta.json"), zf.read("arrays.npz")
    return meta, npz


def _stored(meta_text, npz, **change):
    """A model file from raw meta.json and arrays.npz bytes; ``meta={...}`` or
    ``arrays={...}`` change fields of an entry (its stored data, declared size...)."""
    entries = [
        {"name": "meta.json", "data": deflate(meta_text), "method": 8, "size": len(meta_text)},
        {"name": "arrays.npz", "data": deflate(npz), "method": 8, "size": len(npz)},
    ]
    entries[0]["crc"], entries[1]["crc"] = zlib.crc32(meta_text), zlib.crc32(npz)
    for name, values in change.items():
        entries[0 if name == "meta" else 1].update(values)
    return zip_bytes(entries)


def _not_zip(files):
    return b"a,b\n1,2\n"


def _bomb_4gib(files):
    """The issue's bomb: a valid meta.json next to 4 GiB of zeros stored in 4 MB."""
    meta, _ = _entries(files["gmm"])
    return zip_bytes(
        [
            {"name": "meta.json", "data": meta},
            {"name": "arrays.npz", "data": zero_bomb(4096), "method": 8, "size": 4 << 30},
        ]
    )


def _honest_bomb(files):
    """A well-formed 1 GiB array of zeros in a 1 MB file, declared everywhere."""
    meta, arrays = meta_and_arrays(files["gmm"])
    key = _key(arrays, "history_")
    header = {"descr": "<f8", "fortran_order": False, "shape": (1 << 27,)}
    head = npy_bytes(header=header)
    npz_head = npz_bytes({k + ".npy": a for k, a in arrays.items() if k != key})
    meta["arrays"] = {k: {"dtype": a.dtype.str, "shape": list(a.shape)} for k, a in arrays.items()}
    meta["arrays"][key] = {"dtype": "<f8", "shape": [1 << 27]}
    text = json.dumps(meta).encode()
    # the big entry, stored inside arrays.npz, which itself inflates from a small stream
    size = len(npz_head) + len(head) + (1 << 30)
    return zip_bytes(
        [
            {"name": "meta.json", "data": text},
            {
                "name": "arrays.npz",
                "data": deflate(npz_head + head)[:-2] + zero_bomb(1024),
                "method": 8,
                "size": size,
            },
        ]
    )


def _meta_bomb(files):
    text = b" " * (MAX_META_BYTES + 1) + b"{}"
    _, npz = _entries(files["gmm"])
    return _stored(text, npz)


def _lying_meta_size(files):
    meta, npz = _entries(files["gmm"])
    big = meta + b" " * (50 << 20)
    return _stored(meta, npz, meta={"data": deflate(big)})


def _extra_bytes_declared(files):
    """arrays.npz holds 16 MB more than the arrays that meta.json declares."""
    meta, npz = _entries(files["gmm"])
    return _stored(meta, npz + bytes(16 << 20))


def _trailing_old_format(files):
    """A file without the arrays table (as written before it existed) with junk after the
    arrays."""
    meta, arrays = meta_and_arrays(files["gmm"])
    del meta["arrays"]
    npz = npz_bytes(arrays)
    return model_file(meta, arrays, npz=npz + bytes(1 << 20))


def _deep_json(files):
    _, npz = _entries(files["gmm"])
    return _stored(b"[" * 100_000 + b"]" * 100_000, npz)


def _huge_int(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    text = json.dumps(meta).replace('"n_components": 2', '"n_components": ' + "9" * 5000)
    return _stored(text.encode(), npz_bytes(arrays))


def _latent_alloc(files):
    def change(meta):
        latent = meta["model"]["fitted"]["_latent"]
        latent["params"]["n_components"] = 10**12

    return _meta_changed(files["gmm"], change)


def _entry(files, name, data, **kw):
    meta, npz = _entries(files["gmm"])
    return zip_bytes(
        [
            {"name": "meta.json", "data": meta},
            {"name": "arrays.npz", "data": npz},
            {"name": name, "data": data, **kw},
        ]
    )


def _only(files, which):
    meta, npz = _entries(files["gmm"])
    return zip_bytes([{"name": which, "data": meta if which == "meta.json" else npz}])


def _duplicate(files):
    meta, npz = _entries(files["gmm"])
    return zip_bytes(
        [
            {"name": "meta.json", "data": meta},
            {"name": "arrays.npz", "data": npz},
            {"name": "meta.json", "data": b'{"format": "latentem-model"}'},
        ]
    )


def _path_names(files):
    meta, npz = _entries(files["gmm"])
    return zip_bytes(
        [{"name": "../meta.json", "data": meta}, {"name": "/etc/arrays.npz", "data": npz}]
    )


def _bzip2(files):
    meta, npz = _entries(files["gmm"])
    return zip_bytes(
        [{"name": "meta.json", "data": meta}, {"name": "arrays.npz", "data": npz, "method": 12}]
    )


def _encrypted(files):
    meta, npz = _entries(files["gmm"])
    return zip_bytes(
        [{"name": "meta.json", "data": meta}, {"name": "arrays.npz", "data": npz, "flags": 1}]
    )


def _nested_in_npz(files):
    """arrays.npz holds a zip where an array should be."""
    meta, arrays = meta_and_arrays(files["gmm"])
    key = _key(arrays, "means_")
    members = {k: npy_bytes(a) for k, a in arrays.items()}
    members[key] = zip_bytes([{"name": "x.npy", "data": npy_bytes(arrays[key])}])
    return model_file(meta, arrays, npz=npz_bytes(members))


def _npz_path_entry(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    members = {k: npy_bytes(a) for k, a in arrays.items()}
    members["../../evil"] = npy_bytes(np.zeros(2))
    return model_file(meta, arrays, npz=npz_bytes(members))


def _npz_unreferenced(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    members = {k: npy_bytes(a) for k, a in arrays.items()}
    members["99:extra"] = npy_bytes(np.zeros(2))
    return model_file(meta, arrays, npz=npz_bytes(members))


def _npz_compressed(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return model_file(meta, arrays, npz=buf.getvalue())


def _npz_missing(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    arrays.pop(_key(arrays, "means_"))
    return model_file(meta, arrays, npz=npz_bytes(arrays))


def _dtype(files, descr):
    meta, arrays = meta_and_arrays(files["gmm"])
    key = _key(arrays, "means_")
    members = {k: npy_bytes(a) for k, a in arrays.items()}
    n = np.dtype(descr).itemsize * 4 if "O" not in str(descr) else 32
    header = {"descr": descr, "fortran_order": False, "shape": (2, 2)}
    members[key] = npy_bytes(header=header, data=bytes(n))
    return model_file(meta, arrays, npz=npz_bytes(members))


def _object_dtype(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    key = _key(arrays, "means_")
    members = {k: npy_bytes(a) for k, a in arrays.items()}
    import pickle

    payload = pickle.dumps(["not", "code"])
    header = {"descr": "|O", "fortran_order": False, "shape": (2,)}
    members[key] = npy_bytes(header=header, data=payload)
    return model_file(meta, arrays, npz=npz_bytes(members))


def _shape_lies(files):
    """An entry whose header declares 100 numbers but which holds 4."""
    meta, arrays = meta_and_arrays(files["gmm"])
    key = _key(arrays, "means_")
    members = {k: npy_bytes(a) for k, a in arrays.items()}
    header = {"descr": "<f8", "fortran_order": False, "shape": (100,)}
    members[key] = npy_bytes(header=header, data=arrays[key].tobytes())
    return model_file(meta, arrays, npz=npz_bytes(members), declare=False)


def _declared_mismatch(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    key = _key(arrays, "means_")
    meta["arrays"][key]["shape"] = [4, 1]
    return model_file(meta, arrays, declare=False)


def _declared_object(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    meta["arrays"][_key(arrays, "means_")]["dtype"] = "|O"
    return model_file(meta, arrays, declare=False)


def _corrupt_array_data(files):
    meta, arrays = meta_and_arrays(files["gmm"])
    npz = bytearray(npz_bytes(arrays))
    at = npz.find(arrays[_key(arrays, "means_")].tobytes())
    npz[at + 3] ^= 0xFF
    return model_file(meta, arrays, npz=bytes(npz))


def _set(suffix, value):
    def change(a):
        a = np.array(a, dtype=np.float64)
        a.flat[0] = value
        return a

    return change


def _reshape(shape):
    return lambda a: np.zeros(shape)


def _class(files, name):
    def change(meta):
        meta["class"] = name
        meta["model"]["$object"] = name

    return _meta_changed(files["gmm"], change)


def _meta_field(files, key, value, which="gmm"):
    return _meta_changed(files[which], lambda m: m.update({key: value}))


def _param(files, which, name, value):
    return _meta_changed(files[which], lambda m: m["model"]["params"].update({name: value}))


def _swap_class(files):
    """meta.json says GaussianMixture but the model inside is a PoissonHMM."""
    return _meta_changed(files["poisson"], lambda m: m.update({"class": "GaussianMixture"}))


def _latin1_meta(files):
    meta, npz = _entries(files["gmm"])
    return _stored(meta.replace(b'"GaussianMixture"', b'"Gaussi\xe4nMixture"', 1), npz)


def _imputer_weights(files):
    return _tampered(files["imputer"], "latent<CategoricalLatent>.fitted.weights_", lambda a: -a)


def _hmm_means_width(files):
    return _tampered(files["ghmm"], "means_", lambda a: np.zeros((2, 3)))


#: The battery: (category, name) -> a function of the fixture's files giving the file's bytes.
CASES = {
    # not a model file at all
    ("foreign", "text file"): _not_zip,
    ("foreign", "empty file"): lambda f: b"",
    ("foreign", "zip without meta.json"): lambda f: _only(f, "arrays.npz"),
    ("foreign", "zip without arrays.npz"): lambda f: _only(f, "meta.json"),
    ("foreign", "other format name"): lambda f: _meta_field(f, "format", "pickle"),
    ("foreign", "meta.json is a list"): lambda f: _stored(b"[1, 2]", _entries(f["gmm"])[1]),
    ("foreign", "meta.json in Latin-1"): _latin1_meta,
    ("foreign", "NaN constant in JSON"): lambda f: _stored(
        _entries(f["gmm"])[0].replace(b'"format_version": 1', b'"format_version": NaN'),
        _entries(f["gmm"])[1],
    ),
    # identity: class and version
    ("identity", "class not ours"): lambda f: _class(f, "os.system"),
    ("identity", "class import path"): lambda f: _class(f, "subprocess.Popen"),
    ("identity", "class says one thing, holds another"): _swap_class,
    ("identity", "future format version"): lambda f: _meta_field(f, "format_version", 99),
    ("identity", "format version as text"): lambda f: _meta_field(f, "format_version", "1"),
    ("identity", "format version true"): lambda f: _meta_field(f, "format_version", True),
    # bombs and limits
    ("bomb", "arrays.npz: 4 GiB of zeros in 4 MB"): _bomb_4gib,
    ("bomb", "honest 1 GiB array of zeros"): _honest_bomb,
    ("bomb", "meta.json over the limit"): _meta_bomb,
    ("bomb", "meta.json inflates past its declared size"): _lying_meta_size,
    ("bomb", "arrays.npz larger than declared"): _extra_bytes_declared,
    ("bomb", "old format, junk after the arrays"): _trailing_old_format,
    ("bomb", "JSON nested 100000 deep"): _deep_json,
    ("bomb", "5000-digit integer"): _huge_int,
    ("bomb", "latent part of 10**12 components"): _latent_alloc,
    # archive structure
    ("structure", "nested archive beside the members"): lambda f: _entry(
        f, "inner.zip", zip_bytes([{"name": "a", "data": b"x"}])
    ),
    ("structure", "duplicate meta.json"): _duplicate,
    ("structure", "path-like names"): _path_names,
    ("structure", "bzip2 compression"): _bzip2,
    ("structure", "encrypted entry"): _encrypted,
    ("structure", "zip inside arrays.npz"): _nested_in_npz,
    ("structure", "path-like array name"): _npz_path_entry,
    ("structure", "array no one names"): _npz_unreferenced,
    ("structure", "compressed arrays.npz entries"): _npz_compressed,
    ("structure", "array missing"): _npz_missing,
    ("structure", "array used twice"): lambda f: _meta_changed(
        f["gmm"],
        lambda m: m["model"]["fitted"]["history_"].update(
            m["model"]["fitted"]["_family"]["fitted"]["means_"]
        ),
    ),
    ("structure", "damaged array data (checksum)"): _corrupt_array_data,
    # types
    ("type", "object array (pickle)"): _object_dtype,
    ("type", "structured dtype"): lambda f: _dtype(f, [("a", "<f8"), ("b", "<i4")]),
    ("type", "string dtype"): lambda f: _dtype(f, "<U4"),
    ("type", "datetime dtype"): lambda f: _dtype(f, "<M8[ns]"),
    ("type", "void dtype"): lambda f: _dtype(f, "|V8"),
    ("type", "object dtype declared in meta.json"): _declared_object,
    ("type", "n_components as text"): lambda f: _param(f, "gmm", "n_components", "two"),
    ("type", "n_components negative"): lambda f: _param(f, "gmm", "n_components", -2),
    ("type", "unknown parameter"): lambda f: _param(f, "gmm", "evil", 1),
    ("type", "bad $float"): lambda f: _meta_changed(
        f["gmm"], lambda m: m["model"]["params"].update(tol={"$float": "__import__('os')"})
    ),
    ("type", "unknown $entry"): lambda f: _meta_changed(
        f["gmm"], lambda m: m["model"]["params"].update(tol={"$code": "x"})
    ),
    # shapes
    ("shape", "header declares more than the entry holds"): _shape_lies,
    ("shape", "meta.json declares another shape"): _declared_mismatch,
    ("shape", "means_ of K+1 components"): lambda f: _tampered(
        f["gmm"], "means_", _reshape((3, 2))
    ),
    ("shape", "covariances_ of another D"): lambda f: _tampered(
        f["gmm"], "covariances_", lambda a: np.stack([np.eye(3)] * 2)
    ),
    ("shape", "weights_ of K-1"): lambda f: _tampered(f["gmm"], "weights_", lambda a: np.ones(1)),
    ("shape", "n_features_in_ disagrees"): lambda f: _meta_changed(
        f["gmm"], lambda m: m["model"]["fitted"].update(n_features_in_=5)
    ),
    ("shape", "HMM means of 3 features, n_features 2"): _hmm_means_width,
    ("shape", "transmat_ not square"): lambda f: _tampered(
        f["ghmm"], "transmat_", lambda a: np.full((2, 3), 1 / 3)
    ),
    # values
    ("value", "NaN weight"): lambda f: _tampered(f["gmm"], "weights_", _set("", np.nan)),
    ("value", "negative weight"): lambda f: _tampered(
        f["gmm"], "weights_", lambda a: np.array([1.5, -0.5])
    ),
    ("value", "weights sum to 2"): lambda f: _tampered(f["gmm"], "weights_", lambda a: 2 * a),
    ("value", "NaN mean"): lambda f: _tampered(f["gmm"], "means_", _set("", np.nan)),
    ("value", "infinite covariance"): lambda f: _tampered(
        f["gmm"], "covariances_", _set("", np.inf)
    ),
    ("value", "covariance not positive definite"): lambda f: _tampered(
        f["gmm"], "covariances_", lambda a: np.array([[[1.0, 2.0], [2.0, 1.0]]] * 2)
    ),
    ("value", "negative diagonal covariance"): lambda f: _tampered(
        f["gmm_diag"], "covariances_", lambda a: -a
    ),
    ("value", "HMM negative transition"): lambda f: _tampered(
        f["ghmm"], "transmat_", lambda a: np.array([[1.5, -0.5], [0.5, 0.5]])
    ),
    ("value", "HMM NaN start probability"): lambda f: _tampered(
        f["ghmm"], "startprob_", _set("", np.nan)
    ),
    ("value", "HMM full covariance not PD"): lambda f: _tampered(
        f["ghmm_full"], "covariances_", lambda a: -a
    ),
    ("value", "Poisson negative rate"): lambda f: _tampered(f["poisson"], "lambdas_", lambda a: -a),
    ("value", "categorical rows not summing to 1"): lambda f: _tampered(
        f["categorical"], "emissionprob_", lambda a: a * 3
    ),
    ("value", "imputer negative weights"): _imputer_weights,
    ("value", "factor loadings NaN"): lambda f: _tampered(f["fa"], "components_", _set("", np.nan)),
    ("value", "factor mixture weights NaN"): lambda f: _tampered(
        f["mfa"], "weights_", _set("", np.nan)
    ),
}


def _load_measured(path):
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return info.value, peak


def test_the_battery_is_large():
    assert len(CASES) >= 30
    assert len({c for c, _ in CASES}) >= 6


@pytest.mark.parametrize("case", list(CASES), ids=[f"{c}: {n}" for c, n in CASES])
def test_hostile_file_is_one_clear_error(case, files, tmp_path):
    load(files["gmm"])  # kernels compiled before memory is measured
    path = tmp_path / "hostile.lem"
    path.write_bytes(CASES[case](files))
    error, peak = _load_measured(path)
    message = str(error)
    assert "\n" not in message and len(message) < 500, message
    assert str(path) in message or "model file" in message
    assert peak < MEMORY_LIMIT, f"{peak / 2**20:.1f} MiB"
    # describe reads the same way (it does not build the model, so value cases pass it)
    try:
        describe(path)
    except ValueError as exc:
        assert "\n" not in str(exc)
    # the command line: one line on stderr, exit code 1, no traceback
    code = main(["info", str(path)])
    assert code == 1


def test_messages_say_what_was_wrong(files, tmp_path):
    expect = {
        ("bomb", "arrays.npz: 4 GiB of zeros in 4 MB"): "compression bomb",
        ("bomb", "meta.json over the limit"): "more than the",
        ("structure", "duplicate meta.json"): "twice",
        ("structure", "path-like names"): "path",
        ("structure", "zip inside arrays.npz"): "not a NumPy array",
        ("type", "object array (pickle)"): "plain numbers",
        ("type", "string dtype"): "plain numbers",
        ("identity", "future format version"): "Upgrade latentem",
        ("identity", "class not ours"): "does not know",
        ("value", "NaN weight"): "weights_",
        ("value", "covariance not positive definite"): "positive definite",
        ("value", "HMM negative transition"): "transmat_",
        ("shape", "HMM means of 3 features, n_features 2"): "features",
    }
    for case, text in expect.items():
        path = tmp_path / "x.lem"
        path.write_bytes(CASES[case](files))
        with pytest.raises(ValueError, match=text):
            load(path)


@pytest.mark.parametrize("which", ["gmm", "ghmm", "imputer"])
def test_truncated_at_every_section_boundary(which, files, tmp_path):
    """Cut the file at each entry's header, name, data and the directory (and next to
    them): each cut is a clear error."""
    data = files[which].read_bytes()
    cuts = set()
    with zipfile.ZipFile(files[which]) as zf:
        for info in zf.infolist():
            start = info.header_offset
            nlen, xlen = struct.unpack_from("<HH", data, start + 26)
            body = start + 30 + nlen + xlen
            cuts.update({start, start + 4, start + 30, body, body + info.compress_size // 2})
    end = data.rfind(b"PK\x05\x06")
    cuts.update({data.rfind(b"PK\x01\x02"), end, end + 10, len(data) - 1, 1, 0})
    assert len(cuts) >= 12
    for cut in sorted(cuts):
        path = tmp_path / f"cut{cut}.lem"
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a readable latentem model file"):
            load(path)


def test_old_files_without_the_arrays_table_still_load(files, tmp_path):
    """Files written before meta.json declared the arrays load as before."""
    X = _data()
    for which in ("gmm", "ghmm", "imputer"):
        meta, arrays = meta_and_arrays(files[which])
        del meta["arrays"]
        # as the old writer named entries and stored them
        path = tmp_path / f"old_{which}.lem"
        path.write_bytes(model_file(meta, arrays, npz=npz_bytes(arrays)))
        old, new = load(path), load(files[which])
        if which == "imputer":
            np.testing.assert_array_equal(
                old.transform(np.where(X > 2.5, np.nan, X)),
                new.transform(np.where(X > 2.5, np.nan, X)),
            )
        else:
            np.testing.assert_array_equal(old.predict(X), new.predict(X))
        assert describe(path)["arrays"] == describe(files[which])["arrays"]


def test_memory_while_loading_is_within_twice_the_declared_bytes(tmp_path):
    """A model of 8 MB of arrays loads with a peak under twice that (plus a little)."""
    rng = np.random.default_rng(0)
    K, D = 4, 500
    gm = GaussianMixture(K, covariance_type="full", random_state=0, max_iter=1)
    gm.fit(rng.normal(size=(600, D)))
    path = tmp_path / "big.lem"
    gm.save(path)
    declared = sum(
        int(np.prod(a["shape"])) * np.dtype(a["dtype"]).itemsize
        for a in describe(path)["arrays"].values()
    )
    assert declared > 8e6
    load(path)
    tracemalloc.start()
    try:
        again = load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(again.means_, gm.means_)
    assert peak < 2 * declared + (4 << 20), (peak, declared)


def _mutate(data, edits):
    data = bytearray(data)
    for kind, pos, value in edits:
        if kind == "insert":
            data[pos % (len(data) + 1) : pos % (len(data) + 1)] = bytes([value])
            continue
        if not data:
            break
        pos %= len(data)
        if kind == "flip":
            data[pos] ^= value or 1
        elif kind == "set":
            data[pos] = value
        elif kind == "delete":
            del data[pos]
        else:
            del data[pos:]
    return bytes(data)


_EDIT = st.tuples(
    st.sampled_from(["flip", "set", "insert", "delete", "truncate"]),
    st.integers(0, 1 << 20),
    st.integers(0, 255),
)


@settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from(["gmm", "ghmm", "poisson", "imputer"]),
    edits=st.lists(_EDIT, min_size=1, max_size=4),
)
def test_mutated_bytes_are_an_error_or_a_sound_model(which, edits, files, tmp_path):
    """Flip, set, insert and delete bytes of real files: loading gives one-line
    ValueError or a model whose answers are finite."""
    path = tmp_path / "mutant.lem"
    path.write_bytes(_mutate(files[which].read_bytes(), edits))
    _sound_or_error(path, which)


def _sound_or_error(path, which):
    try:
        model = load(path)
    except ValueError as exc:
        assert "\n" not in str(exc)
        return
    X = _data()
    if which in ("poisson", "categorical"):
        answers = model.predict_proba(np.arange(12)[:, None] % 3)
    elif which == "imputer":
        answers = model.transform(np.where(X > 2.5, np.nan, X))
    else:
        answers = model.score_samples(X) if which == "gmm" else model.predict_proba(X)
    assert np.isfinite(answers).all()


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    which=st.sampled_from(["gmm", "ghmm_full", "categorical", "imputer"]),
    member=st.sampled_from(["meta", "arrays"]),
    edits=st.lists(_EDIT, min_size=1, max_size=3),
)
def test_mutated_members_with_valid_checksums(which, member, edits, files, tmp_path):
    """Mutate meta.json or arrays.npz themselves and store them with matching checksums,
    so that the mutations reach the parsers and the parameter checks."""
    meta, npz = _entries(files[which])
    if member == "meta":
        meta = _mutate(meta, edits)
    else:
        npz = _mutate(npz, edits)
    path = tmp_path / "mutant.lem"
    path.write_bytes(_stored(meta, npz))
    _sound_or_error(path, which)


def test_cli_reports_a_bomb_in_one_line(files, tmp_path, capsys):
    path = tmp_path / "bomb.lem"
    path.write_bytes(_bomb_4gib(files))
    table = tmp_path / "t.csv"
    table.write_text("a,b\n1,2\n3,4\n")
    for argv in (["info", str(path)], ["score", str(path), str(table)]):
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("latentem: error:") and "bomb" in err
    assert os.path.getsize(path) < 5 << 20
