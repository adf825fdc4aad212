# SPDX-License-Identifier: MIT
# The exec handler (a command per job) and its unit test.
src_libnq_a_SOURCES += src/handlers/exec.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_handlers_exec
TESTS += tests/unit/test_handlers_exec
tests_unit_test_handlers_exec_SOURCES = tests/unit/test_handlers_exec.c
tests_unit_test_handlers_exec_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_handlers_exec_LDADD = $(UNIT_TEST_LIBS)
endif
