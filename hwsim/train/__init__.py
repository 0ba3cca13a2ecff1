"""The numpy trainer: layers, learning rules (BP, DFA, SSDFA), feedback matrices, optimizers,
datasets, and the tracer that records what one training step did."""
