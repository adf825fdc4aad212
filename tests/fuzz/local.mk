# SPDX-License-Identifier: MIT
# libFuzzer targets (issue 9). Each is one file, tests/fuzz/fuzz_<name>.c, linked
# against src/libnq.a, so a module's sources may move without touching this
# list; only a target's #include lines name where its header lives. They are
# EXTRA_PROGRAMS: built only on request, by scripts/fuzz, in _build-fuzz
# (configured with CC=clang, -fsanitize=fuzzer-no-link and --enable-sanitizers).
# Seed corpora are tests/fuzz/corpus/<name>/ (crashes found are kept there),
# dictionaries tests/fuzz/<name>.dict.
EXTRA_PROGRAMS = tests/fuzz/fuzz_config tests/fuzz/fuzz_job tests/fuzz/fuzz_jsoncheck \
	tests/fuzz/fuzz_resp tests/fuzz/fuzz_control tests/fuzz/fuzz_frame tests/fuzz/fuzz_cron \
	tests/fuzz/fuzz_compose tests/fuzz/fuzz_template tests/fuzz/fuzz_classify
NQ_FUZZ_LINK_FLAGS = $(AM_LDFLAGS) -fsanitize=fuzzer
NQ_FUZZ_LINK_LIBS = src/libnq.a $(NQ_LIBS)

tests_fuzz_fuzz_config_SOURCES = tests/fuzz/fuzz_config.c
tests_fuzz_fuzz_config_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_config_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_job_SOURCES = tests/fuzz/fuzz_job.c
tests_fuzz_fuzz_job_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_job_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_jsoncheck_SOURCES = tests/fuzz/fuzz_jsoncheck.c
tests_fuzz_fuzz_jsoncheck_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_jsoncheck_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_resp_SOURCES = tests/fuzz/fuzz_resp.c
tests_fuzz_fuzz_resp_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_resp_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_control_SOURCES = tests/fuzz/fuzz_control.c
tests_fuzz_fuzz_control_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_control_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_frame_SOURCES = tests/fuzz/fuzz_frame.c
tests_fuzz_fuzz_frame_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_frame_LDADD = $(NQ_FUZZ_LINK_LIBS)

tests_fuzz_fuzz_cron_SOURCES = tests/fuzz/fuzz_cron.c
tests_fuzz_fuzz_cron_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_cron_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_compose_SOURCES = tests/fuzz/fuzz_compose.c
tests_fuzz_fuzz_compose_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_compose_LDADD = $(NQ_FUZZ_LINK_LIBS)

EXTRA_DIST += tests/fuzz/corpus tests/fuzz/compose.dict tests/fuzz/config.dict tests/fuzz/cron.dict \
	tests/fuzz/control.dict tests/fuzz/frame.dict tests/fuzz/job.dict tests/fuzz/jsoncheck.dict \
	tests/fuzz/resp.dict
tests_fuzz_fuzz_template_SOURCES = tests/fuzz/fuzz_template.c
tests_fuzz_fuzz_template_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_template_LDADD = $(NQ_FUZZ_LINK_LIBS)
tests_fuzz_fuzz_classify_SOURCES = tests/fuzz/fuzz_classify.c
tests_fuzz_fuzz_classify_LDFLAGS = $(NQ_FUZZ_LINK_FLAGS)
tests_fuzz_fuzz_classify_LDADD = $(NQ_FUZZ_LINK_LIBS)
