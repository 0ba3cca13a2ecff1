"""Defaults the command line shows in its help and the library uses (no imports: `hwsim
--help` must not load pandas or simpy)."""

DEFAULT_SPECS = ("von_neumann", "distributed")  # the two default hardware specs
# `hwsim run` adds the paper's weight-stationary substrate (docs/validation.md).
RUN_SPECS = (*DEFAULT_SPECS, "distributed_stationary")
DEFAULT_NETWORKS = ("digits_fc", "cifar100_conv", "alexnet")  # what `hwsim run` studies
