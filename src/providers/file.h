/* SPDX-License-Identifier: MIT */
/*
 * The file provider: the embedded default that needs no account. Each
 * delivery becomes one file in the queue's spool directory
 * (provider.spool_dir, default <state_dir>/spool/<queue>):
 *
 *   <stem>.eml    an email as RFC 5322 / MIME (see mime.h)
 *   <stem>.json   an sms or push message as a JSON document
 *
 * where <stem> is nq_delivery_stem() of the queue, the job id and the job's
 * timestamp, so a retried job overwrites its file instead of adding a second
 * one, while a job id used again for a new job adds a file beside the first
 * one's. A file appears
 * whole or not at all: it is written to a temp file (".nq-<pid>-<n>.tmp",
 * hidden, in the same directory), fsynced, renamed over the final name, and
 * the directory is fsynced. Temp files left by a crash are removed when a
 * provider starts, once an hour old (younger ones may belong to a sibling
 * worker writing right now).
 *
 * The spool directory and missing parents are made with mode 0750 when the
 * provider starts; files are 0640 (less the umask). Every write error is
 * retryable (a full disk empties; a permission gets fixed).
 *
 * The directory is written through a handle, and an operator may move,
 * remove or recreate it meanwhile: before each write the provider checks
 * that spool_dir still names the directory it holds, and opens (making it
 * again if need be) the one it names now when not. After the write it
 * checks that the file is at the path it reports; when the directory moved
 * during the write, the send is retryable and the retry writes it again
 * where spool_dir points (the moved directory keeps a copy).
 *
 * The write happens on the event loop in the callback that reports it: one
 * small file and two fsyncs, which block the loop for that long.
 */
#ifndef NQ_PROVIDERS_FILE_H
#define NQ_PROVIDERS_FILE_H

#include "providers/provider.h"

extern const struct nq_provider_ops nq_provider_file;

/* The file name (no directory) of d's spool file for a message of type.
 * Returns its length or -ENOBUFS (NQ_DELIVERY_STEM_MAX + 8 is enough). */
int nq_file_spool_name(const struct nq_delivery *d, enum nq_msg_type type, char *buf,
                       size_t size) NQ_MUSTCHECK;

#endif
