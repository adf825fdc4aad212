# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/common/macros.h src/common/cleanup.h \
	src/common/err.h src/common/err.c \
	src/common/log.h src/common/log.c \
	src/common/duration.h src/common/duration.c
