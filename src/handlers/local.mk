# SPDX-License-Identifier: MIT
# The handler registry and the noop handler; the channel handlers' sources
# are in channels.mk.
src_libnq_a_SOURCES += \
	src/handlers/handler.h src/handlers/handler.c \
	src/handlers/noop.c

# notifyq-jobs(7) documents every field of the handlers' field tables.
check_PROGRAMS += tests/unit/test_jobs_page
TESTS += tests/unit/test_jobs_page
tests_unit_test_jobs_page_SOURCES = tests/unit/test_jobs_page.c
tests_unit_test_jobs_page_CPPFLAGS = $(AM_CPPFLAGS) \
	-DNQ_JOBS_PAGE='"$(abs_top_srcdir)/man/notifyq-jobs.7"'
tests_unit_test_jobs_page_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_jobs_page_LDADD = $(UNIT_TEST_LIBS)
