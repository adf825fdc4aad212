# SPDX-License-Identifier: MIT
# Push providers: fcm and apns, their per-token sends, and JWT signing.
src_libnq_a_SOURCES += \
	src/providers/jwt.h src/providers/jwt.c \
	src/providers/pushsend.h src/providers/pushsend.c \
	src/providers/fcm.h src/providers/fcm.c \
	src/providers/apns.h src/providers/apns.c

check_PROGRAMS += tests/unit/test_provider_push
TESTS += tests/unit/test_provider_push
tests_unit_test_provider_push_SOURCES = tests/unit/test_provider_push.c
tests_unit_test_provider_push_CFLAGS = $(UNIT_TEST_FLAGS)
tests_unit_test_provider_push_LDADD = $(UNIT_TEST_LIBS)
