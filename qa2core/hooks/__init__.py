"""The plugin interface and its host: hook specifications, the model hooks exchange, the
plugin manager, composition and the load-time checks.
"""
