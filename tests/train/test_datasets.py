"""Tests for hwsim.train.datasets: real digits, fake MNIST/CIFAR files, synthetic data, errors."""

from __future__ import annotations

import gzip
import pickle
import re
from contextlib import AbstractContextManager
from pathlib import Path

import numpy as np
import pytest

from hwsim.errors import DataError
from hwsim.train.datasets import (
    DATASET_NAMES,
    DIGITS_SPLIT_SEED,
    Dataset,
    load_dataset,
)

MNIST_FILES = {
    "train-images": ("train-images-idx3-ubyte", 0x803),
    "train-labels": ("train-labels-idx1-ubyte", 0x801),
    "test-images": ("t10k-images-idx3-ubyte", 0x803),
    "test-labels": ("t10k-labels-idx1-ubyte", 0x801),
}


def idx_bytes(magic: int, array: np.ndarray) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def fake_mnist(
    directory: Path, *, gz: bool = False, dotted: bool = False, n_train: int = 5, n_test: int = 3
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    arrays = {
        "train-images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels": np.arange(n_train, dtype=np.uint8) % 10,
        "test-images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test-labels": (np.arange(n_test, dtype=np.uint8) + 3) % 10,
    }
    directory.mkdir(parents=True, exist_ok=True)
    for key, (file_name, magic) in MNIST_FILES.items():
        if dotted:
            file_name = file_name.replace("-idx", ".idx")
        data = idx_bytes(magic, arrays[key])
        if gz:
            (directory / f"{file_name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / file_name).write_bytes(data)
    return arrays


def cifar_pixels(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def write_pickle(file: Path, obj: object) -> None:
    file.write_bytes(pickle.dumps(obj, protocol=2))


def fake_cifar10(directory: Path, per_batch: int = 2) -> dict[str, dict[bytes, object]]:
    directory.mkdir(parents=True, exist_ok=True)
    batches = {}
    for i, file_name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        batches[file_name] = {
            b"data": cifar_pixels(per_batch, i),
            b"labels": [(i + j) % 10 for j in range(per_batch)],
            b"batch_label": b"fake",
        }
        write_pickle(directory / file_name, batches[file_name])
    return batches


def fake_cifar100(directory: Path) -> dict[str, dict[bytes, object]]:
    directory.mkdir(parents=True, exist_ok=True)
    batches = {
        "train": {b"data": cifar_pixels(4, 1), b"fine_labels": [0, 99, 50, 7]},
        "test": {b"data": cifar_pixels(2, 2), b"fine_labels": [98, 1]},
    }
    for file_name, batch in batches.items():
        write_pickle(directory / file_name, {**batch, b"coarse_labels": [0] * 4})
    return batches


def assert_well_formed(ds: Dataset) -> None:
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == ds.sample_shape and len(x) == len(y)
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert y.min() >= 0 and y.max() < ds.classes


# --------------------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits")


def test_digits_shapes_and_ranges(digits: Dataset) -> None:
    assert_well_formed(digits)
    assert digits.name == "digits" and digits.classes == 10
    assert digits.sample_shape == (8, 8, 1)
    assert digits.x_train.shape == (1437, 8, 8, 1) and digits.x_test.shape == (360, 8, 8, 1)
    assert digits.x_train.max() == 1.0  # 16 / 16
    assert DIGITS_SPLIT_SEED == 0


def test_digits_split_is_stratified_disjoint_and_seed_independent(digits: Dataset) -> None:
    from sklearn.datasets import load_digits

    full = load_digits().target
    all_counts = np.bincount(full, minlength=10)
    test_counts = np.bincount(digits.y_test, minlength=10)
    assert test_counts.sum() == 360
    np.testing.assert_allclose(test_counts, all_counts * 360 / len(full), atol=1)
    np.testing.assert_array_equal(test_counts + np.bincount(digits.y_train), all_counts)
    train_rows = {row.tobytes() for row in digits.x_train}
    assert sum(row.tobytes() in train_rows for row in digits.x_test) < 5  # only duplicate images
    other = load_dataset("digits", seed=123, classes=10)
    for a, b in (
        (digits.x_train, other.x_train),
        (digits.y_train, other.y_train),
        (digits.x_test, other.x_test),
        (digits.y_test, other.y_test),
    ):
        assert a.tobytes() == b.tobytes()


def test_digits_ignores_sample_shape() -> None:
    assert load_dataset("digits", sample_shape=(64,)).sample_shape == (8, 8, 1)


# --------------------------------------------------------------------------- mnist


@pytest.mark.parametrize(("gz", "dotted"), [(False, False), (True, False), (False, True)])
def test_mnist_round_trip(tmp_path: Path, gz: bool, dotted: bool) -> None:
    arrays = fake_mnist(tmp_path, gz=gz, dotted=dotted)
    ds = load_dataset("mnist", path=str(tmp_path), classes=10)
    assert_well_formed(ds)
    assert ds.name == "mnist" and ds.sample_shape == (28, 28, 1)
    assert ds.x_train.shape == (5, 28, 28, 1) and ds.x_test.shape == (3, 28, 28, 1)
    np.testing.assert_allclose(ds.x_train[..., 0], arrays["train-images"] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(ds.x_test[..., 0], arrays["test-images"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_train, arrays["train-labels"])
    np.testing.assert_array_equal(ds.y_test, arrays["test-labels"])


# --------------------------------------------------------------------------- cifar


@pytest.mark.parametrize("nested", [False, True])
def test_cifar10_round_trip(tmp_path: Path, nested: bool) -> None:
    directory = tmp_path / "cifar-10-batches-py"
    batches = fake_cifar10(directory)
    ds = load_dataset("cifar10", path=tmp_path if nested else directory, classes=10)
    assert_well_formed(ds)
    assert ds.sample_shape == (32, 32, 3) and ds.classes == 10
    assert ds.x_train.shape == (10, 32, 32, 3) and ds.x_test.shape == (2, 32, 32, 3)
    # CHW -> HWC: channel c, row r, column k sits at flat index c*1024 + r*32 + k.
    raw = batches["data_batch_2"][b"data"]
    for c, r, k in ((0, 0, 0), (1, 5, 7), (2, 31, 30)):
        assert ds.x_train[2 + 1, r, k, c] == np.float32(raw[1, c * 1024 + r * 32 + k]) / 255
    expected = np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    np.testing.assert_array_equal(ds.y_train, expected)
    np.testing.assert_array_equal(ds.y_test, batches["test_batch"][b"labels"])
    test_raw = batches["test_batch"][b"data"].reshape(2, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_allclose(ds.x_test, test_raw / 255.0, rtol=1e-6)


@pytest.mark.parametrize("nested", [False, True])
def test_cifar100_round_trip(tmp_path: Path, nested: bool) -> None:
    directory = tmp_path / "cifar-100-python"
    batches = fake_cifar100(directory)
    ds = load_dataset("cifar100", path=tmp_path if nested else directory)
    assert_well_formed(ds)
    assert ds.classes == 100 and ds.sample_shape == (32, 32, 3)
    np.testing.assert_array_equal(ds.y_train, [0, 99, 50, 7])
    np.testing.assert_array_equal(ds.y_test, [98, 1])
    raw = batches["train"][b"data"]
    assert ds.x_train[3, 10, 20, 2] == np.float32(raw[3, 2 * 1024 + 10 * 32 + 20]) / 255
    assert ds.x_train[0, 0, 1, 0] == np.float32(raw[0, 1]) / 255


def test_cifar_accepts_str_keys(tmp_path: Path) -> None:
    fake_cifar100(tmp_path)
    write_pickle(tmp_path / "test", {"data": cifar_pixels(1, 3), "fine_labels": [5]})
    assert load_dataset("cifar100", path=tmp_path).y_test.tolist() == [5]


# --------------------------------------------------------------------------- synthetic


def test_synthetic_deterministic_shape_and_balance() -> None:
    kw = {"sample_shape": (6, 5, 3), "classes": 7, "synthetic_train": 100, "synthetic_test": 30}
    a = load_dataset("synthetic", seed=3, **kw)
    b = load_dataset("synthetic", seed=3, **kw)
    c = load_dataset("synthetic", seed=4, **kw)
    assert_well_formed(a)
    assert a.name == "synthetic" and a.classes == 7 and a.sample_shape == (6, 5, 3)
    assert a.x_train.shape == (100, 6, 5, 3) and a.x_test.shape == (30, 6, 5, 3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(a, field).tobytes() == getattr(b, field).tobytes()
    assert a.x_train.tobytes() != c.x_train.tobytes()
    assert a.y_train.tobytes() != c.y_train.tobytes()
    for y in (a.y_train, a.y_test):
        counts = np.bincount(y, minlength=7)
        assert counts.max() - counts.min() <= 1


def test_synthetic_is_learnable() -> None:
    ds = load_dataset("synthetic", sample_shape=(16,), classes=10, synthetic_train=500)
    flat = ds.x_train.reshape(len(ds.x_train), -1)
    centroids = np.stack([flat[ds.y_train == k].mean(axis=0) for k in range(10)])
    test = ds.x_test.reshape(len(ds.x_test), -1)
    predicted = np.argmin(((test[:, None, :] - centroids[None]) ** 2).sum(axis=2), axis=1)
    assert (predicted == ds.y_test).mean() > 0.8


def test_synthetic_large_sample_is_float32_and_chunked() -> None:
    ds = load_dataset("synthetic", sample_shape=(64, 64, 3), classes=3, synthetic_train=64)
    assert ds.x_train.dtype == np.float32 and ds.x_train.shape == (64, 64, 64, 3)
    assert ds.x_test.shape == (256, 64, 64, 3)


# --------------------------------------------------------------------------- errors


def raises(match: str) -> AbstractContextManager[pytest.ExceptionInfo[DataError]]:
    return pytest.raises(DataError, match=match)


def test_unknown_name_lists_valid_and_suggests() -> None:
    with raises(r"unknown dataset 'mnsit'.*digits, mnist, cifar10.*did you mean 'mnist'"):
        load_dataset("mnsit")
    with pytest.raises(DataError) as info:
        load_dataset("imagenet")
    assert all(n in str(info.value) for n in DATASET_NAMES) and "did you mean" not in str(
        info.value
    )


def test_path_rules() -> None:
    with raises("dataset digits ships with scikit-learn; --data-path is not used"):
        load_dataset("digits", path="/tmp")
    with raises("dataset synthetic is generated; --data-path is not used"):
        load_dataset("synthetic", path="/tmp", sample_shape=(2,), classes=2)
    with raises("dataset mnist needs --data-path pointing at the directory with the IDX files"):
        load_dataset("mnist")
    with raises("dataset cifar10 needs --data-path pointing at the cifar-10-batches-py"):
        load_dataset("cifar10")
    with raises("dataset cifar100 needs --data-path pointing at the cifar-100-python"):
        load_dataset("cifar100")


def test_missing_and_non_directory(tmp_path: Path) -> None:
    gone = tmp_path / "nowhere"
    with raises(f"{re.escape(str(gone))}: data directory for dataset mnist does not exist"):
        load_dataset("mnist", path=gone)
    file = tmp_path / "afile"
    file.write_bytes(b"")
    with raises(f"{re.escape(str(file))}: data path for dataset cifar10 is not a directory"):
        load_dataset("cifar10", path=file)


def test_classes_mismatch_names_both() -> None:
    with raises("dataset cifar100 has 100 classes, but 10 classes were requested"):
        load_dataset("cifar100", path="/nonexistent", classes=10)
    with raises("dataset digits has 10 classes, but 12"):
        load_dataset("digits", classes=12)


def test_synthetic_argument_errors() -> None:
    with raises("dataset synthetic needs sample_shape and classes"):
        load_dataset("synthetic")
    with raises("dataset synthetic needs classes"):
        load_dataset("synthetic", sample_shape=(4,))
    with raises("dataset synthetic needs sample_shape"):
        load_dataset("synthetic", classes=3)
    with raises(r"sample_shape must be positive ints \(got \(4, 0\)\)"):
        load_dataset("synthetic", sample_shape=(4, 0), classes=3)
    with raises(r"sample_shape must be positive ints \(got \(\)\)"):
        load_dataset("synthetic", sample_shape=(), classes=3)
    with raises(r"classes must be at least 2 \(got 1\)"):
        load_dataset("synthetic", sample_shape=(4,), classes=1)
    with raises(r"synthetic_test must be at least 1 \(got 0\)"):
        load_dataset("synthetic", sample_shape=(4,), classes=2, synthetic_test=0)


def test_mnist_missing_file(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with raises(
        f"{re.escape(str(tmp_path))}: missing t10k-labels-idx1-ubyte for dataset mnist "
        r"\(looked for t10k-labels-idx1-ubyte, t10k-labels-idx1-ubyte.gz, "
        r"t10k-labels.idx1-ubyte, t10k-labels.idx1-ubyte.gz\)"
    ):
        load_dataset("mnist", path=tmp_path)


def test_mnist_bad_magic(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    labels = tmp_path / "train-labels-idx1-ubyte"
    (tmp_path / "train-images-idx3-ubyte").write_bytes(labels.read_bytes())
    with raises(
        r"train-images-idx3-ubyte: bad IDX magic number \(expected 0x00000803, got 0x00000801\)"
    ):
        load_dataset("mnist", path=tmp_path)


@pytest.mark.parametrize(
    ("cut", "match"),
    [
        (2, r"truncated IDX file \(expected at least 4 bytes, got 2\)"),
        (10, r"truncated IDX header \(expected 16 bytes, got 10\)"),
        (100, r"truncated IDX file for dims \(5, 28, 28\) \(expected 3936 bytes, got 100\)"),
    ],
)
def test_mnist_truncated(tmp_path: Path, cut: int, match: str) -> None:
    fake_mnist(tmp_path)
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:cut])
    with raises(f"train-images-idx3-ubyte: {match}"):
        load_dataset("mnist", path=tmp_path)


def test_mnist_oversized_and_empty(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    images = tmp_path / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes() + b"\0")
    with raises(r"t10k-images-idx3-ubyte: oversized IDX file .*expected 2368 bytes, got 2369"):
        load_dataset("mnist", path=tmp_path)
    images.write_bytes(idx_bytes(0x803, np.zeros((0, 28, 28))))
    with raises("t10k-images-idx3-ubyte: IDX file holds no items"):
        load_dataset("mnist", path=tmp_path)


def test_mnist_label_count_mismatch(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(0x801, np.zeros(4)))
    with raises("train-labels-idx1-ubyte: 4 labels, but train-images-idx3-ubyte holds 5 images"):
        load_dataset("mnist", path=tmp_path)


def test_mnist_label_out_of_range(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(0x801, np.array([1, 10, 2])))
    with raises(r"t10k-labels-idx1-ubyte: label out of range 0..9 \(got 10 at index 1\)"):
        load_dataset("mnist", path=tmp_path)


def test_mnist_image_size_mismatch(tmp_path: Path) -> None:
    fake_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx_bytes(0x803, np.zeros((3, 14, 14))))
    with raises(r"t10k-images-idx3-ubyte: images are \(14, 14\), but the train images are"):
        load_dataset("mnist", path=tmp_path)


@pytest.mark.parametrize("damage", ["not gzip", "truncated", "bad crc"])
def test_mnist_corrupt_gzip(tmp_path: Path, damage: str) -> None:
    fake_mnist(tmp_path, gz=True)
    file = tmp_path / "train-labels-idx1-ubyte.gz"
    data = file.read_bytes()
    if damage == "not gzip":
        data = b"this is not gzip data"
    elif damage == "truncated":
        data = data[: len(data) // 2]
    else:
        data = data[:-8] + bytes(b ^ 0xFF for b in data[-8:-4]) + data[-4:]
    file.write_bytes(data)
    with raises("train-labels-idx1-ubyte.gz: corrupt gzip data"):
        load_dataset("mnist", path=tmp_path)


def test_cifar_missing_file(tmp_path: Path) -> None:
    directory = tmp_path / "cifar-10-batches-py"
    fake_cifar10(directory)
    (directory / "data_batch_4").unlink()
    with raises(
        f"{re.escape(str(directory))}: missing data_batch_4 for dataset cifar10 "
        r"\(looked for data_batch_1, .*, data_batch_5 here and in a cifar-10-batches-py subdir"
    ):
        load_dataset("cifar10", path=tmp_path)
    with raises(r"missing test for dataset cifar100 \(looked for test here and in a cifar-100-py"):
        fake_cifar100(tmp_path / "c100")
        (tmp_path / "c100" / "test").unlink()
        load_dataset("cifar100", path=tmp_path / "c100")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", r"truncated or corrupt pickle \(EOFError"),
        (b"garbage!", r"truncated or corrupt pickle \(UnpicklingError"),
        (None, r"truncated or corrupt pickle"),  # a valid pickle cut in half
        (pickle.dumps([1, 2]), r"expected a pickled dict, got list"),
        (pickle.dumps({b"labels": [1]}), r"pickle has no b'data' key \(found b'labels'\)"),
        (pickle.dumps({b"data": cifar_pixels(2, 0)}), r"pickle has no b'labels' key"),
        (
            pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}),
            r"data must be \[n, 3072\] \(got shape \(2, 100\)\)",
        ),
        (
            pickle.dumps({b"data": cifar_pixels(2, 0), b"labels": [0]}),
            r"1 labels, but 2 images",
        ),
        (
            pickle.dumps({b"data": cifar_pixels(2, 0), b"labels": [0, 10]}),
            r"label out of range 0..9 \(got 10 at index 1\)",
        ),
        (
            pickle.dumps({b"data": cifar_pixels(1, 0) * 1.5, b"labels": [0]}),
            r"data must hold bytes 0..255 \(got dtype float64\)",
        ),
        (
            pickle.dumps({b"data": cifar_pixels(1, 0), b"labels": ["cat"]}),
            r"labels must be a list of integers",
        ),
    ],
)
def test_cifar_bad_pickle(tmp_path: Path, content: bytes | None, match: str) -> None:
    fake_cifar10(tmp_path)
    file = tmp_path / "test_batch"
    if content is None:
        content = file.read_bytes()[:-100]
    file.write_bytes(content)
    with raises(f"{re.escape(str(file))}: {match}"):
        load_dataset("cifar10", path=tmp_path)


def test_cifar_pickle_refuses_foreign_globals(tmp_path: Path) -> None:
    fake_cifar100(tmp_path)
    write_pickle(tmp_path / "train", {b"data": Path("x"), b"fine_labels": [1]})
    with raises(r"train: refused: not a CIFAR batch: the pickle asks for the global pathlib\."):
        load_dataset("cifar100", path=tmp_path)


def test_dataset_rejects_inconsistent_arrays() -> None:
    x = np.zeros((3, 2), np.float32)
    y = np.zeros(3, np.int64)
    with raises(r"dataset t: train arrays must be float32/int64 \(got float64/int64\)"):
        Dataset("t", x.astype(np.float64), y, x, y, 2)
    with raises(r"dataset t: test images \(3, 2\) do not match labels \(2,\)"):
        Dataset("t", x, y, x, y[:2], 2)
    with raises(r"train sample shape \(2,\) differs from test sample shape \(3,\)"):
        Dataset("t", x, y, np.zeros((3, 3), np.float32), y, 2)
