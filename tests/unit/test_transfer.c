/* SPDX-License-Identifier: MIT */
/* The transport against a small HTTP/1.1 server this test runs on the same
 * libevent loop (127.0.0.1, a port the kernel picks): replies with headers
 * and bodies (cut at the cap), transport errors classified as PROVIDERS.md
 * §0 says (refused -> not sent; stall or reset after the request ->
 * unknown), SMTP (delivered; dropped before the message -> not sent;
 * dropped after the final "." -> unknown), several transfers in flight at
 * once, connection reuse, -EBUSY past the limit, and cancel (single, all, by
 * freeing) without callbacks. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <sys/resource.h>

#include "transfer/transfer.h"

/* ---- the server ------------------------------------------------------------ */

enum mode {
    ANSWER, /* 200 with headers and a body */
    BIG,    /* 200 with a 100 KiB body */
    STALL,  /* read the request, never answer */
    RESET,  /* read the request, then close with RST */
    GATHER, /* hold requests until `gather` have come, then answer all */
    PICKY,  /* stall requests for /hook, answer the others */
    /* SMTP */
    SMTP_OK,        /* accept the message */
    SMTP_DROP_RCPT, /* close the connection at RCPT TO, before any message */
    SMTP_DROP_DOT,  /* close it after the final ".", without a reply (RFC 1047) */
};

struct conn {
    struct server *s;
    int fd;
    struct event *ev;
    char buf[8192];
    size_t len;
    bool held;
    bool in_data; /* SMTP: between DATA's 354 and the final "." */
};

#define CONNS_MAX 32

struct server {
    struct event_base *base;
    int lfd;
    struct event *lev;
    unsigned short port;
    enum mode mode;
    unsigned accepted, requests, gather;
    char last_request[8192];
    char smtp_rcpt[256]; /* SMTP: the RCPT TO lines, concatenated */
    int report_fd;       /* SMTP: where each message received is reported */
    struct conn *conns[CONNS_MAX];
    size_t n_conns;
};

static void conn_close(struct conn *c, bool rst)
{
    if (rst) {
        struct linger l = { .l_onoff = 1, .l_linger = 0 };

        (void) setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    event_free(c->ev);
    close(c->fd);
    for (size_t i = 0; i < c->s->n_conns; i++)
        if (c->s->conns[i] == c)
            c->s->conns[i] = c->s->conns[--c->s->n_conns];
    free(c);
}

static void answer(struct conn *c, size_t body_len)
{
    char *out = malloc(body_len + 256);
    int n = snprintf(out, 256,
                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nRetry-After: 7\r\n"
                     "X-Id: abc-1\r\n\r\n",
                     body_len);

    memset(out + n, 'b', body_len);
    if (body_len >= 2)
        /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): the body's first bytes */
        memcpy(out + n, "ok", 2);
    assert_int_equal(write(c->fd, out, (size_t) n + body_len), (ssize_t) n + (ssize_t) body_len);
    free(out);
}

/* A whole request is in when the header's end and Content-Length bytes are. */
static bool request_complete(struct conn *c)
{
    char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    char *cl;
    size_t body = 0;

    if (!end)
        return false;
    *end = '\0';
    cl = strcasestr(c->buf, "content-length:");
    if (cl)
        body = strtoul(cl + 15, NULL, 10);
    *end = '\r';
    return c->len >= (size_t) (end - c->buf) + 4 + body;
}

static void say(struct conn *c, const char *line)
{
    assert_int_equal(write(c->fd, line, strlen(line)), (ssize_t) strlen(line));
}

/* One SMTP command line (without CRLF); false when the connection closed. */
static bool smtp_command(struct conn *c, const char *line)
{
    struct server *s = c->s;

    if (!strncasecmp(line, "EHLO", 4)) {
        say(c, "250-test.invalid\r\n250 SIZE 1000000\r\n");
    } else if (!strncasecmp(line, "RCPT TO:", 8)) {
        if (s->mode == SMTP_DROP_RCPT) {
            conn_close(c, false);
            return false;
        }
        size_t have = strlen(s->smtp_rcpt);

        snprintf(s->smtp_rcpt + have, sizeof(s->smtp_rcpt) - have, "%.100s", line + 8);
        say(c, "250 2.1.5 ok\r\n");
    } else if (!strncasecmp(line, "DATA", 4)) {
        c->in_data = true;
        say(c, "354 go ahead\r\n");
    } else if (!strncasecmp(line, "QUIT", 4)) {
        say(c, "221 bye\r\n");
        conn_close(c, false);
        return false;
    } else {
        say(c, "250 ok\r\n"); /* MAIL, RSET, NOOP */
    }
    return true;
}

/* libcurl waits for the reply to the final "." with a blocking poll (see
 * transfer.h), so an SMTP server cannot share the client's loop: it runs in
 * a child, and reports each message it got on a pipe. */
struct smtp_report {
    char rcpt[256];
    char message[512];
};

static void smtp_report(const struct server *s)
{
    struct smtp_report r;

    memset(&r, 0, sizeof(r));
    snprintf(r.rcpt, sizeof(r.rcpt), "%s", s->smtp_rcpt);
    snprintf(r.message, sizeof(r.message), "%.500s", s->last_request);
    assert_int_equal(write(s->report_fd, &r, sizeof(r)), (ssize_t) sizeof(r));
}

static void smtp_input(struct conn *c)
{
    struct server *s = c->s;

    for (;;) {
        char *end;

        if (c->in_data) {
            end = memmem(c->buf, c->len, "\r\n.\r\n", 5);
            if (!end)
                return;
            *end = '\0';
            s->requests++;
            memcpy(s->last_request, c->buf, (size_t) (end - c->buf) + 1);
            smtp_report(s);
            c->in_data = false;
            c->len -= (size_t) (end + 5 - c->buf);
            memmove(c->buf, end + 5, c->len);
            if (s->mode == SMTP_DROP_DOT) {
                conn_close(c, false);
                return;
            }
            say(c, "250 2.0.0 queued as T1\r\n");
            continue;
        }
        end = memmem(c->buf, c->len, "\r\n", 2);
        if (!end)
            return;
        *end = '\0';
        {
            char line[1024];

            snprintf(line, sizeof(line), "%.1000s", c->buf);
            c->len -= (size_t) (end + 2 - c->buf);
            memmove(c->buf, end + 2, c->len);
            if (!smtp_command(c, line))
                return;
        }
    }
}

static void on_conn(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    struct server *s = c->s;
    ssize_t n = read(fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len);

    (void) what;
    if (n <= 0) {
        conn_close(c, false);
        return;
    }
    c->len += (size_t) n;
    c->buf[c->len] = '\0';
    if (s->mode >= SMTP_OK) {
        smtp_input(c);
        return;
    }
    if (!request_complete(c))
        return;
    s->requests++;
    memcpy(s->last_request, c->buf, c->len + 1);
    c->len = 0;
    switch (s->mode) {
    case ANSWER:
        answer(c, 2);
        break;
    case BIG:
        answer(c, 100 << 10);
        break;
    case STALL:
        break;
    case RESET:
        conn_close(c, true);
        break;
    case PICKY:
        if (strncmp(s->last_request, "POST /hook ", 11) != 0)
            answer(c, 2);
        break;
    case SMTP_OK:
    case SMTP_DROP_RCPT:
    case SMTP_DROP_DOT:
        break;
    case GATHER:
        c->held = true;
        if (s->requests == s->gather)
            for (size_t i = 0; i < s->n_conns; i++)
                if (s->conns[i]->held) {
                    s->conns[i]->held = false;
                    answer(s->conns[i], 2);
                }
        break;
    }
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct server *s = arg;
    struct conn *c;
    int cfd = accept(fd, NULL, NULL);

    (void) what;
    if (cfd < 0)
        return;
    assert_true(s->n_conns < CONNS_MAX);
    c = calloc(1, sizeof(*c));
    c->s = s;
    c->fd = cfd;
    c->ev = event_new(s->base, cfd, EV_READ | EV_PERSIST, on_conn, c);
    event_add(c->ev, NULL);
    s->conns[s->n_conns++] = c;
    s->accepted++;
    if (s->mode >= SMTP_OK)
        say(c, "220 test.invalid ESMTP\r\n");
}

static void server_start(struct server *s, struct event_base *base)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    int one = 1;

    memset(s, 0, sizeof(*s));
    s->base = base;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s->lfd >= 0);
    (void) setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    assert_int_equal(bind(s->lfd, (struct sockaddr *) &a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 64), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *) &a, &len), 0);
    s->port = ntohs(a.sin_port);
    s->lev = event_new(base, s->lfd, EV_READ | EV_PERSIST, on_accept, s);
    event_add(s->lev, NULL);
}

static void server_stop(struct server *s)
{
    while (s->n_conns)
        conn_close(s->conns[0], false);
    event_free(s->lev);
    close(s->lfd);
}

/* ---- the client side --------------------------------------------------------- */

struct got {
    int calls;
    long status;
    enum nq_transfer_error error;
    bool timed_out, truncated;
    char retry_after[32], x_id[32];
    char body[64];
    size_t body_len;
    bool in_start; /* set while nq_transfer_start runs */
};

struct fixture {
    struct event_base *base;
    struct server srv;
    struct nq_transfer *t;
    char url[64];
};

static void on_done(const struct nq_transfer_reply *r, void *userdata)
{
    struct got *g = userdata;
    const char *ra = nq_transfer_reply_header(r, "retry-after");
    const char *id = nq_transfer_reply_header(r, "X-ID");

    assert_false(g->in_start);
    g->calls++;
    g->status = r->status;
    g->error = r->error;
    g->timed_out = r->timed_out;
    g->truncated = r->body_truncated;
    snprintf(g->retry_after, sizeof(g->retry_after), "%s", ra ? ra : "");
    snprintf(g->x_id, sizeof(g->x_id), "%s", id ? id : "");
    snprintf(g->body, sizeof(g->body), "%.*s", (int) (r->body_len < 63 ? r->body_len : 63),
             r->body);
    g->body_len = r->body_len;
    if (r->error == NQ_XFER_NONE)
        assert_string_equal(r->error_text, "");
    else
        assert_true(r->error_text[0] != '\0');
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_int_equal(nq_transfer_global_init(), 0);
    f->base = event_base_new();
    server_start(&f->srv, f->base);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u/hook", f->srv.port);
    assert_int_equal(nq_transfer_new(f->base, 8, &f->t), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nq_transfer_free(f->t);
    server_stop(&f->srv);
    event_base_free(f->base);
    free(f);
    nq_transfer_global_done();
    return 0;
}

static const char *const hdrs[] = { "Content-Type: application/json", "X-Test: 1" };

static struct nq_transfer_req post(const struct fixture *f, uint64_t timeout_ms)
{
    return (struct nq_transfer_req){ .url = f->url,
                                     .headers = hdrs,
                                     .n_headers = 2,
                                     .body = "{\"a\":1}",
                                     .body_len = 7,
                                     .timeout_ms = timeout_ms };
}

static void start(struct fixture *f, const struct nq_transfer_req *req, struct got *g)
{
    g->in_start = true;
    assert_int_equal(nq_transfer_start(f->t, req, on_done, g, NULL), 0);
    g->in_start = false;
}

/* Runs the loop until every got in gs has its one call. */
static void run_until(struct fixture *f, struct got *gs, size_t n)
{
    for (int spins = 0; spins < 100000; spins++) {
        size_t done = 0;

        for (size_t i = 0; i < n; i++)
            done += gs[i].calls > 0;
        if (done == n)
            return;
        event_base_loop(f->base, EVLOOP_ONCE);
    }
    fail_msg("transfers did not finish");
}

static void a_reply_comes_with_status_headers_and_body(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 5000);
    struct got g = { 0 };

    start(f, &req, &g);
    run_until(f, &g, 1);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.error, NQ_XFER_NONE);
    assert_string_equal(g.retry_after, "7");
    assert_string_equal(g.x_id, "abc-1");
    assert_string_equal(g.body, "ok");
    /* What went out: our method, headers and body, no Expect. */
    assert_non_null(strstr(f->srv.last_request, "POST /hook HTTP/1.1\r\n"));
    assert_non_null(strstr(f->srv.last_request, "\r\nX-Test: 1\r\n"));
    assert_non_null(strstr(f->srv.last_request, "\r\n\r\n{\"a\":1}"));
    assert_null(strcasestr(f->srv.last_request, "Expect:"));
    assert_int_equal(nq_transfer_running(f->t), 0);
}

static void a_body_over_the_cap_is_cut_not_failed(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 5000);
    struct got g = { 0 };

    f->srv.mode = BIG;
    req.body_max = 1000;
    start(f, &req, &g);
    run_until(f, &g, 1);
    assert_int_equal(g.status, 200);
    assert_int_equal(g.error, NQ_XFER_NONE);
    assert_true(g.truncated);
    assert_int_equal(g.body_len, 1000);
}

static void a_refused_connect_is_not_sent(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 5000);
    struct got g = { 0 };
    char url[64];

    /* The server's port, closed: nobody listens there any more. */
    event_del(f->srv.lev);
    close(f->srv.lfd);
    f->srv.lfd = socket(AF_INET, SOCK_STREAM, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", f->srv.port);
    req.url = url;
    start(f, &req, &g);
    run_until(f, &g, 1);
    assert_int_equal(g.status, 0);
    assert_int_equal(g.error, NQ_XFER_NOT_SENT);
    assert_int_equal(f->srv.requests, 0);
}

static void a_malformed_url_is_not_sent_and_reported_later(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 5000);
    struct got g = { 0 };

    req.url = "ftp://127.0.0.1/x"; /* a protocol we never speak */
    start(f, &req, &g);
    run_until(f, &g, 1);
    assert_int_equal(g.error, NQ_XFER_NOT_SENT);
}

static void a_stall_after_the_request_is_unknown(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 300);
    struct got g = { 0 };

    f->srv.mode = STALL;
    start(f, &req, &g);
    run_until(f, &g, 1);
    assert_int_equal(f->srv.requests, 1); /* it did arrive */
    assert_int_equal(g.status, 0);
    assert_int_equal(g.error, NQ_XFER_UNKNOWN);
    assert_true(g.timed_out);
}

static void a_reset_after_the_request_is_unknown(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 5000);
    struct got g = { 0 };

    f->srv.mode = RESET;
    start(f, &req, &g);
    run_until(f, &g, 1);
    assert_int_equal(f->srv.requests, 1);
    assert_int_equal(g.error, NQ_XFER_UNKNOWN);
    assert_false(g.timed_out);
}

static void transfers_run_at_once_and_reuse_connections(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 10000);
    struct got g[5] = { { 0 } };

    /* The server answers none until all five are in: only transfers in
     * flight together can finish. */
    f->srv.mode = GATHER;
    f->srv.gather = 5;
    for (size_t i = 0; i < 5; i++)
        start(f, &req, &g[i]);
    assert_int_equal(nq_transfer_running(f->t), 5);
    run_until(f, g, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(g[i].status, 200);
    assert_int_equal(f->srv.accepted, 5);

    /* Three more, one after another: the idle connections are reused. */
    f->srv.mode = ANSWER;
    for (size_t i = 0; i < 3; i++) {
        struct got one = { 0 };

        start(f, &req, &one);
        run_until(f, &one, 1);
        assert_int_equal(one.status, 200);
    }
    assert_int_equal(f->srv.accepted, 5);
    assert_int_equal(f->srv.requests, 8);
}

static void past_the_limit_start_says_busy(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 10000);
    struct got g[9] = { { 0 } };

    f->srv.mode = STALL;
    for (size_t i = 0; i < 8; i++)
        start(f, &req, &g[i]);
    assert_int_equal(nq_transfer_start(f->t, &req, on_done, &g[8], NULL), -EBUSY);
    nq_transfer_cancel_all(f->t);
    assert_int_equal(nq_transfer_running(f->t), 0);
    for (int i = 0; i < 20; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    for (size_t i = 0; i < 9; i++)
        assert_int_equal(g[i].calls, 0);
}

struct chain {
    struct fixture *f;
    struct nq_transfer_req req;
    struct got first, second;
    int start_rc;
};

static void on_done_start_next(const struct nq_transfer_reply *r, void *userdata)
{
    struct chain *c = userdata;

    on_done(r, &c->first);
    c->start_rc = nq_transfer_start(c->f->t, &c->req, on_done, &c->second, NULL);
}

static void done_may_reuse_the_slot_it_frees(void **state)
{
    struct fixture *f = *state;
    char first_url[64], next_url[64];
    struct chain c = { .f = f, .req = post(f, 5000), .start_rc = 1 };
    struct nq_transfer_req first = post(f, 5000), stalled = post(f, 5000);
    struct got g[7] = { { 0 } };

    /* Seven transfers to /hook stall; the eighth, to /first, is answered,
     * and its done starts one to /next while all eight slots are taken. */
    f->srv.mode = PICKY;
    snprintf(first_url, sizeof(first_url), "http://127.0.0.1:%u/first", f->srv.port);
    snprintf(next_url, sizeof(next_url), "http://127.0.0.1:%u/next", f->srv.port);
    first.url = first_url;
    c.req.url = next_url;
    for (size_t i = 0; i < 7; i++)
        start(f, &stalled, &g[i]);
    assert_int_equal(nq_transfer_start(f->t, &first, on_done_start_next, &c, NULL), 0);
    assert_int_equal(nq_transfer_running(f->t), 8);
    run_until(f, &c.first, 1);
    assert_int_equal(c.first.status, 200);
    assert_int_equal(c.start_rc, 0);
    run_until(f, &c.second, 1);
    assert_int_equal(c.second.status, 200);
    for (size_t i = 0; i < 7; i++)
        assert_int_equal(g[i].calls, 0);
}

static void a_cancelled_transfer_never_calls_back(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer_req req = post(f, 10000);
    struct got a = { 0 }, b = { 0 };
    struct nq_xfer *x = NULL;

    f->srv.mode = ANSWER;
    assert_int_equal(nq_transfer_start(f->t, &req, on_done, &a, &x), 0);
    start(f, &req, &b);
    nq_transfer_cancel(f->t, x);
    run_until(f, &b, 1);
    for (int i = 0; i < 20; i++)
        event_base_loop(f->base, EVLOOP_NONBLOCK);
    assert_int_equal(a.calls, 0);
    assert_int_equal(b.status, 200);

    /* Freeing the transport with a transfer in flight cancels it too. */
    unsigned before = f->srv.requests;

    f->srv.mode = STALL;
    start(f, &req, &a);
    while (f->srv.requests == before)
        event_base_loop(f->base, EVLOOP_ONCE);
    f->t = nq_transfer_free(f->t);
    assert_int_equal(a.calls, 0);
}

struct smtp_child {
    pid_t pid;
    unsigned short port;
    int fd; /* reports */
};

static void smtp_child_start(struct smtp_child *sc, enum mode mode)
{
    int pfd[2];

    assert_int_equal(pipe(pfd), 0);
    sc->pid = fork();
    assert_true(sc->pid >= 0);
    if (sc->pid == 0) {
        struct event_base *base = event_base_new();
        struct server s;

        close(pfd[0]);
        server_start(&s, base);
        s.mode = mode;
        s.report_fd = pfd[1];
        assert_int_equal(write(pfd[1], &s.port, sizeof(s.port)), (ssize_t) sizeof(s.port));
        event_base_dispatch(base);
        _exit(0);
    }
    close(pfd[1]);
    sc->fd = pfd[0];
    assert_int_equal(read(sc->fd, &sc->port, sizeof(sc->port)), (ssize_t) sizeof(sc->port));
}

/* Stops the child; returns how many messages it got, the last in *last. */
static int smtp_child_stop(struct smtp_child *sc, struct smtp_report *last)
{
    struct smtp_report r;
    int n = 0, status;

    kill(sc->pid, SIGTERM);
    assert_int_equal(waitpid(sc->pid, &status, 0), sc->pid);
    while (read(sc->fd, &r, sizeof(r)) == (ssize_t) sizeof(r)) {
        *last = r;
        n++;
    }
    close(sc->fd);
    return n;
}

static const char *const rcpts[] = { "<bob@example.org>", "<eve@example.org>" };
static const char message[] = "From: a@example.com\r\nTo: bob@example.org\r\n"
                              "Subject: hi\r\n\r\nhello\r\n";

static struct nq_transfer_req mail(const struct smtp_child *sc, char *url, size_t size)
{
    snprintf(url, size, "smtp://127.0.0.1:%u", sc->port);
    return (struct nq_transfer_req){ .url = url,
                                     .body = message,
                                     .body_len = sizeof(message) - 1,
                                     .mail_from = "<a@example.com>",
                                     .rcpt = rcpts,
                                     .n_rcpt = 2,
                                     .timeout_ms = 5000 };
}

/* Sends one message to a child server in mode; returns what the server got. */
static int smtp_send(struct fixture *f, enum mode mode, struct got *g, struct smtp_report *last)
{
    struct smtp_child sc;
    char url[64];
    struct nq_transfer_req req;

    smtp_child_start(&sc, mode);
    req = mail(&sc, url, sizeof(url));
    start(f, &req, g);
    run_until(f, g, 1);
    /* Closes the cached connection (QUIT) while the server still runs. */
    f->t = nq_transfer_free(f->t);
    return smtp_child_stop(&sc, last);
}

static void smtp_delivers_a_message(void **state)
{
    struct fixture *f = *state;
    struct got g = { 0 };
    struct smtp_report last;

    assert_int_equal(smtp_send(f, SMTP_OK, &g, &last), 1);
    assert_int_equal(g.error, NQ_XFER_NONE);
    assert_int_equal(g.status, 250);
    assert_string_equal(last.rcpt, "<bob@example.org><eve@example.org>");
    assert_non_null(strstr(last.message, "Subject: hi\r\n\r\nhello"));
}

static void smtp_dropped_before_the_message_is_not_sent(void **state)
{
    struct fixture *f = *state;
    struct got g = { 0 };
    struct smtp_report last;

    assert_int_equal(smtp_send(f, SMTP_DROP_RCPT, &g, &last), 0);
    assert_int_equal(g.error, NQ_XFER_NOT_SENT);
}

static void smtp_dropped_after_the_final_dot_is_unknown(void **state)
{
    struct fixture *f = *state;
    struct got g = { 0 };
    struct smtp_report last;

    assert_int_equal(smtp_send(f, SMTP_DROP_DOT, &g, &last), 1); /* the server has it */
    assert_int_equal(g.error, NQ_XFER_UNKNOWN);
}

static void http2_is_there_and_the_fd_limit_fits(void **state)
{
    struct fixture *f = *state;
    struct nq_transfer *big = NULL;
    struct rlimit rl;

    (void) f;
    /* HTTP/2 (multiplexed, for APNs) needs a libcurl built with nghttp2. */
    assert_true(curl_version_info(CURLVERSION_NOW)->features & CURL_VERSION_HTTP2);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    rl.rlim_cur = 64;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_int_equal(nq_transfer_new(f->base, 1000, &big), 0);
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(rl.rlim_cur >= (rl.rlim_max < 2256 ? rl.rlim_max : 2256));
    nq_transfer_free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(a_reply_comes_with_status_headers_and_body, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_body_over_the_cap_is_cut_not_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(a_refused_connect_is_not_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(a_malformed_url_is_not_sent_and_reported_later, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_stall_after_the_request_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reset_after_the_request_is_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(transfers_run_at_once_and_reuse_connections, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(past_the_limit_start_says_busy, setup, teardown),
        cmocka_unit_test_setup_teardown(done_may_reuse_the_slot_it_frees, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_transfer_never_calls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(http2_is_there_and_the_fd_limit_fits, setup, teardown),
        cmocka_unit_test_setup_teardown(smtp_delivers_a_message, setup, teardown),
        cmocka_unit_test_setup_teardown(smtp_dropped_before_the_message_is_not_sent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(smtp_dropped_after_the_final_dot_is_unknown, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
