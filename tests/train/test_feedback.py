"""Properties of the fixed random DFA / sparse DFA feedback matrices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.errors import SpecError
from hwsim.train.feedback import DenseFeedback, SparseFeedback, _pick_classes, make_feedback

SETTINGS = settings(max_examples=50, deadline=None)
SEEDS = st.integers(0, 2**32 - 1)
RTOL = 1e-5


@st.composite
def sparse_cases(draw: st.DrawFn) -> tuple[int, int, int, int]:
    classes = draw(st.integers(2, 20))
    neurons = draw(st.integers(1, 200))
    s = draw(st.integers(1, classes))
    return classes, neurons, s, draw(SEEDS)


@st.composite
def sparse_rank_cases(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    classes = draw(st.integers(2, 20))
    neurons = draw(st.integers(1, 200))
    rank = draw(st.integers(1, min(classes, neurons)))
    s = draw(st.integers(-(-classes // rank), classes))  # s·r ≥ C
    return classes, neurons, s, rank, draw(SEEDS)


@st.composite
def dense_rank_cases(draw: st.DrawFn) -> tuple[int, int, int, int]:
    classes = draw(st.integers(2, 20))
    neurons = draw(st.integers(1, 200))
    return classes, neurons, draw(st.integers(1, min(classes, neurons))), draw(SEEDS)


def _error(feedback: DenseFeedback | SparseFeedback, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((5, feedback.classes)).astype(np.float32)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64))))


def _check_sparse_structure(feedback: SparseFeedback, classes: int, neurons: int, s: int) -> None:
    assert feedback.indices.dtype == np.int64
    assert feedback.indices.shape == feedback.values.shape == (neurons, s)
    assert (feedback.neurons, feedback.nonzeros_per_neuron) == (neurons, s)
    assert feedback.nonzeros == neurons * s
    assert np.all(feedback.values != 0)
    assert np.all((feedback.indices >= 0) & (feedback.indices < classes))
    ordered = np.sort(feedback.indices, axis=1)
    assert np.all(ordered[:, 1:] != ordered[:, :-1]), "a neuron lists a class twice"
    dense = feedback.to_dense()
    assert dense.shape == (classes, neurons)
    assert np.all(np.count_nonzero(dense, axis=0) == s)
    if neurons * s >= classes:
        assert np.all(np.any(dense != 0, axis=1)), "some class reaches no neuron"


@SETTINGS
@given(sparse_cases())
def test_sparse_structure_scale_and_projection(case: tuple[int, int, int, int]) -> None:
    classes, neurons, s, seed = case
    feedback = make_feedback(
        classes, neurons, rng=np.random.default_rng(seed), nonzeros_per_neuron=s
    )
    assert isinstance(feedback, SparseFeedback)
    assert feedback.rank is None and feedback.values.dtype == np.float32
    _check_sparse_structure(feedback, classes, neurons, s)
    bound = (classes * s) ** 0.25 / np.sqrt(neurons)
    assert np.all(np.abs(feedback.values) <= bound * (1 + RTOL))
    error = _error(feedback, seed)
    np.testing.assert_allclose(feedback.project(error), error @ feedback.to_dense(), atol=1e-5)


@SETTINGS
@given(sparse_rank_cases())
def test_sparse_low_rank_has_requested_rank(case: tuple[int, int, int, int, int]) -> None:
    classes, neurons, s, rank, seed = case
    feedback = make_feedback(
        classes, neurons, rng=np.random.default_rng(seed), nonzeros_per_neuron=s, rank=rank
    )
    assert isinstance(feedback, SparseFeedback) and feedback.rank == rank
    _check_sparse_structure(feedback, classes, neurons, s)
    dense = feedback.to_dense()
    assert np.linalg.matrix_rank(dense) == rank
    assert np.all(np.any(dense != 0, axis=1)), "the class sets must cover every class"
    bound = (classes * s) ** 0.25 / np.sqrt(neurons)
    assert _rms(feedback.values) == pytest.approx(bound / np.sqrt(3), rel=1e-4)
    error = _error(feedback, seed)
    np.testing.assert_allclose(feedback.project(error), error @ dense, atol=1e-5)


@SETTINGS
@given(st.integers(1, 20), st.integers(1, 200), SEEDS)
def test_dense_scale_and_projection(classes: int, neurons: int, seed: int) -> None:
    feedback = make_feedback(classes, neurons, rng=np.random.default_rng(seed))
    assert isinstance(feedback, DenseFeedback)
    assert (feedback.classes, feedback.neurons) == (classes, neurons)
    assert feedback.rank is None and feedback.nonzeros_per_neuron is None
    assert feedback.matrix.dtype == np.float32
    assert feedback.nonzeros == np.count_nonzero(feedback.matrix)
    assert np.all(np.abs(feedback.matrix) <= (1 + RTOL) / np.sqrt(neurons))
    error = _error(feedback, seed)
    np.testing.assert_allclose(feedback.project(error), error @ feedback.to_dense(), atol=1e-6)


@SETTINGS
@given(dense_rank_cases())
def test_dense_low_rank_has_requested_rank(case: tuple[int, int, int, int]) -> None:
    classes, neurons, rank, seed = case
    feedback = make_feedback(classes, neurons, rng=np.random.default_rng(seed), rank=rank)
    assert isinstance(feedback, DenseFeedback) and feedback.rank == rank
    assert feedback.matrix.shape == (classes, neurons)
    assert np.linalg.matrix_rank(feedback.to_dense()) == rank
    assert _rms(feedback.matrix) == pytest.approx(1 / np.sqrt(3 * neurons), rel=1e-4)


@SETTINGS
@given(sparse_rank_cases(), st.sampled_from(["dense", "dense-rank", "sparse", "sparse-rank"]))
def test_same_seed_same_matrix(case: tuple[int, int, int, int, int], kind: str) -> None:
    classes, neurons, s, rank, seed = case
    kwargs = {
        "dense": {},
        "dense-rank": {"rank": rank},
        "sparse": {"nonzeros_per_neuron": s},
        "sparse-rank": {"nonzeros_per_neuron": s, "rank": rank},
    }[kind]
    first = make_feedback(classes, neurons, rng=np.random.default_rng(seed), **kwargs)
    second = make_feedback(classes, neurons, rng=np.random.default_rng(seed), **kwargs)
    assert type(first) is type(second)
    np.testing.assert_array_equal(first.to_dense(), second.to_dense())
    if isinstance(first, SparseFeedback):
        np.testing.assert_array_equal(first.indices, second.indices)


def test_float64_requested() -> None:
    rng = np.random.default_rng(0)
    assert make_feedback(4, 8, rng=rng, dtype=np.float64).matrix.dtype == np.float64
    sparse = make_feedback(4, 8, rng=rng, nonzeros_per_neuron=2, dtype=np.float64)
    assert sparse.values.dtype == np.float64


@pytest.mark.parametrize("s", [2, 3])  # 2² ≤ 5: Floyd sampler; 3² > 5: random-key sampler
def test_class_subsets_are_uniform(s: int) -> None:
    classes, neurons = 5, 20_000
    picked = _pick_classes(neurons, classes, s, np.random.default_rng(7))
    subsets = list(itertools.combinations(range(classes), s))
    counts = np.array([np.all(picked == np.array(sub), axis=1).sum() for sub in subsets])
    assert counts.sum() == neurons  # rows come back sorted
    expected = neurons / len(subsets)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))


def test_large_layer_is_fast_and_covers_every_class() -> None:
    # 1000 classes, 25 000 neurons, 1 class each: about 1000/e classes miss out before the repair.
    feedback = make_feedback(1000, 25_000, rng=np.random.default_rng(3), nonzeros_per_neuron=1)
    assert np.bincount(feedback.indices.ravel(), minlength=1000).min() >= 1
    tight = make_feedback(1000, 500, rng=np.random.default_rng(3), nonzeros_per_neuron=2)
    assert np.all(np.bincount(tight.indices.ravel(), minlength=1000) == 1)
    assert make_feedback(1000, 25_000, rng=np.random.default_rng(3), nonzeros_per_neuron=10)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nonzeros_per_neuron": 11}, "--nonzeros-per-neuron must be between 1 and C=10 (got 11)"),
        ({"nonzeros_per_neuron": 0}, "--nonzeros-per-neuron must be between 1 and C=10 (got 0)"),
        ({"rank": 0}, "--rank must be between 1 and min(C=10, N=50)=10 (got 0)"),
        ({"rank": 11}, "--rank must be between 1 and min(C=10, N=50)=10 (got 11)"),
        (
            {"nonzeros_per_neuron": 2, "rank": 3},
            "--nonzeros-per-neuron × --rank must be ≥ the 10 classes (got 2 × 3 = 6)",
        ),
    ],
)
def test_bad_flags_raise_spec_error(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        make_feedback(10, 50, rng=np.random.default_rng(0), **kwargs)
    assert str(caught.value) == message


def test_rank_above_neurons_is_rejected() -> None:
    with pytest.raises(SpecError, match=r"min\(C=10, N=3\)=3 \(got 4\)"):
        make_feedback(10, 3, rng=np.random.default_rng(0), nonzeros_per_neuron=5, rank=4)


@pytest.mark.parametrize(("classes", "neurons"), [(0, 5), (5, 0), (2.5, 5)])
def test_bad_sizes_raise_spec_error(classes: float, neurons: int) -> None:
    with pytest.raises(SpecError, match="must be a positive integer"):
        make_feedback(classes, neurons, rng=np.random.default_rng(0))  # type: ignore[arg-type]
