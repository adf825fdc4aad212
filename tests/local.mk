# SPDX-License-Identifier: MIT
EXTRA_DIST += tests/integration tests/fault tests/interop/package.json tests/interop/package-lock.json

# Byte-code caches left by a local pytest run do not belong in the tarball.
dist-hook:
	find $(distdir)/tests -name __pycache__ -type d -prune -exec rm -rf {} +

TESTS += tests/check-layers.sh
EXTRA_DIST += tests/check-layers.sh
