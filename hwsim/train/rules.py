"""Learning rules as strategies over one training loop: each fills `layer.grads`.

- BP:    δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f'(h_l)
- DFA:   δ_l = (E B_l) ⊙ f'(h_l), B_l a fixed dense random [C × N_l] matrix
- SSDFA: the same with B_l sparse: neuron j receives s errors (s = 1: one error, one weight)

A network's `training.feedback: stream` draws one [C, width] B per tap width instead, tiled over
each tap's positions and shared by the taps of that width (a residual stream's: see
docs/network-format.md); the ops and the trace stay those of a [C, N] B per tap.

Under DFA/SSDFA the error is injected at the end of the layer's block (after its pooling and
dropout) and flows back through them to the layer; it never crosses a weight layer.

What a rule does in a backward pass is a schedule (`backward_schedule`): which layers run
backward, in order, whether each passes an error to its input, and where a feedback projection
injects one.  The live rules run it; a shape-only trace describes it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from hwsim.specs.trace import Algorithm, GatherOp, MatmulOp, Phase, Role, Slot
from hwsim.train.feedback import DenseFeedback, SparseFeedback, make_feedback, tile_feedback
from hwsim.train.layers import StepContext
from hwsim.train.model import ErrorSum, FeedbackTarget, Model
from hwsim.train.ops import OpDesc, OperandDesc, op


@dataclass(frozen=True)
class Backward:
    """Layer `layer_index` runs backward on the error in hand (`input_error`: and passes one
    to its input, which the next step takes)."""

    layer_index: int
    input_error: bool


@dataclass(frozen=True)
class SumErrors:
    """The errors a fanned-out tensor's readers sent back, summed (BP on a graph)."""

    error_sum: ErrorSum


@dataclass(frozen=True)
class Inject:
    """The output error projected by a feedback matrix to the end of `target`'s block."""

    target: FeedbackTarget


Step = Backward | SumErrors | Inject


def backward_schedule(model: Model, algorithm: Algorithm) -> list[Step]:
    """BP: the layers from the output down, each that trains or has a trained layer below it
    (in a chain: down to the lowest trained one), with the sums where a tensor fans out.
    DFA and SSDFA: the output layer, then each block from the error injected at its last
    layer down, by BP over the block's own layers (in a chain: down to its weight layer)."""
    model.wire_errors(local=algorithm != Algorithm.BP)
    steps = model.schedules.get(algorithm.value)
    if steps is None:  # planned once per model and rule, not every training step
        steps = model.schedules[algorithm.value] = _schedule(model, algorithm)
    return steps


def _schedule(model: Model, algorithm: Algorithm) -> list[Step]:
    if algorithm == Algorithm.BP:
        return _backprop(model, range(len(model.layers) - 1, -1, -1))
    steps: list[Step] = [Backward(len(model.layers) - 1, False)]
    for target in model.feedback_targets():
        steps.append(Inject(target))
        steps.extend(_backprop(model, reversed(target.members)))
    return steps


def _backprop(model: Model, indices: Iterable[int]) -> list[Step]:
    """The backward steps of the layers at `indices` (from the top down) that train or send
    an error on, each fanned-out error summed before the layer that made its tensor."""
    sums = {error_sum.error: error_sum for error_sum in model.error_sums.values()}
    steps: list[Step] = []
    for index in indices:
        layer = model.layers[index]
        input_error = any(layer.sends_error)
        if not (input_error or layer.trains):
            continue
        if layer.output_error_tensor in sums:
            steps.append(SumErrors(sums.pop(layer.output_error_tensor)))
        steps.append(Backward(index, input_error))
    return steps


def feedback_op(
    model: Model, target: FeedbackTarget, batch: int, nonzeros_per_neuron: int | None
) -> OpDesc:
    """δ = E · B at the end of `target`'s block: a GEMM for a dense B, a gather of s errors a
    neuron for a sparse one (SSDFA: `nonzeros_per_neuron` = s)."""
    classes, neurons = model.network.classes, target.neurons
    layer = model.layers[target.layer_index].name
    error = model.output_layer.output_error_operand(batch)
    end = model.layers[target.block_end]
    delta = OperandDesc(end.output_error_tensor, Role.ERROR, batch * neurons)
    if nonzeros_per_neuron is not None:
        gather = GatherOp(
            kind="gather",
            rows=batch,
            classes=classes,
            neurons=neurons,
            nonzeros_per_neuron=nonzeros_per_neuron,
        )
        feedback = OperandDesc(f"{layer}.feedback", Role.FEEDBACK, neurons * nonzeros_per_neuron)
        return op(layer, Phase.ERROR, gather, [error, feedback], [delta])
    gemm = MatmulOp(kind="matmul", m=batch, k=classes, n=neurons)
    feedback = OperandDesc(f"{layer}.feedback", Role.FEEDBACK, classes * neurons, Slot.B)
    return op(layer, Phase.ERROR, gemm, [error.as_slot(Slot.A), feedback], [delta.as_slot(Slot.C)])


class Rule:
    """Runs the backward schedule; BP's needs nothing more."""

    algorithm = Algorithm.BP

    def backward(self, model: Model, error: np.ndarray, ctx: StepContext) -> None:
        schedule = backward_schedule(model, self.algorithm)
        errors = _Errors(model, schedule)
        errors.put(model.output_layer.output_error_tensor, error)
        for step in schedule:
            if isinstance(step, Inject):
                delta = self._inject(model, step.target, error, ctx)
                errors.put(model.layers[step.target.block_end].output_error_tensor, delta)
            elif isinstance(step, SumErrors):
                parts = [errors.take(name) for name in step.error_sum.parts]
                errors.put(step.error_sum.error, _sum_errors(model, step.error_sum, parts, ctx))
            else:
                layer = model.layers[step.layer_index]
                dy = errors.take(layer.output_error_tensor)
                dxs = layer.backward_many(dy, ctx, step.input_error)
                for name, dx, sends in zip(
                    layer.input_error_tensors, dxs, layer.sends_error, strict=True
                ):
                    if step.input_error and sends:
                        if dx is None:
                            raise RuntimeError(f"layer '{layer.name}' gave no input error")
                        errors.put(name, dx)

    def _inject(
        self, model: Model, target: FeedbackTarget, error: np.ndarray, ctx: StepContext
    ) -> np.ndarray:
        raise NotImplementedError(f"{self.algorithm.value} injects no error")


class _Errors:
    """The error arrays of a backward pass by tensor name, each let go after its last read
    (an add hands one error to several layers, so a name can be read more than once)."""

    def __init__(self, model: Model, schedule: list[Step]) -> None:
        self._arrays: dict[str, np.ndarray] = {}
        self._reads: Counter[str] = Counter()
        for step in schedule:
            if isinstance(step, SumErrors):
                self._reads.update(step.error_sum.parts)
            elif isinstance(step, Backward):
                self._reads[model.layers[step.layer_index].output_error_tensor] += 1

    def put(self, name: str, array: np.ndarray) -> None:
        self._arrays[name] = array

    def take(self, name: str) -> np.ndarray:
        self._reads[name] -= 1
        return self._arrays[name] if self._reads[name] > 0 else self._arrays.pop(name)


def _sum_errors(
    model: Model, error_sum: ErrorSum, parts: list[np.ndarray], ctx: StepContext
) -> np.ndarray:
    shape = (parts[0].shape[0], *error_sum.shape)
    total = parts[0].reshape(shape).copy()
    for array in parts[1:]:
        total += array.reshape(shape)
    if ctx.tracer is not None:
        desc = model.error_sum_op(error_sum, shape[0])
        ctx.tracer.record_run(desc, parts, [total])
    return total


class Backprop(Rule):
    algorithm = Algorithm.BP


class FeedbackAlignment(Rule):
    """Shared by DFA and SSDFA: the output layer learns from E; hidden blocks from project(E)."""

    algorithm = Algorithm.DFA

    def __init__(
        self,
        model: Model,
        rng: np.random.Generator,
        nonzeros_per_neuron: int | None = None,
        rank: int | None = None,
        stream: bool = False,
    ) -> None:
        """`stream`: one [C, width] B per tap width, drawn in the order of the taps, tiled over
        each tap's positions (`tile_feedback`); otherwise each tap draws its own [C, N] B."""
        classes = model.network.classes
        self.targets: list[FeedbackTarget] = model.feedback_targets()
        bases: dict[int, DenseFeedback | SparseFeedback] = {}
        self.feedback: dict[str, DenseFeedback | SparseFeedback] = {}
        for target in self.targets:
            width = model.shapes[target.block_end].output_shape[-1] if stream else target.neurons
            if not stream or width not in bases:  # per tap: each tap draws its own
                bases[width] = make_feedback(
                    classes,
                    width,
                    rng=rng,
                    nonzeros_per_neuron=nonzeros_per_neuron,
                    rank=rank,
                    dtype=model.dtype,
                )
            name = model.layers[target.layer_index].name
            self.feedback[name] = (
                tile_feedback(bases[width], target.neurons // width) if stream else bases[width]
            )

    def _inject(
        self, model: Model, target: FeedbackTarget, error: np.ndarray, ctx: StepContext
    ) -> np.ndarray:
        feedback = self.feedback[model.layers[target.layer_index].name]
        delta = feedback.project(error)
        if ctx.tracer is not None:
            s = feedback.nonzeros_per_neuron if isinstance(feedback, SparseFeedback) else None
            stored = feedback.values if isinstance(feedback, SparseFeedback) else feedback.matrix
            desc = feedback_op(model, target, error.shape[0], s)
            ctx.tracer.record_run(desc, [error, stored], [delta])
        return delta.reshape(error.shape[0], *model.shapes[target.block_end].output_shape)


class DirectFeedbackAlignment(FeedbackAlignment):
    algorithm = Algorithm.DFA

    def __init__(
        self,
        model: Model,
        rng: np.random.Generator,
        rank: int | None = None,
        stream: bool = False,
    ) -> None:
        super().__init__(model, rng, nonzeros_per_neuron=None, rank=rank, stream=stream)


class SparseDirectFeedbackAlignment(FeedbackAlignment):
    algorithm = Algorithm.SSDFA

    def __init__(
        self,
        model: Model,
        rng: np.random.Generator,
        nonzeros_per_neuron: int = 1,
        rank: int | None = None,
        stream: bool = False,
    ) -> None:
        super().__init__(model, rng, nonzeros_per_neuron, rank, stream)


def make_rule(
    algorithm: Algorithm,
    model: Model,
    rng: np.random.Generator,
    nonzeros_per_neuron: int = 1,
    rank: int | None = None,
    stream: bool = False,
) -> Rule:
    """`stream`: the taps of one width share one B, tiled over their positions."""
    if algorithm == Algorithm.BP:
        return Backprop()
    if algorithm == Algorithm.DFA:
        return DirectFeedbackAlignment(model, rng, rank=rank, stream=stream)
    return SparseDirectFeedbackAlignment(model, rng, nonzeros_per_neuron, rank, stream)
