/* SPDX-License-Identifier: MIT */
/*
 * The child's side of the channel. The master is trusted more than a child
 * is, but its frames still go through the defensive decoder: a bad command
 * is logged and ignored rather than guessed at.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/log.h"
#include "proc/proc.h"

struct nq_channel {
    int fd;
    struct event *ev;
    nq_channel_command_fn on_command;
    nq_channel_eof_fn on_eof;
    void *userdata;
    int eof;
    char buf[NQ_FRAME_MAX];
};

static void on_channel_readable(evutil_socket_t fd, short what, void *arg)
{
    struct nq_channel *ch = arg;
    struct nq_frame f;
    struct nq_err err = { "" };
    int r;

    for (;;) {
        r = nq_frame_recv(ch->fd, ch->buf, &f, &err);
        if (r == -EAGAIN)
            return;
        if (r == -EINVAL || r == -EMSGSIZE) {
            nq_log(LOG_WARNING, "bad frame from the master, ignoring: %s", nq_err_str(&err));
            continue;
        }
        if (r == 1 && f.type != NQ_FRAME_COMMAND && f.type != NQ_FRAME_SNAPSHOT) {
            nq_log(LOG_WARNING, "unexpected frame type from the master, ignoring");
            continue;
        }
        if (r == 1 && f.type == NQ_FRAME_SNAPSHOT) {
            ch->on_command(&f, ch->userdata);
            json_decref(f.snapshot);
            continue;
        }
        if (r == 1) {
            ch->on_command(&f, ch->userdata);
            /* The callback may have stopped the loop; later frames wait. */
            return;
        }
        if (r < 0 && r != -ECONNRESET)
            nq_log_errno(LOG_WARNING, r, "channel to the master: %m");
        /* EOF or a hard error: the master is gone. */
        ch->eof = 1;
        event_del(ch->ev);
        ch->on_eof(ch->userdata);
        return;
    }
}

struct nq_channel *nq_channel_new(struct event_base *base, int fd, nq_channel_command_fn on_command,
                                  nq_channel_eof_fn on_eof, void *userdata)
{
    struct nq_channel *ch = calloc(1, sizeof(*ch));

    if (!ch)
        return NULL;
    ch->fd = fd;
    ch->on_command = on_command;
    ch->on_eof = on_eof;
    ch->userdata = userdata;
    ch->ev = event_new(base, fd, EV_READ | EV_PERSIST, on_channel_readable, ch);
    if (!ch->ev || event_add(ch->ev, NULL) < 0) {
        if (ch->ev)
            event_free(ch->ev);
        free(ch);
        return NULL;
    }
    return ch;
}

struct nq_channel *nq_channel_free(struct nq_channel *ch)
{
    if (!ch)
        return NULL;
    if (ch->ev)
        event_free(ch->ev);
    (void) close(ch->fd);
    free(ch);
    return NULL;
}

int nq_channel_send(struct nq_channel *ch, const struct nq_frame *f)
{
    if (ch->eof)
        return -EPIPE;
    return nq_frame_send(ch->fd, f);
}

int nq_channel_send_metrics(struct nq_channel *ch, const struct nq_frame_metrics *m)
{
    struct nq_frame f = { .type = NQ_FRAME_METRICS, .metrics = *m };

    return nq_channel_send(ch, &f);
}
