"""Fixed random feedback matrices for direct feedback alignment (DFA) and sparse DFA.

Every hidden layer l receives the error `δ_l = E · B_l`, where E is the [batch, C] output error and
B_l a fixed random [C, N_l] matrix (Crafton et al. 2019).  `make_feedback` builds B_l:

* dense:            B ~ U(±1/√N);
* dense, rank r:    a sum of r rank-one terms rescaled to the std of the dense construction;
* sparse, s:        each neuron (column) listens to s distinct classes, values U(±h) with
                    h = (C·s)^(1/4) / √N, and every class reaches some neuron when N·s ≥ C;
* sparse, s, rank r: r class sets of s classes (balanced coverage of all C classes), each neuron in
                    one set, rank one within a set; rescaled to the std of the sparse values.

`tile_feedback` repeats a [C, W] matrix at each of P positions (a token's or a pixel's W
neurons): a [C, P·W] matrix of the same kind, s non-zeros per neuron still, scaled to the std
of a [C, P·W] one's construction (a network's `training.feedback: stream`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwsim.errors import SpecError

# Above this many [N, C] elements, `_pick_classes` never materialises a whole [N, C] key array.
_KEY_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True, eq=False)
class DenseFeedback:
    """A dense [C, N] feedback matrix (full rank, or of the requested `rank`)."""

    matrix: np.ndarray
    rank: int | None = None

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2:
            raise ValueError(f"feedback matrix must be 2-D [C, N] (got shape {self.matrix.shape})")

    @property
    def classes(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def neurons(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.matrix))

    @property
    def nonzeros_per_neuron(self) -> None:
        return None

    def project(self, error: np.ndarray) -> np.ndarray:
        """[B, C] output error -> [B, N] hidden-layer error."""
        _check_error(error, self.classes)
        return error @ self.matrix

    def to_dense(self) -> np.ndarray:
        return self.matrix


@dataclass(frozen=True, eq=False)
class SparseFeedback:
    """A [C, N] feedback matrix stored per neuron: `indices[j]` are the s classes neuron j listens
    to (distinct), `values[j]` their non-zero weights."""

    indices: np.ndarray
    values: np.ndarray
    classes: int
    rank: int | None = None

    def __post_init__(self) -> None:
        if self.indices.ndim != 2 or self.indices.shape != self.values.shape:
            raise ValueError(
                "sparse feedback indices and values must both be [N, s] "
                f"(got {self.indices.shape} and {self.values.shape})"
            )

    @property
    def neurons(self) -> int:
        return int(self.indices.shape[0])

    @property
    def nonzeros_per_neuron(self) -> int:
        return int(self.indices.shape[1])

    @property
    def nonzeros(self) -> int:
        return self.neurons * self.nonzeros_per_neuron

    def project(self, error: np.ndarray) -> np.ndarray:
        """[B, C] output error -> [B, N] hidden-layer error, without a dense [C, N] intermediate."""
        _check_error(error, self.classes)
        dtype = np.result_type(error.dtype, self.values.dtype)
        out = np.zeros((error.shape[0], self.neurons), dtype=dtype)
        for slot in range(self.nonzeros_per_neuron):
            out += error[:, self.indices[:, slot]] * self.values[:, slot]
        return out

    def to_dense(self) -> np.ndarray:
        dense = np.zeros((self.classes, self.neurons), dtype=self.values.dtype)
        columns = np.broadcast_to(np.arange(self.neurons)[:, None], self.indices.shape)
        dense[self.indices, columns] = self.values
        return dense


def make_feedback(
    classes: int,
    neurons: int,
    *,
    rng: np.random.Generator,
    nonzeros_per_neuron: int | None = None,
    rank: int | None = None,
    dtype: type | np.dtype = np.float32,
) -> DenseFeedback | SparseFeedback:
    """The fixed random feedback matrix of one layer with `neurons` outputs for `classes` classes.

    `nonzeros_per_neuron=None` gives a dense matrix, otherwise a sparse one with exactly that many
    non-zeros per neuron; `rank` (None = full) makes it a sum of `rank` rank-one terms.
    """
    validate_feedback(classes, neurons, nonzeros_per_neuron, rank)
    out_dtype = np.dtype(dtype)
    if out_dtype.kind != "f":
        raise SpecError(f"feedback dtype must be a floating type (got {out_dtype})")
    if nonzeros_per_neuron is None:
        if rank is None:
            matrix = _uniform((classes, neurons), 1.0 / np.sqrt(neurons), rng, out_dtype)
        else:
            matrix = _dense_low_rank(classes, neurons, rank, rng).astype(out_dtype)
        return DenseFeedback(matrix=matrix, rank=rank)
    s = nonzeros_per_neuron
    bound = (classes * s) ** 0.25 / np.sqrt(neurons)
    if rank is None:
        indices = _pick_classes(neurons, classes, s, rng)
        indices = _cover_all_classes(indices, classes, rng)
        values = _nonzero_uniform((neurons, s), bound, rng, out_dtype)
    else:
        indices, values = _sparse_low_rank(classes, neurons, s, rank, rng)
        values = (values * (bound / np.sqrt(3.0) / _rms(values))).astype(out_dtype)
    return SparseFeedback(indices=indices, values=values, classes=classes, rank=rank)


def tile_feedback(
    base: DenseFeedback | SparseFeedback, positions: int
) -> DenseFeedback | SparseFeedback:
    """`base` ([C, W]) at each of `positions` positions, position-major (neuron p·W + w takes
    column w), times 1/√positions: every bound above is ∝ 1/√N, so the tiled matrix has the
    std that the same kind of matrix drawn for its P·W neurons has."""
    if not _is_int(positions) or positions < 1:
        raise SpecError(f"feedback positions must be a positive integer (got {positions!r})")
    scale = 1.0 / np.sqrt(positions)
    if isinstance(base, DenseFeedback):
        matrix = np.tile(base.matrix, (1, positions))
        return DenseFeedback(matrix=(matrix * scale).astype(matrix.dtype), rank=base.rank)
    values = np.tile(base.values, (positions, 1))
    return SparseFeedback(
        indices=np.tile(base.indices, (positions, 1)),
        values=(values * scale).astype(values.dtype),
        classes=base.classes,
        rank=base.rank,
    )


def validate_feedback(classes: int, neurons: int, s: int | None, rank: int | None) -> None:
    """Refuse feedback shapes no matrix can have (shape-only traces check them too)."""
    for name, value in (("classes", classes), ("neurons", neurons)):
        if not _is_int(value) or value < 1:
            raise SpecError(f"feedback {name} must be a positive integer (got {value!r})")
    if s is not None and (not _is_int(s) or not 1 <= s <= classes):
        raise SpecError(f"--nonzeros-per-neuron must be between 1 and C={classes} (got {s!r})")
    if rank is not None:
        most = min(classes, neurons)
        if not _is_int(rank) or not 1 <= rank <= most:
            raise SpecError(
                f"--rank must be between 1 and min(C={classes}, N={neurons})={most} (got {rank!r})"
            )
    if s is not None and rank is not None and s * rank < classes:
        raise SpecError(
            f"--nonzeros-per-neuron × --rank must be ≥ the {classes} classes "
            f"(got {s} × {rank} = {s * rank})"
        )


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _check_error(error: np.ndarray, classes: int) -> None:
    if error.ndim != 2 or error.shape[1] != classes:
        raise ValueError(f"output error must be [batch, {classes}] (got shape {error.shape})")


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(values, dtype=np.float64))))


def _uniform(
    shape: tuple[int, ...], bound: float, rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """U(±bound), drawn directly in float32 when asked (dense matrices can be large)."""
    native = dtype in (np.dtype(np.float32), np.dtype(np.float64))
    draw_dtype = dtype if native else np.dtype(np.float64)
    unit = rng.random(shape, dtype=draw_dtype)
    unit *= 2
    unit -= 1
    unit *= draw_dtype.type(bound)
    return unit.astype(dtype, copy=False)


def _nonzero_uniform(
    shape: tuple[int, ...], bound: float, rng: np.random.Generator, dtype: np.dtype
) -> np.ndarray:
    """U(±bound) in `dtype`, with any exact zero redrawn."""
    values = rng.uniform(-bound, bound, size=shape).astype(dtype)
    zeros = values == 0
    while zeros.any():
        values[zeros] = rng.uniform(-bound, bound, size=int(zeros.sum())).astype(dtype)
        zeros = values == 0
    return values


def _signed_magnitudes(size: int, rng: np.random.Generator) -> np.ndarray:
    """Random sign times U(0.5, 1): random factors kept away from zero so no class or neuron is
    starved of feedback and the requested rank is well conditioned."""
    return rng.choice(np.array([-1.0, 1.0]), size=size) * rng.uniform(0.5, 1.0, size=size)


def _dense_low_rank(classes: int, neurons: int, rank: int, rng: np.random.Generator) -> np.ndarray:
    """Σ_k σ_k u_k v_kᵀ with orthonormal random u, v and σ ~ U(1, 2): rank exactly `rank` and well
    conditioned; rescaled to the std 1/√(3N) of the full-rank U(±1/√N) construction."""
    left, _ = np.linalg.qr(rng.standard_normal((classes, rank)))
    right, _ = np.linalg.qr(rng.standard_normal((neurons, rank)))
    sigma = rng.uniform(1.0, 2.0, size=rank)
    matrix = (left * sigma) @ right.T
    return matrix * (1.0 / np.sqrt(3.0 * neurons) / _rms(matrix))


def _sparse_low_rank(
    classes: int, neurons: int, s: int, rank: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`rank` class sets of s classes and one set per neuron; within set k, B[:, j] = v_k · a_j.

    Set k takes s consecutive classes of a random cyclic order, starting at k·s: the sets cover all
    C classes (s·r ≥ C) and each class lies in ⌊s·r/C⌋ or ⌈s·r/C⌉ sets.  That coverage never
    exceeds s, so Hall's condition holds and the sets have distinct representative classes: the
    random [C, r] matrix of the v_k has rank r, and so has the whole matrix (the neuron groups are
    disjoint and non-empty since r ≤ N).  Values are returned unscaled, in float64.
    """
    order = rng.permutation(classes)
    positions = (np.arange(rank)[:, None] * s + np.arange(s)[None, :]) % classes
    set_classes = np.sort(order[positions], axis=1)  # [r, s]
    set_vectors = _signed_magnitudes(rank * s, rng).reshape(rank, s)
    membership = rng.permutation(np.arange(neurons) % rank)  # balanced, random
    scalars = _signed_magnitudes(neurons, rng)
    return set_classes[membership].astype(np.int64), set_vectors[membership] * scalars[:, None]


def _pick_classes(neurons: int, classes: int, s: int, rng: np.random.Generator) -> np.ndarray:
    """[N, s] int64, each row s distinct classes drawn uniformly, rows sorted.

    Vectorised Floyd sampling (O(N·s²), no [N, C] array) when s² ≤ C, otherwise the s smallest
    of C random keys per row, computed in row chunks so memory stays bounded for any N·C.
    """
    if s * s <= classes:
        picked = np.empty((neurons, s), dtype=np.int64)
        for slot, top in enumerate(range(classes - s, classes)):
            draw = rng.integers(0, top + 1, size=neurons)
            taken = (picked[:, :slot] == draw[:, None]).any(axis=1)
            picked[:, slot] = np.where(taken, top, draw)
    else:
        rows = max(1, _KEY_CHUNK_ELEMENTS // classes)
        parts = []
        for start in range(0, neurons, rows):
            keys = rng.random((min(rows, neurons - start), classes), dtype=np.float32)
            parts.append(np.argpartition(keys, s - 1, axis=1)[:, :s])
        picked = np.concatenate(parts).astype(np.int64)
    picked.sort(axis=1)
    return picked


def _cover_all_classes(indices: np.ndarray, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Make every class reach some neuron (when N·s ≥ C): each missing class, in random order,
    takes a random slot of the currently most-used class.  The missing class is in no row yet, so
    rows stay distinct, and the donor keeps ≥ 1 slot (pigeonhole: it has ≥ 2)."""
    flat = indices.ravel().copy()
    counts = np.bincount(flat, minlength=classes)
    missing = np.flatnonzero(counts == 0)
    if missing.size == 0 or flat.size < classes:
        return indices
    shuffled = rng.permutation(flat.size)
    by_class = shuffled[np.argsort(flat[shuffled], kind="stable")]  # slots grouped, random within
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    for newcomer in rng.permutation(missing):
        donor = int(np.argmax(counts))
        counts[donor] -= 1
        flat[by_class[starts[donor] + counts[donor]]] = newcomer
        counts[newcomer] = 1
    repaired = flat.reshape(indices.shape)
    repaired.sort(axis=1)
    return repaired
