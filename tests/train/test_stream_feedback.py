"""`training.feedback: stream`: one [C, width] B per tap width, tiled over each tap's positions
and shared by the taps of that width (a residual stream's), and the output layer at zero.

Under `tap` (every shipped network but digits_transformer) each tap draws its own [C, N] B, as
before; under `stream` the trace header still lists one [C, N] B per tap, s non-zeros a neuron."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hwsim.io.networks import load_network
from hwsim.specs.network import FeedbackSharing
from hwsim.specs.trace import Algorithm
from hwsim.train.feedback import DenseFeedback, SparseFeedback, make_feedback, tile_feedback
from hwsim.train.loop import TrainConfig, Trainer

LOCAL_RULES = [Algorithm.DFA, Algorithm.SSDFA]


@settings(max_examples=30, deadline=None)
@given(
    classes=st.integers(2, 12),
    width=st.integers(1, 40),
    positions=st.integers(1, 9),
    sparse=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_tiled_feedback_repeats_its_base_at_each_position(
    classes: int, width: int, positions: int, sparse: bool, seed: int
) -> None:
    s = min(2, classes) if sparse else None
    base = make_feedback(classes, width, rng=np.random.default_rng(seed), nonzeros_per_neuron=s)
    tiled = tile_feedback(base, positions)
    assert type(tiled) is type(base)
    assert tiled.neurons == positions * width and tiled.nonzeros_per_neuron == s
    dense = tiled.to_dense().reshape(classes, positions, width)
    # Every position takes the same columns, scaled by 1/√P (the std of a [C, P·W] draw).
    expected = base.to_dense() / np.sqrt(positions)
    np.testing.assert_allclose(dense, np.broadcast_to(expected[:, None], dense.shape), rtol=1e-6)


def _trainer(algorithm: Algorithm, feedback: FeedbackSharing) -> Trainer:
    network = load_network("digits_transformer")
    config = TrainConfig.from_network(network, algorithm, feedback=feedback)
    return Trainer(network, config)


def test_digits_transformer_asks_for_one_feedback_per_stream() -> None:
    assert load_network("digits_transformer").training.feedback == FeedbackSharing.STREAM
    assert load_network("digits_resnet").training.feedback == FeedbackSharing.TAP


@pytest.mark.parametrize("algorithm", LOCAL_RULES)
def test_stream_taps_share_one_b_over_positions_and_taps(algorithm: Algorithm) -> None:
    trainer = _trainer(algorithm, FeedbackSharing.STREAM)
    width = 32
    columns = []
    for matrix in trainer.rule.feedback.values():
        assert isinstance(matrix, DenseFeedback | SparseFeedback)
        dense = matrix.to_dense()
        positions = matrix.neurons // width
        per_position = dense.reshape(dense.shape[0], positions, width) * np.sqrt(positions)
        for position in range(positions):  # the same error at every token
            np.testing.assert_allclose(per_position[:, position], per_position[:, 0], rtol=1e-6)
        columns.append(per_position[:, 0])
        if algorithm == Algorithm.SSDFA:
            assert isinstance(matrix, SparseFeedback) and matrix.nonzeros_per_neuron == 1
    assert len(columns) == 4  # embed, block1, block2 and the final norm's tap, [8·32] or [32]
    for other in columns[1:]:  # one B for the whole stream
        np.testing.assert_allclose(other, columns[0], rtol=1e-6)
    assert not trainer.model.output_layer.params["weight"].any()


@pytest.mark.parametrize("algorithm", LOCAL_RULES)
def test_per_tap_feedback_draws_its_own_b_and_keeps_glorot(algorithm: Algorithm) -> None:
    trainer = _trainer(algorithm, FeedbackSharing.TAP)
    matrices = [matrix.to_dense() for matrix in trainer.rule.feedback.values()]
    same_size = [m for m in matrices if m.shape[1] == 256]
    assert len(same_size) == 3
    assert not np.allclose(same_size[0], same_size[1])
    assert trainer.model.output_layer.params["weight"].any()


@pytest.mark.parametrize("algorithm", LOCAL_RULES)
def test_stream_feedback_keeps_the_trace_header(algorithm: Algorithm) -> None:
    """The header's feedback list (C, N, non-zeros, s per tap) is the same either way."""
    headers = [
        _trainer(algorithm, feedback).trace_header(32, "digits", 0).feedback
        for feedback in FeedbackSharing
    ]
    assert headers[0] == headers[1]
