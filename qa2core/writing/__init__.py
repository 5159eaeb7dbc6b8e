"""Everything that writes: executing a plan (fake, ticket, copy, hard), file operations,
the build-and-swap under the lock, journal, manifest, README, ticket zip, tar and CASA export.
"""
