# SPDX-License-Identifier: MIT
# Providers: how a message leaves. The interface and the file provider.
src_libnq_a_SOURCES += \
	src/providers/provider.h src/providers/provider.c \
	src/providers/mime.h src/providers/mime.c \
	src/providers/file.h src/providers/file.c

check_PROGRAMS += tests/unit/test_provider_file
TESTS += tests/unit/test_provider_file
tests_unit_test_provider_file_SOURCES = tests/unit/test_provider_file.c
tests_unit_test_provider_file_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_provider_file_LDADD = $(UNIT_TEST_LIBS)
