# SPDX-License-Identifier: MIT
# The channel handlers (email, sms, push) and their sources.
src_libnq_a_SOURCES += \
	src/handlers/channel.h src/handlers/channel.c \
	src/handlers/email.c src/handlers/sms.c src/handlers/push.c

check_PROGRAMS += tests/unit/test_handlers_compose tests/unit/test_handlers_channel
TESTS += tests/unit/test_handlers_compose tests/unit/test_handlers_channel
tests_unit_test_handlers_compose_SOURCES = tests/unit/test_handlers_compose.c
tests_unit_test_handlers_compose_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_handlers_compose_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_handlers_channel_SOURCES = tests/unit/test_handlers_channel.c
tests_unit_test_handlers_channel_CPPFLAGS = $(AM_CPPFLAGS) -DNQ_SRCDIR='"$(abs_top_srcdir)"'
tests_unit_test_handlers_channel_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_handlers_channel_LDADD = $(UNIT_TEST_LIBS)

check_PROGRAMS += tests/unit/test_handlers_template
TESTS += tests/unit/test_handlers_template
tests_unit_test_handlers_template_SOURCES = tests/unit/test_handlers_template.c
tests_unit_test_handlers_template_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_handlers_template_LDADD = $(UNIT_TEST_LIBS)
