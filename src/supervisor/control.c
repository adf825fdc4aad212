/* SPDX-License-Identifier: MIT */
/*
 * The control socket server. Connections are libevent bufferevents whose
 * input is capped at one maximal line (the read high-water mark), so a
 * client cannot make the master buffer more than NQ_CONTROL_LINE_MAX bytes
 * per connection; a connection whose unsent replies exceed
 * NQ_CONTROL_OUTPUT_MAX is not read until they are sent, so pipelined
 * requests nobody reads the replies of wait in the client's socket, not in
 * the master. Connections are capped at NQ_CONTROL_MAX_CONNECTIONS, the last
 * NQ_CONTROL_ROOT_RESERVED of them for root, and each is closed after
 * NQ_CONTROL_IDLE_TIMEOUT_S without a request (or without reading a
 * reply), so idle connections cannot lock the operator out.
 * Requests run synchronously in the master's loop: each is a lookup or a
 * short action (a reload parses the file and forks; it does not wait).
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <libgen.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "common/utf8.h"
#include "config/config.h"
#include "supervisor/control.h"
#include "supervisor/internal.h"

struct conn {
    struct nq_control *c;
    struct bufferevent *bev;
    bool closing; /* reply queued, then close */
    bool held;    /* not read until its unsent replies are sent */
    struct conn *prev, *next;
};

struct nq_control {
    struct nq_master *m;
    char *path;
    int fd;
    struct event *ev_accept, *ev_resume;
    bool has_group;
    gid_t gid;
    dev_t dev; /* of the socket file we created, to remove only ours */
    ino_t ino;
    struct conn *conns;
    unsigned n_conns;
    bool warned_full; /* logged a refusal since the count was last low */
};

static const char *const cmd_names[] = {
    [NQ_CONTROL_STATUS] = "status", [NQ_CONTROL_METRICS] = "metrics", [NQ_CONTROL_PAUSE] = "pause",
    [NQ_CONTROL_RESUME] = "resume", [NQ_CONTROL_RELOAD] = "reload",   [NQ_CONTROL_STOP] = "stop",
};

int nq_control_parse(const char *line, size_t len, struct nq_control_request *ret,
                     struct nq_err *err)
{
    struct nq_control_request req = { .cmd = NQ_CONTROL_STATUS };
    json_auto_t *o = NULL;
    json_error_t jerr;
    json_t *cmd, *queue;
    size_t i;

    if (len > NQ_CONTROL_LINE_MAX)
        return nq_err_set(err, -EMSGSIZE, "request too long (more than %d bytes)",
                          NQ_CONTROL_LINE_MAX);
    o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
    /* The error goes back as JSON; jansson's text quotes the bytes near the
     * fault, and those may be a cut character. */
    if (!o)
        return nq_err_set(err, -EINVAL, "bad request: not JSON: %.*s",
                          (int) nq_utf8_valid_prefix(jerr.text, strlen(jerr.text)), jerr.text);
    if (!json_is_object(o))
        return nq_err_set(err, -EINVAL, "bad request: not a JSON object");
    cmd = json_object_get(o, "cmd");
    if (!cmd)
        return nq_err_set(err, -EINVAL, "bad request: no \"cmd\"");
    if (!json_is_string(cmd))
        return nq_err_set(err, -EINVAL, "bad request: \"cmd\" is not a string");
    for (i = 0; i < NQ_ELEMENTSOF(cmd_names); i++)
        if (strcmp(cmd_names[i], json_string_value(cmd)) == 0)
            break;
    if (i == NQ_ELEMENTSOF(cmd_names)) {
        const char *name = json_string_value(cmd);

        return nq_err_set(err, -EINVAL, "unknown command '%.*s'",
                          (int) nq_utf8_valid_prefix(name, strnlen(name, 64)), name);
    }
    req.cmd = (enum nq_control_cmd) i;
    if (req.cmd == NQ_CONTROL_PAUSE || req.cmd == NQ_CONTROL_RESUME) {
        queue = json_object_get(o, "queue");
        if (!queue)
            return nq_err_set(err, -EINVAL, "%s needs a queue", cmd_names[i]);
        if (!json_is_string(queue))
            return nq_err_set(err, -EINVAL, "bad request: \"queue\" is not a string");
        if (json_string_length(queue) == 0 || json_string_length(queue) >= sizeof(req.queue))
            return nq_err_set(err, -EINVAL, "bad request: queue name of %zu bytes",
                              json_string_length(queue));
        memcpy(req.queue, json_string_value(queue), json_string_length(queue) + 1);
    }
    *ret = req;
    return 0;
}

/* --- connections ------------------------------------------------------- */

static void conn_free(struct conn *k)
{
    struct nq_control *c = k->c;

    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    c->n_conns--;
    if (c->n_conns < NQ_CONTROL_MAX_CONNECTIONS / 2)
        c->warned_full = false;
    bufferevent_free(k->bev);
    free(k);
}

static void send_json(struct conn *k, json_t *reply)
{
    static const char oom[] = "{\"ok\":false,\"error\":\"out of memory\"}\n";
    struct evbuffer *out = bufferevent_get_output(k->bev);
    char *s = reply ? json_dumps(reply, JSON_COMPACT) : NULL;

    if (!s || evbuffer_add(out, s, strlen(s)) < 0 || evbuffer_add(out, "\n", 1) < 0)
        (void) evbuffer_add(out, oom, sizeof(oom) - 1);
    free(s);
    json_decref(reply);
}

static void send_error(struct conn *k, const char *text)
{
    send_json(k, json_pack("{s:b, s:s}", "ok", 0, "error", text));
}

static void send_ok(struct conn *k)
{
    send_json(k, json_pack("{s:b}", "ok", 1));
}

static void pause_queue(struct conn *k, const struct nq_control_request *req)
{
    bool pause = req->cmd == NQ_CONTROL_PAUSE;
    char text[NQ_CONTROL_QUEUE_MAX + 32];

    if (nq_master_pause(k->c->m, req->queue, pause) < 0) {
        (void) snprintf(text, sizeof(text), "unknown queue '%s'", req->queue);
        send_error(k, text);
        return;
    }
    send_json(k, json_pack("{s:b, s:s, s:s}", "ok", 1, "queue", req->queue, "state",
                           pause ? "paused" : "ok"));
}

/* Returns true when the connection must close after the reply. */
static bool handle_line(struct conn *k, const char *line, size_t len)
{
    struct nq_master *m = k->c->m;
    struct nq_control_request req;
    struct nq_err err = { "" };
    int r = nq_control_parse(line, len, &req, &err);

    if (r < 0) {
        send_error(k, nq_err_str(&err));
        return r == -EMSGSIZE;
    }
    switch (req.cmd) {
    case NQ_CONTROL_STATUS:
        send_json(k, nq_status_json(m));
        break;
    case NQ_CONTROL_METRICS:
        send_json(k, nq_metrics_json(m));
        break;
    case NQ_CONTROL_PAUSE:
    case NQ_CONTROL_RESUME:
        pause_queue(k, &req);
        break;
    case NQ_CONTROL_RELOAD:
        nq_log(LOG_NOTICE, "reload requested on the control socket");
        if (nq_master_reload(m, &err) < 0)
            send_error(k, nq_err_str(&err));
        else
            send_ok(k);
        break;
    case NQ_CONTROL_STOP:
        nq_log(LOG_NOTICE, "stop requested on the control socket: draining workers");
        send_ok(k);
        nq_master_stop(m, false);
        break;
    }
    return false;
}

static void close_after_reply(struct conn *k)
{
    struct evbuffer *in = bufferevent_get_input(k->bev);

    k->closing = true;
    (void) bufferevent_disable(k->bev, EV_READ);
    (void) evbuffer_drain(in, evbuffer_get_length(in));
    if (evbuffer_get_length(bufferevent_get_output(k->bev)) == 0)
        conn_free(k);
}

/* Answers the complete lines buffered, until the unsent replies pass
 * NQ_CONTROL_OUTPUT_MAX: then stops reading until they are sent. */
static void serve(struct conn *k)
{
    struct evbuffer *in = bufferevent_get_input(k->bev);
    struct evbuffer *out = bufferevent_get_output(k->bev);
    char *line;
    size_t len;

    for (;;) {
        if (evbuffer_get_length(out) > NQ_CONTROL_OUTPUT_MAX) {
            k->held = true;
            (void) bufferevent_disable(k->bev, EV_READ);
            return;
        }
        line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);
        if (!line)
            break;
        bool close = handle_line(k, line, len);

        free(line);
        if (close) {
            close_after_reply(k);
            return;
        }
    }
    if (evbuffer_get_length(in) > NQ_CONTROL_LINE_MAX) {
        send_error(k, "request too long");
        close_after_reply(k);
    }
}

static void on_conn_read(struct bufferevent *bev, void *arg)
{
    serve(arg);
}

/* Every reply queued has been sent. */
static void on_conn_write(struct bufferevent *bev, void *arg)
{
    struct conn *k = arg;

    if (k->closing) {
        conn_free(k);
        return;
    }
    if (k->held) {
        k->held = false;
        (void) bufferevent_enable(bev, EV_READ);
        serve(k);
    }
}

static void on_conn_event(struct bufferevent *bev, short what, void *arg)
{
    struct conn *k = arg;

    /* A client that half-closes after its last request still gets the
     * replies queued for it. */
    if ((what & BEV_EVENT_EOF) && evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
        k->closing = true;
        (void) bufferevent_disable(bev, EV_READ);
        return;
    }
    conn_free(k);
}

/* --- accepting --------------------------------------------------------- */

static bool uid_in_group(uid_t uid, gid_t gid)
{
    struct passwd pw, *found = NULL;
    char buf[4096];
    gid_t some[64];
    nq_autofree gid_t *many = NULL;
    gid_t *groups = some;
    int n = (int) NQ_ELEMENTSOF(some);

    if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) != 0 || !found)
        return false;
    if (getgrouplist(pw.pw_name, pw.pw_gid, groups, &n) < 0) {
        many = calloc((size_t) n, sizeof(*many));
        if (!many || getgrouplist(pw.pw_name, pw.pw_gid, many, &n) < 0)
            return false;
        groups = many;
    }
    for (int i = 0; i < n; i++)
        if (groups[i] == gid)
            return true;
    return false;
}

static bool peer_allowed(const struct nq_control *c, int fd, struct ucred *cred)
{
    socklen_t len = sizeof(*cred);

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, &len) < 0)
        return false;
    if (cred->uid == 0 || cred->uid == geteuid())
        return true;
    return c->has_group && (cred->gid == c->gid || uid_in_group(cred->uid, c->gid));
}

/* For connections refused before they get a bufferevent: one line, best
 * effort, never blocking. "refused" tells notifyqctl it could not talk to
 * the daemon at all (exit 2), unlike an error the daemon gives a request. */
static void refuse(int fd, const char *error)
{
    char line[128];
    int n =
        snprintf(line, sizeof(line), "{\"ok\":false,\"error\":\"%s\",\"refused\":true}\n", error);

    (void) send(fd, line, (size_t) n, MSG_DONTWAIT | MSG_NOSIGNAL);
    (void) close(fd);
}

static int conn_new(struct nq_control *c, int fd)
{
    const struct timeval idle = { NQ_CONTROL_IDLE_TIMEOUT_S, 0 };
    struct conn *k = calloc(1, sizeof(*k));

    if (!k)
        return -ENOMEM;
    k->c = c;
    k->bev = bufferevent_socket_new(c->m->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!k->bev) {
        free(k);
        return -ENOMEM;
    }
    bufferevent_setcb(k->bev, on_conn_read, on_conn_write, on_conn_event, k);
    bufferevent_setwatermark(k->bev, EV_READ, 0, NQ_CONTROL_LINE_MAX + 1);
    (void) bufferevent_set_timeouts(k->bev, &idle, &idle);
    (void) bufferevent_enable(k->bev, EV_READ | EV_WRITE);
    k->next = c->conns;
    if (c->conns)
        c->conns->prev = k;
    c->conns = k;
    c->n_conns++;
    return 0;
}

static void on_resume_accept(evutil_socket_t fd, short what, void *arg)
{
    struct nq_control *c = arg;

    (void) event_add(c->ev_accept, NULL);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct nq_control *c = arg;
    const struct timeval second = { 1, 0 };
    struct ucred cred = { 0 };

    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            /* Out of fds: stop accepting for a second rather than spin. */
            nq_log_errno(LOG_ERR, -errno, "control socket: accept: %m, pausing for 1s");
            (void) event_del(c->ev_accept);
            (void) event_add(c->ev_resume, &second);
            return;
        }
        if (!peer_allowed(c, fd, &cred)) {
            nq_log(LOG_NOTICE,
                   "control socket: refused pid %ld uid %ld: not root, ours or in "
                   "the control group",
                   (long) cred.pid, (long) cred.uid);
            refuse(fd, "permission denied");
        } else if (c->n_conns >= NQ_CONTROL_MAX_CONNECTIONS ||
                   (cred.uid != 0 &&
                    c->n_conns >= NQ_CONTROL_MAX_CONNECTIONS - NQ_CONTROL_ROOT_RESERVED)) {
            if (!c->warned_full)
                nq_log(LOG_WARNING,
                       "control socket: %u connections open, refusing pid %ld "
                       "uid %ld (the last %d are kept for root)",
                       c->n_conns, (long) cred.pid, (long) cred.uid, NQ_CONTROL_ROOT_RESERVED);
            c->warned_full = true;
            refuse(fd, "too many connections");
        } else if (conn_new(c, fd) < 0) {
            refuse(fd, "out of memory");
        }
    }
}

/* --- the socket file --------------------------------------------------- */

/* A socket file that nobody answers on is a leftover of a daemon that
 * died: replace it. One that answers belongs to a running notifyqd. */
static int take_over_path(const char *path, struct nq_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    nq_autoclose int probe = -1;

    if (lstat(path, &st) < 0)
        return errno == ENOENT
                   ? 0
                   : nq_err_set(err, -errno, "control socket %s: %s", path, strerror(errno));
    if (!S_ISSOCK(st.st_mode))
        return nq_err_set(err, -EEXIST, "control socket %s: exists and is not a socket", path);
    probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (probe < 0)
        return nq_err_set(err, -errno, "control socket: socket: %s", strerror(errno));
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if (connect(probe, (struct sockaddr *) &sa, sizeof(sa)) == 0 || errno == EAGAIN)
        return nq_err_set(err, -EADDRINUSE,
                          "control socket %s: another notifyqd answers on it, not starting", path);
    if (errno != ECONNREFUSED)
        return nq_err_set(err, -errno, "control socket %s: %s", path, strerror(errno));
    if (unlink(path) < 0 && errno != ENOENT)
        return nq_err_set(err, -errno, "control socket %s: removing the stale socket: %s", path,
                          strerror(errno));
    nq_log(LOG_INFO, "removed stale control socket %s", path);
    return 0;
}

static int resolve_group(struct nq_control *c, const char *group, struct nq_err *err)
{
    struct group gr, *found = NULL;
    char buf[4096];
    int r;

    if (!group)
        return 0;
    r = getgrnam_r(group, &gr, buf, sizeof(buf), &found);
    if (r != 0 || !found)
        return nq_err_set(err, r ? -r : -ENOENT, "control.group %s: %s", group,
                          r ? strerror(r) : "no such group");
    c->has_group = true;
    c->gid = gr.gr_gid;
    return 0;
}

/* /run/notifyq normally comes from systemd's RuntimeDirectory=; started by
 * hand, the master makes the last directory itself. */
static void make_parent(const char *path)
{
    nq_autofree char *copy = strdup(path);
    const char *dir = copy ? dirname(copy) : NULL;

    /* dirname() may edit its argument: ask it once. */
    if (dir && mkdir(dir, 0755) == 0)
        nq_log(LOG_INFO, "created %s", dir);
}

static int bind_socket(struct nq_control *c, const struct nq_control_cfg *cfg, struct nq_err *err)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    mode_t old;
    int r;

    memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0)
        return nq_err_set(err, -errno, "control socket: socket: %s", strerror(errno));
    make_parent(c->path);
    /* Nobody may connect before the mode and group are right. */
    old = umask(0177);
    r = bind(c->fd, (struct sockaddr *) &sa, sizeof(sa));
    umask(old);
    if (r < 0)
        return nq_err_set(err, -errno, "control socket %s: bind: %s", c->path, strerror(errno));
    if (stat(c->path, &st) < 0)
        return nq_err_set(err, -errno, "control socket %s: %s", c->path, strerror(errno));
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    /* Under systemd the socket already has the service's group, and
     * chown() may be filtered out (SystemCallFilter=~@privileged). */
    if (c->has_group && st.st_gid != c->gid && chown(c->path, (uid_t) -1, c->gid) < 0)
        nq_log_errno(LOG_WARNING, -errno, "control socket %s: chown to group %s: %m, ignoring",
                     c->path, cfg->group);
    if (chmod(c->path, cfg->mode) < 0)
        return nq_err_set(err, -errno, "control socket %s: chmod: %s", c->path, strerror(errno));
    if (listen(c->fd, 64) < 0)
        return nq_err_set(err, -errno, "control socket %s: listen: %s", c->path, strerror(errno));
    return 0;
}

int nq_control_open(struct nq_master *m, const struct nq_control_cfg *cfg, struct nq_control **ret,
                    struct nq_err *err)
{
    struct nq_control *c = calloc(1, sizeof(*c));
    int r;

    if (!c)
        return nq_err_set(err, -ENOMEM, "control socket: out of memory");
    c->m = m;
    c->fd = -1;
    c->path = strdup(cfg->socket);
    if (!c->path) {
        r = nq_err_set(err, -ENOMEM, "control socket: out of memory");
        goto fail;
    }
    if (strlen(c->path) >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
        r = nq_err_set(err, -ENAMETOOLONG, "control socket %s: path longer than %zu bytes", c->path,
                       sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
        goto fail;
    }
    r = resolve_group(c, cfg->group, err);
    if (r >= 0)
        r = take_over_path(c->path, err);
    if (r >= 0)
        r = bind_socket(c, cfg, err);
    if (r < 0)
        goto fail;
    c->ev_accept = event_new(m->base, c->fd, EV_READ | EV_PERSIST, on_accept, c);
    c->ev_resume = evtimer_new(m->base, on_resume_accept, c);
    if (!c->ev_accept || !c->ev_resume || event_add(c->ev_accept, NULL) < 0) {
        r = nq_err_set(err, -ENOMEM, "control socket: out of memory");
        goto fail;
    }
    *ret = c;
    return 0;
fail:
    (void) nq_control_free(c);
    return r;
}

struct nq_control *nq_control_free(struct nq_control *c)
{
    struct stat st;

    if (!c)
        return NULL;
    while (c->conns) {
        struct conn *k = c->conns;
        struct evbuffer *out = bufferevent_get_output(k->bev);

        /* A "stop" reply may still be queued when the loop ends. */
        while (evbuffer_get_length(out) > 0 && evbuffer_write(out, bufferevent_getfd(k->bev)) > 0)
            ;
        conn_free(k);
    }
    if (c->ev_accept)
        event_free(c->ev_accept);
    if (c->ev_resume)
        event_free(c->ev_resume);
    if (c->fd >= 0) {
        (void) close(c->fd);
        if (c->ino && stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
            (void) unlink(c->path);
    }
    free(c->path);
    free(c);
    return NULL;
}
