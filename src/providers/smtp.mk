# SPDX-License-Identifier: MIT
# The smtp provider: email through the transport to a mail server.
src_libnq_a_SOURCES += src/providers/smtp.h src/providers/smtp.c

check_PROGRAMS += tests/unit/test_provider_smtp
TESTS += tests/unit/test_provider_smtp
tests_unit_test_provider_smtp_SOURCES = tests/unit/test_provider_smtp.c
tests_unit_test_provider_smtp_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_provider_smtp_LDADD = $(UNIT_TEST_LIBS)
