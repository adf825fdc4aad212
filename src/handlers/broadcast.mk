# SPDX-License-Identifier: MIT
# The broadcast handler (a job's recipients become jobs of another queue)
# and its unit test.
src_libnq_a_SOURCES += src/handlers/broadcast.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_handlers_broadcast
TESTS += tests/unit/test_handlers_broadcast
tests_unit_test_handlers_broadcast_SOURCES = tests/unit/test_handlers_broadcast.c
tests_unit_test_handlers_broadcast_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_handlers_broadcast_LDADD = $(UNIT_TEST_LIBS)
endif
EXTRA_DIST += tests/interop/broadcast.test.js
