/* SPDX-License-Identifier: MIT */
/*
 * The child's end of its channel to the master (frames in frame.h): send
 * metrics up, receive commands down as a libevent callback on the child's own
 * event base. EOF means the master is gone: the child drains and exits
 * (HAProxy's workers do the same), backing up PR_SET_PDEATHSIG.
 * A frame the child cannot send at once (master busy, buffer full) is
 * dropped: metrics are sent every second and the next one supersedes it.
 * Logging module (child side).
 */
#ifndef NQ_SUPERVISOR_CHANNEL_H
#define NQ_SUPERVISOR_CHANNEL_H

#include "common/macros.h"
#include "supervisor/frame.h"

struct event_base;
struct nq_channel;

/* cmd is a NQ_FRAME_COMMAND frame (recover carries its prefix), borrowed
 * for the call. */
typedef void (*nq_channel_command_fn)(const struct nq_frame *cmd, void *userdata);
typedef void (*nq_channel_eof_fn)(void *userdata);

/* Watches fd (the child's channel end; the channel owns and closes it) on
 * base. on_command runs for each valid command; bad frames are logged and
 * dropped; on_eof runs once when the master's end is closed. NULL on OOM
 * (fd then stays the caller's). */
struct nq_channel *nq_channel_new(struct event_base *base, int fd, nq_channel_command_fn on_command,
                                  nq_channel_eof_fn on_eof, void *userdata);
struct nq_channel *nq_channel_free(struct nq_channel *ch);

/* Sends one metrics frame. Returns 0, -EAGAIN when dropped because the
 * master is not reading, or another negative errno (-EPIPE after EOF). */
int nq_channel_send_metrics(struct nq_channel *ch, const struct nq_frame_metrics *m) NQ_MUSTCHECK;

/* Sends any up frame (recovered, recycle); same results. */
int nq_channel_send(struct nq_channel *ch, const struct nq_frame *f) NQ_MUSTCHECK;

#endif
