# SPDX-License-Identifier: MIT
# The delivery log (PostgreSQL, libpq) and its migrations: migrations/*.sql
# are installed for DBAs to read and embedded into the binary (generated
# C source), which applies them with `notifyqd --migrate`.
NQ_MIGRATIONS = migrations/0001_init.sql

migrationsdir = $(datadir)/notifyq/migrations
dist_migrations_DATA = $(NQ_MIGRATIONS)

src_libnq_a_SOURCES += \
	src/deliverylog/deliverylog.h src/deliverylog/internal.h \
	src/deliverylog/schema.c src/deliverylog/event.c src/deliverylog/spool.c \
	src/deliverylog/writer.c src/deliverylog/inapp.c
nodist_src_libnq_a_SOURCES += src/deliverylog/migrations_sql.c
BUILT_SOURCES += src/deliverylog/migrations_sql.c
CLEANFILES += src/deliverylog/migrations_sql.c

src/deliverylog/migrations_sql.c: $(NQ_MIGRATIONS) src/queue/lua/embed.awk
	$(AM_V_GEN)set -e; out=$@.tmp; $(MKDIR_P) src/deliverylog; \
	echo '/* Generated from migrations/ by src/deliverylog/local.mk; do not edit. */' >$$out; \
	echo 'extern const char *const nq_dl_migrations[];' >>$$out; \
	echo 'extern const unsigned nq_dl_n_migrations;' >>$$out; \
	echo 'const char *const nq_dl_migrations[] = {' >>$$out; \
	for s in $(NQ_MIGRATIONS); do \
	    $(AWK) -f $(srcdir)/src/queue/lua/embed.awk $(srcdir)/$$s >>$$out; \
	    echo ',' >>$$out; \
	done; \
	echo '};' >>$$out; \
	echo 'const unsigned nq_dl_n_migrations = sizeof(nq_dl_migrations) / sizeof(nq_dl_migrations[0]);' >>$$out; \
	mv $$out $@

if HAVE_CMOCKA
check_PROGRAMS += tests/unit/test_deliverylog
TESTS += tests/unit/test_deliverylog
tests_unit_test_deliverylog_SOURCES = tests/unit/test_deliverylog.c
tests_unit_test_deliverylog_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_deliverylog_LDADD = $(UNIT_TEST_LIBS)
endif
