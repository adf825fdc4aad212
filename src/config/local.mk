# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/config/config.h src/config/internal.h \
	src/config/config.c src/config/walk.c src/config/url.c

# test_config reads etc/notifyq.yaml, man/notifyq.yaml.5 and the fixtures.
check_PROGRAMS += tests/unit/test_config tests/unit/test_duration
TESTS += tests/unit/test_config tests/unit/test_duration
tests_unit_test_config_SOURCES = tests/unit/test_config.c
tests_unit_test_config_CPPFLAGS = $(AM_CPPFLAGS) -DNQ_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_config_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_config_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_duration_SOURCES = tests/unit/test_duration.c
tests_unit_test_duration_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_duration_LDADD = $(UNIT_TEST_LIBS)

