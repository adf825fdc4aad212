# SPDX-License-Identifier: MIT
src_libnq_a_SOURCES += \
	src/worker/worker.h src/worker/worker.c
