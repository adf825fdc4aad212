# SPDX-License-Identifier: MIT
# notifyqctl's queue commands (send, job, failed, clean, counts, and the Redis
# half of pause/resume), linked into notifyqctl from the library.
src_libnq_a_SOURCES += \
	src/ctl/ctl.h src/ctl/internal.h src/ctl/output.h \
	src/ctl/ctl.c src/ctl/send.c src/ctl/jobs.c src/ctl/output.c \
	src/ctl/notification.c

EXTRA_DIST += tests/interop/ctl.test.js
