# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/supervisor/supervisor.h src/supervisor/internal.h \
	src/supervisor/master.c src/supervisor/slot.c src/supervisor/status.c \
	src/supervisor/recovery.c src/supervisor/spawn.c \
	src/supervisor/control.h src/supervisor/control.c \
	src/supervisor/restart.h src/supervisor/restart.c

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_restart tests/unit/test_control
TESTS += tests/unit/test_restart tests/unit/test_control
tests_unit_test_restart_SOURCES = tests/unit/test_restart.c
tests_unit_test_restart_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_restart_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_control_SOURCES = tests/unit/test_control.c
tests_unit_test_control_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_control_LDADD = $(UNIT_TEST_LIBS)
endif
