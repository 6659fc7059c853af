"""Training utilities: learning rates, optimizers, losses, hooks, checkpoints, Horovod glue."""
