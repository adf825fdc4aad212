# SPDX-License-Identifier: MIT
# The SMS providers over HTTP (twilio, vonage, http) and the text rules they share.
src_libnq_a_SOURCES += \
	src/providers/sms.h src/providers/sms.c src/providers/smssend.c \
	src/providers/twilio.c src/providers/vonage.c src/providers/smshttp.c

check_PROGRAMS += tests/unit/test_provider_sms
TESTS += tests/unit/test_provider_sms
tests_unit_test_provider_sms_SOURCES = tests/unit/test_provider_sms.c
tests_unit_test_provider_sms_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_provider_sms_LDADD = $(UNIT_TEST_LIBS)
