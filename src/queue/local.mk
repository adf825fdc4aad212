# SPDX-License-Identifier: MIT
# The queue store. Our Lua scripts (src/queue/lua/*.lua) are embedded into a
# generated C source, each prefixed with lua/common.lua, by a portable awk rule.
NQ_LUA_FILES = \
	src/queue/lua/add.lua src/queue/lua/work.lua src/queue/lua/extend.lua \
	src/queue/lua/stalled.lua src/queue/lua/recover.lua src/queue/lua/pause.lua \
	src/queue/lua/remove.lua src/queue/lua/retry.lua src/queue/lua/promote.lua \
	src/queue/lua/clean.lua src/queue/lua/progress.lua src/queue/lua/state.lua \
	src/queue/lua/counts.lua src/queue/lua/scheduler.lua \
	src/queue/lua/fanout.lua \
	src/queue/lua/publish.lua

src_libnq_a_SOURCES += \
	src/queue/keys.h src/queue/keys.c \
	src/queue/backoff.h src/queue/backoff.c \
	src/queue/jsoncheck.h src/queue/jsoncheck.c \
	src/queue/job.h src/queue/job.c \
	src/queue/scripts.h src/queue/scripts.c \
	src/queue/internal.h src/queue/reply.c src/queue/plan.c \
	src/queue/replyarena.h src/queue/replyarena.c \
	src/queue/sentinel.c src/queue/tls.c \
	src/queue/store.h src/queue/store.c \
	src/queue/admin.h src/queue/admin.c
nodist_src_libnq_a_SOURCES = src/queue/lua_sources.c
BUILT_SOURCES += src/queue/lua_sources.c
CLEANFILES += src/queue/lua_sources.c
EXTRA_DIST += $(NQ_LUA_FILES) src/queue/lua/common.lua src/queue/lua/embed.awk

src/queue/lua_sources.c: $(NQ_LUA_FILES) src/queue/lua/common.lua src/queue/lua/embed.awk
	$(AM_V_GEN)set -e; out=$@.tmp; $(MKDIR_P) src/queue; \
	echo '/* Generated from src/queue/lua by src/queue/local.mk; do not edit. */' >$$out; \
	for s in $(NQ_LUA_FILES); do \
	    n=`basename $$s .lua`; \
	    echo "extern const char nq_lua_$$n[];" >>$$out; \
	    echo "const char nq_lua_$$n[] =" >>$$out; \
	    $(AWK) -f $(srcdir)/src/queue/lua/embed.awk $(srcdir)/src/queue/lua/common.lua \
	        $(srcdir)/$$s >>$$out; \
	    echo ';' >>$$out; \
	done; mv $$out $@

check_PROGRAMS += tests/unit/test_keys tests/unit/test_backoff tests/unit/test_job \
	tests/unit/test_jsoncheck tests/unit/test_replyarena tests/unit/test_sentinel
TESTS += tests/unit/test_keys tests/unit/test_backoff tests/unit/test_job tests/unit/test_jsoncheck \
	tests/unit/test_replyarena tests/unit/test_sentinel
tests_unit_test_sentinel_SOURCES = tests/unit/test_sentinel.c
tests_unit_test_sentinel_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_sentinel_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_replyarena_SOURCES = tests/unit/test_replyarena.c
tests_unit_test_replyarena_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_replyarena_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_keys_SOURCES = tests/unit/test_keys.c
tests_unit_test_keys_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_keys_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_backoff_SOURCES = tests/unit/test_backoff.c
tests_unit_test_backoff_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_backoff_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_job_SOURCES = tests/unit/test_job.c
tests_unit_test_job_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_job_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_jsoncheck_SOURCES = tests/unit/test_jsoncheck.c
tests_unit_test_jsoncheck_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_jsoncheck_LDADD = $(UNIT_TEST_LIBS)

# The interop tests drive the store through this program (tests/interop/*.test.js).
check_PROGRAMS += tests/interop/nq_driver
tests_interop_nq_driver_SOURCES = tests/interop/nq_driver.c
tests_interop_nq_driver_LDADD = src/libnq.a $(NQ_LIBS)
EXTRA_DIST += tests/interop/helpers.js tests/interop/queue.test.js tests/interop/hang-worker.js \
	tests/interop/bench.js
