"""Datasets for the numpy trainer: digits, MNIST, CIFAR-10/100 and seeded synthetic data.

Every loader returns float32 images in [0, 1] (HWC) and int64 labels; every problem is a DataError.
"""

from __future__ import annotations

import difflib
import gzip
import math
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hwsim.errors import DataError, SpecError

__all__ = [
    "DATASET_NAMES",
    "DIGITS_SPLIT_SEED",
    "Dataset",
    "check_seed",
    "load_dataset",
]

DATASET_NAMES = ("digits", "mnist", "cifar10", "cifar100", "synthetic")
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_SIZE = 360
SYNTHETIC_NOISE = 0.25  # std of the per-sample noise around each class prototype
_SYNTHETIC_CHUNK_BYTES = 32 * 2**20  # bound on float32 temporaries while generating

_CLASSES = {"digits": 10, "mnist": 10, "cifar10": 10, "cifar100": 100}

_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801

_CIFAR_DIRS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_CIFAR_FILES = {
    "cifar10": (tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",)),
    "cifar100": (("train",), ("test",)),
}
_CIFAR_LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}
_CIFAR_PIXELS = 3 * 32 * 32
_MAX_DATA_FILE_BYTES = 2**30  # a dataset file, decompressed (CIFAR-100's train batch: 155 MB)

# The only globals a CIFAR batch pickle (python 2 or 3, old or new numpy) refers to.
_PICKLE_GLOBALS = frozenset(
    {
        ("_codecs", "encode"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        *(
            (f"numpy.{core}.{module}", name)
            for core in ("core", "_core")
            for module, name in (
                ("multiarray", "_reconstruct"),
                ("multiarray", "scalar"),
                ("numeric", "_frombuffer"),
            )
        ),
    }
)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A train/test split: x float32 [n, *sample_shape] in [0, 1], y int64 class indices [n]."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    classes: int

    def __post_init__(self) -> None:
        for x, y, split in (
            (self.x_train, self.y_train, "train"),
            (self.x_test, self.y_test, "test"),
        ):
            if x.dtype != np.float32 or y.dtype != np.int64:
                raise DataError(
                    f"dataset {self.name}: {split} arrays must be float32/int64 "
                    f"(got {x.dtype}/{y.dtype})"
                )
            if y.ndim != 1 or x.ndim < 2 or len(x) != len(y):
                raise DataError(
                    f"dataset {self.name}: {split} images {x.shape} do not match labels {y.shape}"
                )
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(
                f"dataset {self.name}: train sample shape {self.x_train.shape[1:]} differs from "
                f"test sample shape {self.x_test.shape[1:]}"
            )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample, HWC for images."""
        return tuple(int(d) for d in self.x_train.shape[1:])


def check_seed(seed: object) -> None:
    """SpecError unless `seed` is a whole number numpy can seed with (0 ≤ seed < 2**128)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**128:
        raise SpecError(f"seed: must be a whole number from 0 to 2**128 - 1 (got {seed!r:.40})")


def load_dataset(
    name: str,
    *,
    path: str | os.PathLike[str] | None = None,
    sample_shape: tuple[int, ...] | None = None,
    classes: int | None = None,
    seed: int = 0,
    synthetic_train: int = 1024,
    synthetic_test: int = 256,
) -> Dataset:
    """Load dataset `name`; `sample_shape` and `seed` only matter for synthetic data."""
    check_seed(seed)
    if name not in DATASET_NAMES:
        close = difflib.get_close_matches(name.lower(), DATASET_NAMES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise DataError(
            f"unknown dataset {name!r}; valid datasets: {', '.join(DATASET_NAMES)}{hint}"
        )
    if name == "synthetic":
        if path is not None:
            raise DataError("dataset synthetic is generated; --data-path is not used")
        return _synthetic(sample_shape, classes, seed, synthetic_train, synthetic_test)
    if classes is not None and classes != _CLASSES[name]:
        raise DataError(
            f"dataset {name} has {_CLASSES[name]} classes, but {classes} classes were requested"
        )
    if name == "digits":
        if path is not None:
            raise DataError("dataset digits ships with scikit-learn; --data-path is not used")
        return _digits()
    if path is None:
        where = f"the {_CIFAR_DIRS.get(name)} directory (or its parent)"
        if name == "mnist":
            where = "the directory with the IDX files"
        raise DataError(f"dataset {name} needs --data-path pointing at {where}")
    directory = Path(path)
    if not directory.exists():
        raise DataError(f"{directory}: data directory for dataset {name} does not exist")
    if not directory.is_dir():
        raise DataError(f"{directory}: data path for dataset {name} is not a directory")
    if name == "mnist":
        return _mnist(directory)
    return _cifar(name, directory)


# --------------------------------------------------------------------------- digits


def _digits() -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[..., np.newaxis]
    y = np.asarray(bunch.target, dtype=np.int64)
    test = _stratified_test_indices(y, DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)
    is_test = np.zeros(len(y), dtype=bool)
    is_test[test] = True
    return Dataset("digits", x[~is_test], y[~is_test], x[is_test], y[is_test], _CLASSES["digits"])


def _stratified_test_indices(y: np.ndarray, test_size: int, seed: int) -> np.ndarray:
    """Sorted indices of a per-class proportional test split (largest remainder rounding)."""
    labels, counts = np.unique(y, return_counts=True)
    exact = counts * test_size / len(y)
    per_class = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - per_class), kind="stable")
    per_class[remainder_order[: test_size - int(per_class.sum())]] += 1
    rng = np.random.default_rng(seed)
    picked = [
        rng.permutation(np.flatnonzero(y == label))[:k]
        for label, k in zip(labels, per_class, strict=True)
    ]
    return np.sort(np.concatenate(picked))


# --------------------------------------------------------------------------- mnist


def _mnist(directory: Path) -> Dataset:
    splits: list[tuple[np.ndarray, np.ndarray]] = []
    for split in ("train", "t10k"):
        image_file = _find_idx(directory, f"{split}-images", "idx3")
        label_file = _find_idx(directory, f"{split}-labels", "idx1")
        images = _read_idx(image_file, _IDX_IMAGES_MAGIC)[..., np.newaxis]
        labels = _read_idx(label_file, _IDX_LABELS_MAGIC)
        if len(labels) != len(images):
            raise DataError(
                f"{label_file}: {len(labels)} labels, but {image_file.name} holds "
                f"{len(images)} images"
            )
        if splits and splits[0][0].shape[1:] != images.shape[1:]:
            raise DataError(
                f"{image_file}: images are {images.shape[1:3]}, but the train images are "
                f"{splits[0][0].shape[1:3]}"
            )
        splits.append((images, _checked_labels(label_file, labels, _CLASSES["mnist"])))
    (x_train, y_train), (x_test, y_test) = splits
    return Dataset(
        "mnist", _scale_uint8(x_train), y_train, _scale_uint8(x_test), y_test, _CLASSES["mnist"]
    )


def _find_idx(directory: Path, stem: str, kind: str) -> Path:
    names = [
        f"{base}{gz}"
        for base in (f"{stem}-{kind}-ubyte", f"{stem}.{kind}-ubyte")
        for gz in ("", ".gz")
    ]
    for candidate in names:
        if (directory / candidate).is_file():
            return directory / candidate
    raise DataError(
        f"{directory}: missing {names[0]} for dataset mnist (looked for {', '.join(names)})"
    )


def _read_bytes(file: Path) -> bytes:
    """A dataset file's bytes (decompressed if .gz), at most _MAX_DATA_FILE_BYTES of them."""
    try:
        with file.open("rb") as raw:
            stream = gzip.GzipFile(fileobj=raw) if file.suffix == ".gz" else raw
            data = stream.read(_MAX_DATA_FILE_BYTES + 1)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise DataError(f"{file}: corrupt gzip data ({exc})") from exc
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    if len(data) > _MAX_DATA_FILE_BYTES:
        raise DataError(
            f"{file}: more than {_MAX_DATA_FILE_BYTES:,} bytes"
            f"{' once decompressed' if file.suffix == '.gz' else ''}, larger than "
            "any dataset file hwsim reads"
        )
    return data


def _read_idx(file: Path, magic: int) -> np.ndarray:
    data = _read_bytes(file)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(f"{file}: truncated IDX file (expected at least 4 bytes, got {len(data)})")
    got_magic = int.from_bytes(data[:4], "big")
    if got_magic != magic:
        raise DataError(
            f"{file}: bad IDX magic number (expected 0x{magic:08x}, got 0x{got_magic:08x})"
        )
    if len(data) < header:
        raise DataError(f"{file}: truncated IDX header (expected {header} bytes, got {len(data)})")
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "oversized"
        raise DataError(
            f"{file}: {problem} IDX file for dims {dims} "
            f"(expected {expected} bytes, got {len(data)})"
        )
    if dims[0] == 0:
        raise DataError(f"{file}: IDX file holds no items")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _checked_labels(file: Path, labels: np.ndarray, classes: int) -> np.ndarray:
    out = labels.astype(np.int64)
    bad = (out < 0) | (out >= classes)
    if bad.any():
        raise DataError(
            f"{file}: label out of range 0..{classes - 1} (got {out[bad][0]} "
            f"at index {int(np.flatnonzero(bad)[0])})"
        )
    return out


def _scale_uint8(pixels: np.ndarray) -> np.ndarray:
    out = pixels.astype(np.float32)
    out /= np.float32(255.0)
    return out


# --------------------------------------------------------------------------- cifar


def _cifar(name: str, directory: Path) -> Dataset:
    subdir = _CIFAR_DIRS[name]
    if (directory / subdir).is_dir():
        directory = directory / subdir
    train_files, test_files = _CIFAR_FILES[name]
    x_train, y_train = _cifar_split(name, directory, train_files)
    x_test, y_test = _cifar_split(name, directory, test_files)
    return Dataset(name, x_train, y_train, x_test, y_test, _CLASSES[name])


def _cifar_split(
    name: str, directory: Path, files: tuple[str, ...]
) -> tuple[np.ndarray, np.ndarray]:
    for file_name in files:
        if not (directory / file_name).is_file():
            raise DataError(
                f"{directory}: missing {file_name} for dataset {name} "
                f"(looked for {', '.join(files)} here and in a {_CIFAR_DIRS[name]} subdirectory)"
            )
    batches = [_cifar_batch(name, directory / file_name) for file_name in files]
    total = sum(len(labels) for _, labels in batches)
    x = np.empty((total, 32, 32, 3), dtype=np.float32)
    start = 0
    for pixels, _ in batches:
        stop = start + len(pixels)
        x[start:stop] = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        start = stop
    x /= np.float32(255.0)
    return x, np.concatenate([labels for _, labels in batches])


class _RefusedPickle(Exception):
    """The pickle asks for something a CIFAR batch never contains."""


def _guarded_codecs_encode(text: object, encoding: object = "utf-8") -> bytes:
    """`_codecs.encode` as python-2 CIFAR pickles use it: str → latin-1 bytes, nothing else
    (other codecs, such as hex, would let a small pickle build a huge value)."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise _RefusedPickle(
            f"_codecs.encode with {type(text).__name__} and "
            f"{str(encoding)[:20]!r} (only str to latin1 is allowed)"
        )
    return text.encode("latin1")


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy globals a CIFAR batch uses, and refuses to build
    an array larger than the file it comes from (so a 200-byte pickle cannot claim gigabytes)."""

    def __init__(self, file, size_bytes: int) -> None:
        super().__init__(file, encoding="bytes")
        self._budget = max(size_bytes, 1) + 2**16

    # The arguments come from the pickle, so they can be anything (Any): _check_array checks the
    # shape and dtype before numpy sees them.
    def _reconstruct(self, subtype: object, shape: Any, dtype: Any) -> object:
        self._check_array(shape, dtype)
        return np.ndarray.__new__(np.ndarray, shape, dtype)

    def _ndarray(self, shape: Any, dtype: Any = float, *args: Any) -> object:
        self._check_array(shape, dtype)
        return np.ndarray(shape, dtype, *args)

    def _check_array(self, shape: object, dtype: Any) -> None:
        dims = shape if isinstance(shape, tuple) else (shape,)
        if not all(isinstance(d, int) and d >= 0 for d in dims):
            raise _RefusedPickle(f"an array of shape {str(shape)[:40]}")
        try:
            itemsize = np.dtype(dtype).itemsize
        except TypeError as exc:
            raise _RefusedPickle(f"an array of dtype {str(dtype)[:40]} ({exc})") from None
        if math.prod(dims) * itemsize > self._budget:
            raise _RefusedPickle(
                f"an array of {math.prod(dims) * itemsize:,} bytes from a file "
                f"of {self._budget - 2**16:,} bytes"
            )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in _PICKLE_GLOBALS:
            raise _RefusedPickle(f"the global {module}.{name}")
        if (module, name) == ("_codecs", "encode"):
            return _guarded_codecs_encode
        if name == "_reconstruct":
            return self._reconstruct
        if (module, name) == ("numpy", "ndarray"):
            return self._ndarray
        return super().find_class(module, name)


def _cifar_batch(name: str, file: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with file.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > _MAX_DATA_FILE_BYTES:
                raise DataError(f"{file}: {size:,} bytes, larger than any CIFAR batch")
            batch = _CifarUnpickler(f, size).load()
    except OSError as exc:
        raise DataError(f"{file}: cannot read ({exc.strerror or exc})") from exc
    except _RefusedPickle as exc:
        raise DataError(
            f"{file}: refused: not a CIFAR batch: the pickle asks for {exc}; a "
            "pickle can run code and build anything, so only the numpy arrays of "
            "a CIFAR batch are loaded"
        ) from None
    except DataError:
        raise
    except Exception as exc:  # a corrupt pickle can raise almost anything
        problem = f"{type(exc).__name__}: {exc}"[:200]
        raise DataError(f"{file}: truncated or corrupt pickle ({problem})") from None
    label_key = _CIFAR_LABEL_KEY[name]
    if not isinstance(batch, dict):
        raise DataError(f"{file}: expected a pickled dict, got {type(batch).__name__}")
    data = _batch_entry(batch, "data", file)
    labels = _batch_entry(batch, label_key, file)
    # Only the shapes CIFAR uses: data an array, labels an array or a flat list of ints.  A
    # nested list (shared references cost nothing in a pickle) could expand to gigabytes.
    if not isinstance(data, np.ndarray):
        raise DataError(f"{file}: data must be a numpy array (got {type(data).__name__})")
    if isinstance(labels, list) and all(type(label) is int for label in labels):
        labels = np.array(labels, dtype=np.int64)
    if not isinstance(labels, np.ndarray):
        raise DataError(
            f"{file}: {label_key} must be a list of integers (got {type(labels).__name__})"
        )
    pixels, label_array = data, labels
    if pixels.ndim != 2 or pixels.shape[1] != _CIFAR_PIXELS or pixels.shape[0] == 0:
        raise DataError(f"{file}: data must be [n, {_CIFAR_PIXELS}] (got shape {pixels.shape})")
    if pixels.dtype != np.uint8:
        if pixels.dtype.kind not in "iu" or pixels.min() < 0 or pixels.max() > 255:
            raise DataError(f"{file}: data must hold bytes 0..255 (got dtype {pixels.dtype})")
        pixels = pixels.astype(np.uint8)
    if label_array.ndim != 1 or label_array.dtype.kind not in "iu":
        raise DataError(
            f"{file}: {label_key} must be a list of integers (got {label_array.dtype} "
            f"shape {label_array.shape})"
        )
    if len(label_array) != len(pixels):
        raise DataError(f"{file}: {len(label_array)} {label_key}, but {len(pixels)} images")
    return pixels, _checked_labels(file, label_array, _CLASSES[name])


def _batch_entry(batch: dict[object, object], key: str, file: Path) -> object:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    # Only short text keys are shown: repr of a crafted key could be exponentially long.
    shown = [k for k in batch if isinstance(k, str | bytes) and len(k) <= 40]
    found = ", ".join(sorted(repr(k) for k in shown)[:8])
    raise DataError(f"{file}: pickle has no {key.encode()!r} key (found {found or 'no keys'})")


# --------------------------------------------------------------------------- synthetic


def _synthetic(
    sample_shape: tuple[int, ...] | None,
    classes: int | None,
    seed: int,
    n_train: int,
    n_test: int,
) -> Dataset:
    if sample_shape is None or classes is None:
        missing = " and ".join(
            k for k, v in (("sample_shape", sample_shape), ("classes", classes)) if v is None
        )
        raise DataError(f"dataset synthetic needs {missing}")
    shape = tuple(sample_shape)
    if not shape or not all(isinstance(d, int | np.integer) and d > 0 for d in shape):
        raise DataError(f"dataset synthetic: sample_shape must be positive ints (got {shape})")
    shape = tuple(int(d) for d in shape)
    if classes < 2:
        raise DataError(f"dataset synthetic: classes must be at least 2 (got {classes})")
    for label, n in (("synthetic_train", n_train), ("synthetic_test", n_test)):
        if n < 1:
            raise DataError(f"dataset synthetic: {label} must be at least 1 (got {n})")
    rng = np.random.default_rng(seed)
    prototypes = rng.random((classes, *shape), dtype=np.float32)
    x_train, y_train = _synthetic_split(rng, prototypes, n_train)
    x_test, y_test = _synthetic_split(rng, prototypes, n_test)
    return Dataset("synthetic", x_train, y_train, x_test, y_test, classes)


def _synthetic_split(
    rng: np.random.Generator, prototypes: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    classes = len(prototypes)
    y = rng.permutation(np.arange(n, dtype=np.int64) % classes)
    x = np.empty((n, *prototypes.shape[1:]), dtype=np.float32)
    chunk = max(1, _SYNTHETIC_CHUNK_BYTES // max(1, prototypes[0].nbytes))
    for start in range(0, n, chunk):
        part = x[start : start + chunk]
        rng.standard_normal(dtype=np.float32, out=part)
        part *= np.float32(SYNTHETIC_NOISE)
        part += prototypes[y[start : start + chunk]]
        np.clip(part, 0.0, 1.0, out=part)
    return x, y
