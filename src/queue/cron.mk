# SPDX-License-Identifier: MIT
# Cron next times as bullmq 6.7.0 / cron-parser compute them (src/queue/cron.h).
src_libnq_a_SOURCES += src/queue/cron.h src/queue/cron.c

check_PROGRAMS += tests/unit/test_cron
TESTS += tests/unit/test_cron
tests_unit_test_cron_SOURCES = tests/unit/test_cron.c
tests_unit_test_cron_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_cron_LDADD = $(UNIT_TEST_LIBS)

# tests/interop/cron.test.js compares this program's answers with cron-parser's.
check_PROGRAMS += tests/interop/nq_cron
tests_interop_nq_cron_SOURCES = tests/interop/nq_cron.c
tests_interop_nq_cron_LDADD = src/libnq.a $(NQ_LIBS)
EXTRA_DIST += tests/interop/cron.test.js
