"""Training: the loop, checkpoints, metrics, and one fd-train job end to end."""
