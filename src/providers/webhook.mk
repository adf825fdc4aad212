# SPDX-License-Identifier: MIT
# Network providers: the shared HTTP shape (build + classify) and webhook.
src_libnq_a_SOURCES += \
	src/providers/http.h src/providers/http.c \
	src/providers/webhook.h src/providers/webhook.c

check_PROGRAMS += tests/unit/test_provider_webhook
TESTS += tests/unit/test_provider_webhook
tests_unit_test_provider_webhook_SOURCES = tests/unit/test_provider_webhook.c
tests_unit_test_provider_webhook_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_provider_webhook_LDADD = $(UNIT_TEST_LIBS)
