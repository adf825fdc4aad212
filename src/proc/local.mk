# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/proc/proc.h src/proc/frame.c src/proc/channel.c src/proc/child.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_frame
TESTS += tests/unit/test_frame
tests_unit_test_frame_SOURCES = tests/unit/test_frame.c
tests_unit_test_frame_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_frame_LDADD = $(UNIT_TEST_LIBS)
endif
