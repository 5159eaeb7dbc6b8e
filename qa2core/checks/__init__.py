"""Delivery checks: verify, the content rules that tell a rehearsal from a delivery, and the
tgz member checks.
"""
