# SPDX-License-Identifier: MIT
# The webhook handler.
src_libnq_a_SOURCES += src/handlers/webhook.c
