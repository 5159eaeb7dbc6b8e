"""qa2-arc-example: an ARC site plugin that extends the interferometric plugin by delegation."""

__version__ = "0.1.0"
