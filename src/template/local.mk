# SPDX-License-Identifier: MIT
# Templates: the Mustache renderer and the store of template files.
src_libnq_a_SOURCES += \
	src/template/template.h src/template/internal.h \
	src/template/compile.c src/template/render.c src/template/store.c

# The Mustache spec's cases (github.com/mustache/spec, MIT; see
# tests/data/mustache-spec/SOURCE and LICENSE) are kept in the tree so the
# test runs from a tarball too.
EXTRA_DIST += tests/data/mustache-spec
check_PROGRAMS += tests/unit/test_template
TESTS += tests/unit/test_template
tests_unit_test_template_SOURCES = tests/unit/test_template.c
tests_unit_test_template_CPPFLAGS = $(AM_CPPFLAGS) \
	-DNQ_MUSTACHE_SPEC_DIR='"$(abs_top_srcdir)/tests/data/mustache-spec"'
tests_unit_test_template_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_template_LDADD = $(UNIT_TEST_LIBS)
