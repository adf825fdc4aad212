# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/worker/worker.h src/worker/worker.c \
	src/worker/internal.h src/worker/jobs.c src/worker/upkeep.c \
	src/worker/logbook.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_worker_frames tests/unit/test_worker_noop
TESTS += tests/unit/test_worker_frames tests/unit/test_worker_noop
tests_unit_test_worker_frames_SOURCES = tests/unit/test_worker_frames.c
tests_unit_test_worker_frames_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_worker_frames_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_worker_noop_SOURCES = tests/unit/test_worker_noop.c
tests_unit_test_worker_noop_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_worker_noop_LDADD = $(UNIT_TEST_LIBS)
endif
