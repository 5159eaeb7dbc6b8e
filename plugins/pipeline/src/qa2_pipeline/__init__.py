"""qa2 plugin: pipeline runs (qa2 stage) and staged pipeline packages."""
