# SPDX-License-Identifier: MIT
# The email API providers: sendgrid, resend, mailgun, postmark, ses (SigV4).
src_libnq_a_SOURCES += \
	src/providers/emailapi.h src/providers/emailapi.c \
	src/providers/sendgrid.c src/providers/resend.c src/providers/mailgun.c \
	src/providers/postmark.c src/providers/ses.c \
	src/providers/sigv4.h src/providers/sigv4.c \
	src/providers/httputil.h src/providers/httputil.c

check_PROGRAMS += tests/unit/test_provider_emailapi tests/unit/test_sigv4
TESTS += tests/unit/test_provider_emailapi tests/unit/test_sigv4
tests_unit_test_provider_emailapi_SOURCES = tests/unit/test_provider_emailapi.c
tests_unit_test_provider_emailapi_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_provider_emailapi_LDADD = $(UNIT_TEST_LIBS)
tests_unit_test_sigv4_SOURCES = tests/unit/test_sigv4.c
tests_unit_test_sigv4_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_sigv4_LDADD = $(UNIT_TEST_LIBS)
