"""qa2 plugin: Total Power (single-dish) manual reductions."""
