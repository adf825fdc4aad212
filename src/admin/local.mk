# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/admin/admin.h src/admin/internal.h \
	src/admin/http.c src/admin/server.c src/admin/routes.c src/admin/metrics.c

# The API's description, checked against the routes by
# tests/integration/test_admin_openapi.py.
dist_pkgdata_DATA = doc/openapi.yaml
