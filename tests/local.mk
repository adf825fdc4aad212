# SPDX-License-Identifier: MIT
EXTRA_DIST += tests/integration tests/interop/package.json tests/interop/package-lock.json
