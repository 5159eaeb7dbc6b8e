"""qa2-arc-compose: an ARC's site additions to any package, by composition."""

__version__ = "0.1.0"
