"""Learning rules as strategies over one training loop: each fills `layer.grads`.

- BP:    δ_l = (δ_{l+1} W_{l+1}ᵀ) ⊙ f'(h_l)
- DFA:   δ_l = (E B_l) ⊙ f'(h_l), B_l a fixed dense random [C × N_l] matrix
- SSDFA: the same with B_l sparse: neuron j receives s errors (s = 1: one error, one weight)

Under DFA/SSDFA the error is injected at the end of the layer's block (after its pooling and
dropout) and flows back through them to the layer; it never crosses a weight layer.
"""

from __future__ import annotations

import numpy as np

from hwsim.specs.trace import Algorithm, GatherOp, MatmulOp, Phase, Role, Slot
from hwsim.train.feedback import DenseFeedback, SparseFeedback, make_feedback
from hwsim.train.layers import StepContext
from hwsim.train.model import FeedbackTarget, Model
from hwsim.train.tracer import Access


def _backward_to(model: Model, top: int, bottom: int, delta: np.ndarray, ctx: StepContext) -> None:
    """Run layers `top` down to `bottom` backward, each passing its input error to the one below;
    the bottom one, a weight layer, is not asked for its input error."""
    for index in range(top, bottom, -1):
        layer = model.layers[index]
        below = layer.backward(delta, ctx, input_error=True)
        if below is None:
            raise RuntimeError(f"layer '{layer.name}' gave no input error")
        delta = below
    model.layers[bottom].backward(delta, ctx, input_error=False)


class Backprop:
    algorithm = Algorithm.BP

    def backward(self, model: Model, error: np.ndarray, ctx: StepContext) -> None:
        trainable = [
            i for i, layer in enumerate(model.layers) if layer.has_weights and layer.trainable
        ]
        _backward_to(model, len(model.layers) - 1, min(trainable), error, ctx)


class FeedbackAlignment:
    """Shared by DFA and SSDFA: the output layer learns from E; hidden blocks from project(E)."""

    algorithm = Algorithm.DFA

    def __init__(
        self,
        model: Model,
        rng: np.random.Generator,
        nonzeros_per_neuron: int | None = None,
        rank: int | None = None,
    ) -> None:
        classes = model.network.classes
        self.targets: list[FeedbackTarget] = model.feedback_targets()
        self.feedback: dict[str, DenseFeedback | SparseFeedback] = {
            model.layers[target.layer_index].name: make_feedback(
                classes,
                target.neurons,
                rng=rng,
                nonzeros_per_neuron=nonzeros_per_neuron,
                rank=rank,
                dtype=model.dtype,
            )
            for target in self.targets
        }

    def backward(self, model: Model, error: np.ndarray, ctx: StepContext) -> None:
        model.output_layer.backward(error, ctx, input_error=False)
        error_access = Access(model.output_layer.output_error_tensor, Role.ERROR, error)
        for target in self.targets:
            layer = model.layers[target.layer_index]
            end = model.layers[target.block_end]
            feedback = self.feedback[layer.name]
            delta = feedback.project(error)
            self._record(
                ctx,
                layer.name,
                feedback,
                error_access,
                Access(end.output_error_tensor, Role.ERROR, delta),
            )
            delta = delta.reshape(error.shape[0], *model.shapes[target.block_end].output_shape)
            _backward_to(model, target.block_end, target.layer_index, delta, ctx)

    def _record(
        self,
        ctx: StepContext,
        layer: str,
        feedback: DenseFeedback | SparseFeedback,
        error: Access,
        delta: Access,
    ) -> None:
        if ctx.tracer is None:
            return
        batch, classes = error.array.shape
        op: GatherOp | MatmulOp
        if isinstance(feedback, SparseFeedback):
            op = GatherOp(
                kind="gather",
                rows=batch,
                classes=classes,
                neurons=feedback.neurons,
                nonzeros_per_neuron=feedback.nonzeros_per_neuron,
            )
            reads = [error, Access(f"{layer}.feedback", Role.FEEDBACK, feedback.values)]
            writes = [delta]
        else:  # e · B: a GEMM
            op = MatmulOp(kind="matmul", m=batch, k=classes, n=feedback.neurons)
            reads = [
                error.as_slot(Slot.A),
                Access(f"{layer}.feedback", Role.FEEDBACK, feedback.matrix, Slot.B),
            ]
            writes = [delta.as_slot(Slot.C)]
        ctx.tracer.record(layer=layer, phase=Phase.ERROR, op=op, reads=reads, writes=writes)


class DirectFeedbackAlignment(FeedbackAlignment):
    algorithm = Algorithm.DFA

    def __init__(self, model: Model, rng: np.random.Generator, rank: int | None = None) -> None:
        super().__init__(model, rng, nonzeros_per_neuron=None, rank=rank)


class SparseDirectFeedbackAlignment(FeedbackAlignment):
    algorithm = Algorithm.SSDFA

    def __init__(
        self,
        model: Model,
        rng: np.random.Generator,
        nonzeros_per_neuron: int = 1,
        rank: int | None = None,
    ) -> None:
        super().__init__(model, rng, nonzeros_per_neuron=nonzeros_per_neuron, rank=rank)


Rule = Backprop | DirectFeedbackAlignment | SparseDirectFeedbackAlignment


def make_rule(
    algorithm: Algorithm,
    model: Model,
    rng: np.random.Generator,
    nonzeros_per_neuron: int = 1,
    rank: int | None = None,
) -> Rule:
    if algorithm == Algorithm.BP:
        return Backprop()
    if algorithm == Algorithm.DFA:
        return DirectFeedbackAlignment(model, rng, rank=rank)
    return SparseDirectFeedbackAlignment(model, rng, nonzeros_per_neuron, rank=rank)
