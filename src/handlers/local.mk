# SPDX-License-Identifier: MIT
# The handler registry and the noop handler; the channel handlers' sources
# are in channels.mk.
src_libnq_a_SOURCES += \
	src/handlers/handler.h src/handlers/handler.c \
	src/handlers/noop.c
