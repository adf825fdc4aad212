# SPDX-License-Identifier: MIT
# The transport: libcurl multi on the worker's libevent loop.
src_libnq_a_SOURCES += src/transfer/transfer.h src/transfer/transfer.c

check_PROGRAMS += tests/unit/test_transfer
TESTS += tests/unit/test_transfer
tests_unit_test_transfer_SOURCES = tests/unit/test_transfer.c
tests_unit_test_transfer_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_transfer_LDADD = $(UNIT_TEST_LIBS)
