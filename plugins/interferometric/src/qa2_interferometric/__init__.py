"""qa2 plugin for manual interferometric (12m/7m) QA2 reductions."""
