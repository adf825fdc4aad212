# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/common/macros.h src/common/cleanup.h \
	src/common/err.h src/common/err.c \
	src/common/log.h src/common/log.c \
	src/common/duration.h src/common/duration.c \
	src/common/utf8.h src/common/utf8.c \
	src/common/phone.h src/common/phone.c

check_PROGRAMS += tests/unit/test_utf8
TESTS += tests/unit/test_utf8
tests_unit_test_utf8_SOURCES = tests/unit/test_utf8.c
tests_unit_test_utf8_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_utf8_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/test_log
TESTS += tests/unit/test_log
tests_unit_test_log_SOURCES = tests/unit/test_log.c
tests_unit_test_log_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_log_LDADD = $(UNIT_TEST_LIBS)
