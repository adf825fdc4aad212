# SPDX-License-Identifier: MIT
# The inapp handler: rows in PostgreSQL (deliverylog/), a live message on Redis.
src_libnq_a_SOURCES += src/handlers/inapp.c
