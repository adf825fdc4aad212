/* SPDX-License-Identifier: MIT */
/*
 * libcurl multi on libevent (see transfer.h for the contract).
 *
 * How the loop drives curl: curl tells us, through CURLMOPT_SOCKETFUNCTION,
 * which sockets it waits on and for what; each becomes one persistent
 * libevent event (struct xsock, attached to the socket with
 * curl_multi_assign). Through CURLMOPT_TIMERFUNCTION it asks for one
 * timeout; that is one libevent timer. When a socket is ready or the timer
 * fires we call curl_multi_socket_action for exactly that socket (or
 * CURL_SOCKET_TIMEOUT), then read curl's finished transfers and call their
 * done callbacks. Nothing here waits: curl never gets a chance to block,
 * because it only ever runs inside curl_multi_socket_action on ready sockets.
 *
 * The timer callback never calls curl back (libcurl forbids that); a
 * timeout of 0 arms the libevent timer for "now", so even a transfer that
 * fails at once (a malformed URL) reports from a later loop iteration.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "transfer/transfer.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 10000
#define DEFAULT_TIMEOUT_MS 30000
#define TRANSFERS_MAX 100000u

/* Spelled with three Ls before libcurl 8.2.0 (Debian 12 has 7.88). */
#if LIBCURL_VERSION_NUM >= 0x080200
#define RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLOWFAILS
#else
#define RCPT_ALLOWFAILS CURLOPT_MAIL_RCPT_ALLLOWFAILS
#endif

struct nq_transfer {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    unsigned max, running;
    struct nq_xfer *first; /* in flight, for cancel_all */
};

struct nq_xfer {
    struct nq_transfer *t;
    CURL *easy;
    struct curl_slist *headers, *rcpt;
    nq_transfer_done_fn done;
    void *userdata;
    bool smtp;
    /* HTTP/2: our stream, and the last stream a GOAWAY said the peer
     * processed (streams above it were refused unprocessed, RFC 9113
     * §6.8): curl 7.88 tells that only in its informational text. */
    uint32_t h2_stream, h2_goaway_last;
    bool h2_goaway;
    /* SMTP upload */
    const char *upload;
    size_t upload_len, upload_off;
    /* the reply */
    char *body;
    size_t body_len, body_cap, body_max;
    bool body_truncated;
    struct nq_transfer_header hdrs[NQ_TRANSFER_HEADERS_MAX];
    size_t n_hdrs, hdr_bytes;
    /* SMTP dialogue */
    struct nq_transfer_smtp_step *steps;
    size_t n_steps, steps_cap;
    char errbuf[CURL_ERROR_SIZE];
    struct nq_xfer *prev, *next;
};

/* One socket curl waits on. */
struct xsock {
    struct event *ev;
};

int nq_transfer_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
}

void nq_transfer_global_done(void)
{
    curl_global_cleanup();
}

/* ---- the loop's side ------------------------------------------------------ */

static void check_done(struct nq_transfer *t);

static void socket_action(struct nq_transfer *t, curl_socket_t fd, int flags)
{
    int running = 0;

    (void) curl_multi_socket_action(t->multi, fd, flags, &running);
    check_done(t);
}

static void on_socket_ready(evutil_socket_t fd, short events, void *arg)
{
    int flags =
        ((events & EV_READ) ? CURL_CSELECT_IN : 0) | ((events & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    socket_action(arg, fd, flags);
}

static void on_timeout(evutil_socket_t fd, short events, void *arg)
{
    (void) fd, (void) events;
    socket_action(arg, CURL_SOCKET_TIMEOUT, 0);
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct nq_transfer *t = userp;
    struct xsock *xs = socketp;
    short kind = EV_PERSIST;

    (void) easy;
    if (what == CURL_POLL_REMOVE) {
        if (xs) {
            event_free(xs->ev);
            free(xs);
        }
        return 0;
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (!xs) {
        xs = calloc(1, sizeof(*xs));
        if (!xs)
            return -1;
        xs->ev = event_new(t->base, fd, kind, on_socket_ready, t);
        if (!xs->ev) {
            free(xs);
            return -1;
        }
        curl_multi_assign(t->multi, fd, xs);
    } else {
        event_del(xs->ev);
        if (event_assign(xs->ev, t->base, fd, kind, on_socket_ready, t) < 0)
            return -1;
    }
    return event_add(xs->ev, NULL) < 0 ? -1 : 0;
}

static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct nq_transfer *t = userp;
    struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };

    (void) multi;
    if (timeout_ms < 0)
        return evtimer_del(t->timer) < 0 ? -1 : 0;
    return evtimer_add(t->timer, &tv) < 0 ? -1 : 0;
}

/* ---- the reply -------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t n, void *userdata)
{
    struct nq_xfer *x = userdata;
    size_t len = size * n, keep = len;

    /* Past the cap the rest is read and dropped: aborting would turn a
     * reply we already have into a transport error. */
    if (x->body_len + keep > x->body_max) {
        keep = x->body_max - x->body_len;
        x->body_truncated = true;
    }
    if (keep == 0)
        return len;
    if (x->body_len + keep + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 1024;
        char *b;

        while (cap < x->body_len + keep + 1)
            cap *= 2;
        b = realloc(x->body, cap);
        if (!b)
            return 0; /* CURLE_WRITE_ERROR */
        x->body = b;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, data, keep);
    x->body_len += keep;
    x->body[x->body_len] = '\0';
    return len;
}

static void headers_clear(struct nq_xfer *x)
{
    for (size_t i = 0; i < x->n_hdrs; i++) {
        free(x->hdrs[i].name);
        free(x->hdrs[i].value);
    }
    x->n_hdrs = 0;
    x->hdr_bytes = 0;
}

static char *dup_trimmed(const char *s, size_t n)
{
    char *d;

    while (n && isspace((unsigned char) *s))
        s++, n--;
    while (n && isspace((unsigned char) s[n - 1]))
        n--;
    d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static size_t on_header(char *line, size_t size, size_t n, void *userdata)
{
    struct nq_xfer *x = userdata;
    size_t len = size * n;
    const char *colon = memchr(line, ':', len);
    struct nq_transfer_header *h;

    /* A status line starts a response: only the last one's headers count
     * (a 100 Continue comes before the real one). */
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        headers_clear(x);
        return len;
    }
    if (x->smtp || !colon || x->n_hdrs == NQ_TRANSFER_HEADERS_MAX ||
        x->hdr_bytes + len > NQ_TRANSFER_HEADER_BYTES_MAX)
        return len;
    h = &x->hdrs[x->n_hdrs];
    h->name = dup_trimmed(line, (size_t) (colon - line));
    h->value = dup_trimmed(colon + 1, len - (size_t) (colon - line) - 1);
    if (!h->name || !h->value) {
        free(h->name);
        free(h->value);
        return 0;
    }
    x->n_hdrs++;
    x->hdr_bytes += len;
    return len;
}

/* ---- the SMTP dialogue ------------------------------------------------------ */

/* How we learn each command's reply: libcurl hands the debug callback every
 * command line it sends (CURLINFO_HEADER_OUT) and every reply line it reads
 * (CURLINFO_HEADER_IN), one line a call. SMTP as libcurl speaks it is
 * strictly one command, one reply (it does not pipeline RCPTs), so the
 * final line of a reply (code, then a space or nothing; "250-" lines
 * continue) answers the last command sent that has no reply yet. A reply
 * with no command waiting is the greeting. After DATA's 354 the message
 * and its "." go out as data, not as a command, so the next reply is the
 * one to the message itself: a "." step stands for it. */

static struct nq_transfer_smtp_step *step_add(struct nq_xfer *x, const char *cmd, const char *arg,
                                              size_t arg_len)
{
    struct nq_transfer_smtp_step *st;

    if (x->n_steps == NQ_TRANSFER_SMTP_STEPS_MAX)
        return NULL;
    if (x->n_steps == x->steps_cap) {
        size_t cap = x->steps_cap ? x->steps_cap * 2 : 8;
        struct nq_transfer_smtp_step *v = realloc(x->steps, cap * sizeof(*v));

        if (!v)
            return NULL;
        x->steps = v;
        x->steps_cap = cap;
    }
    st = &x->steps[x->n_steps];
    /* steps is allocated once steps_cap > 0 (n_steps < steps_cap here). */
    /* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker) */
    memset(st, 0, sizeof(*st));
    (void) snprintf(st->cmd, sizeof(st->cmd), "%s", cmd);
    if (arg && !(st->arg = strndup(arg, arg_len)))
        return NULL;
    x->n_steps++;
    return st;
}

static void steps_free(struct nq_xfer *x)
{
    for (size_t i = 0; i < x->n_steps; i++) {
        free(x->steps[i].arg);
        free(x->steps[i].text);
    }
    free(x->steps);
}

/* "RCPT TO:<a@b> NOTIFY=..." -> verb "RCPT", arg "a@b". */
static void smtp_command(struct nq_xfer *x, const char *line, size_t len)
{
    char verb[12];
    size_t n = 0;
    const char *lt, *gt;

    /* After a 334 the line is a SASL response (credentials): never read. */
    if (x->n_steps && x->steps[x->n_steps - 1].code == 334) {
        (void) step_add(x, "AUTH", NULL, 0);
        return;
    }
    while (n < len && n + 1 < sizeof(verb) && isalpha((unsigned char) line[n])) {
        verb[n] = (char) toupper((unsigned char) line[n]);
        n++;
    }
    verb[n] = '\0';
    if (n == 0)
        return;
    lt = memchr(line, '<', len);
    gt = lt ? memchr(lt, '>', len - (size_t) (lt - line)) : NULL;
    if ((strcmp(verb, "RCPT") == 0 || strcmp(verb, "MAIL") == 0) && lt && gt)
        (void) step_add(x, verb, lt + 1, (size_t) (gt - lt - 1));
    else
        (void) step_add(x, verb, NULL, 0);
}

static void smtp_reply_line(struct nq_xfer *x, const char *line, size_t len)
{
    struct nq_transfer_smtp_step *st = x->n_steps ? &x->steps[x->n_steps - 1] : NULL;
    const char *text;
    size_t tlen;

    while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    if (len < 3 || !isdigit((unsigned char) line[0]) || !isdigit((unsigned char) line[1]) ||
        !isdigit((unsigned char) line[2]) || (len > 3 && line[3] == '-'))
        return; /* not a final reply line */
    if (!st || st->code)
        st = step_add(x, "", NULL, 0); /* the greeting */
    if (!st)
        return;
    st->code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    text = len > 4 ? line + 4 : "";
    tlen = len > 4 ? len - 4 : 0;
    if (tlen > NQ_TRANSFER_SMTP_TEXT_MAX)
        tlen = NQ_TRANSFER_SMTP_TEXT_MAX;
    st->text = strndup(text, tlen);
    if (strcmp(st->cmd, "DATA") == 0 && st->code == 354)
        (void) step_add(x, ".", NULL, 0);
}

static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    struct nq_xfer *x = userdata;

    (void) easy;
    if (type != CURLINFO_HEADER_IN && type != CURLINFO_HEADER_OUT)
        return 0;
    while (size > 0) {
        const char *nl = memchr(data, '\n', size);
        size_t n = nl ? (size_t) (nl - data) + 1 : size;

        if (type == CURLINFO_HEADER_OUT)
            smtp_command(x, data, n);
        else
            smtp_reply_line(x, data, n);
        data += n;
        size -= n;
    }
    return 0;
}

/* The number after prefix at the start of s, in ret; false when s does not
 * start with prefix and a number that fits. */
static bool number_after(const char *s, const char *prefix, unsigned long *ret)
{
    size_t n = strlen(prefix);
    char *end;

    if (strncmp(s, prefix, n) != 0)
        return false;
    errno = 0;
    *ret = strtoul(s + n, &end, 10);
    return errno == 0 && end != s + n;
}

/* HTTP/2's informational lines: "Using Stream ID: N" and curl's
 * "recveived GOAWAY, error=E, last_stream=L" (its spelling in 7.88). */
static int on_h2_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    struct nq_xfer *x = userdata;
    char line[128];
    const char *p;
    unsigned long n;

    (void) easy;
    if (type != CURLINFO_TEXT || size >= sizeof(line))
        return 0;
    memcpy(line, data, size);
    line[size] = '\0';
    if (number_after(line, "Using Stream ID:", &n)) {
        x->h2_stream = (uint32_t) n;
    } else if ((p = strstr(line, "GOAWAY, error=")) && (p = strstr(p, "last_stream=")) &&
               number_after(p, "last_stream=", &n)) {
        x->h2_goaway = true;
        x->h2_goaway_last = (uint32_t) n;
    }
    return 0;
}

static size_t on_upload(char *buf, size_t size, size_t n, void *userdata)
{
    struct nq_xfer *x = userdata;
    size_t len = x->upload_len - x->upload_off;

    if (len > size * n)
        len = size * n;
    memcpy(buf, x->upload + x->upload_off, len);
    x->upload_off += len;
    return len;
}

/* Whether any of the request reached the peer's side of the connection,
 * i.e. whether the peer may have acted on it.
 *
 * The rule: errors that by their nature happen before the request is
 * written (resolving, connecting, the TLS handshake, certificate checks,
 * a URL or protocol curl refuses) mean "not sent", whatever the counters say.
 * Otherwise, for HTTP, CURLINFO_REQUEST_SIZE counts the request header bytes
 * curl handed to the connection and CURLINFO_SIZE_UPLOAD_T the body bytes:
 * both 0 means not a byte of the request was written (a connect timeout, a
 * reused connection found dead before writing); anything more and the peer
 * may have the request, even if it never got to answer. For SMTP a message
 * only exists for the server once all of it has been handed over (it is
 * queued on the final "."; RFC 1047): a drop before that loses nothing, a
 * drop after it may have delivered the message. Erring towards "unknown"
 * only costs a counted possible duplicate; erring the other way would hide
 * one. */
static bool request_sent(const struct nq_xfer *x, CURLcode rc)
{
    long req_size = 0;
    curl_off_t up = 0;

    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_USE_SSL_FAILED:
    case CURLE_LOGIN_DENIED:
        return false;
    default:
        break;
    }
    if (x->h2_goaway && x->h2_stream > x->h2_goaway_last)
        return false; /* refused by GOAWAY: never processed */
    (void) curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &req_size);
    (void) curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &up);
    if (x->smtp)
        return x->upload_len > 0 && (size_t) up >= x->upload_len;
    return req_size > 0 || up > 0;
}

static void xfer_unlink(struct nq_transfer *t, struct nq_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        t->first = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

/* Takes x out of the running set: its slot is free again. */
static void xfer_detach(struct nq_xfer *x)
{
    struct nq_transfer *t = x->t;

    xfer_unlink(t, x);
    curl_multi_remove_handle(t->multi, x->easy);
    t->running--;
}

static void xfer_destroy(struct nq_xfer *x)
{
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    curl_slist_free_all(x->rcpt);
    headers_clear(x);
    steps_free(x);
    free(x->body);
    free(x);
}

static void xfer_free(struct nq_xfer *x)
{
    xfer_detach(x);
    xfer_destroy(x);
}

static void finish(struct nq_xfer *x, CURLcode rc)
{
    struct nq_transfer_reply reply = {
        .headers = x->hdrs,
        .n_headers = x->n_hdrs,
        .body = x->body ? x->body : "",
        .body_len = x->body_len,
        .body_truncated = x->body_truncated,
        .error_text = "",
        .smtp = x->steps,
        .n_smtp = x->n_steps,
    };

    (void) curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &reply.status);
    if (!x->smtp && reply.status < 200)
        reply.status = 0; /* an interim 1xx is no answer */
    if (rc != CURLE_OK) {
        reply.error = request_sent(x, rc) ? NQ_XFER_UNKNOWN : NQ_XFER_NOT_SENT;
        reply.timed_out = rc == CURLE_OPERATION_TIMEDOUT;
        reply.tls_refused = rc == CURLE_USE_SSL_FAILED;
        reply.login_denied = rc == CURLE_LOGIN_DENIED;
        reply.error_text = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    }
    /* Detached first, so that done can start the next transfer in the
     * slot this one leaves (the worker refills as jobs finish). */
    xfer_detach(x);
    x->done(&reply, x->userdata);
    xfer_destroy(x);
}

static void check_done(struct nq_transfer *t)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(t->multi, &left))) {
        struct nq_xfer *x = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        (void) curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **) &x);
        finish(x, m->data.result);
    }
}

/* ---- starting and cancelling -------------------------------------------- */

static int set_http(struct nq_xfer *x, const struct nq_transfer_req *req)
{
    CURL *e = x->easy;
    const char *method = req->method ? req->method : req->body ? "POST" : "GET";
    int bad = 0;

    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *l = curl_slist_append(x->headers, req->headers[i]);

        if (!l)
            return -ENOMEM;
        x->headers = l;
    }
    /* No "Expect: 100-continue" wait on large bodies: providers answer
     * quickly, and the wait is a second of latency per request. */
    {
        struct curl_slist *l = curl_slist_append(x->headers, "Expect:");

        if (!l)
            return -ENOMEM;
        x->headers = l;
    }
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (req->body) {
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    }
    if (strcmp(method, req->body ? "POST" : "GET") != 0)
        bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    bad |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                            req->http2_prior_knowledge ? (long) CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE
                                                       : (long) CURL_HTTP_VERSION_2TLS);
    /* Where HTTP/2 is possible, wait for a connection being set up to say
     * whether it multiplexes rather than open another. Not on plain http://:
     * there a connection is HTTP/1.1, but curl would only learn that from
     * its first reply, holding the others back until then. */
    if (!req->http2_prior_knowledge && strncasecmp(req->url, "https://", 8) == 0)
        bad |= curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    /* h2c with prior knowledge (test mocks only): Debian 12's curl 7.88
     * fails a transfer that reuses or waits for such a connection ("Error
     * in the HTTP2 framing layer"), so each gets a connection of its own. */
    if (req->http2_prior_knowledge) {
        bad |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        bad |= curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if (req->http2_prior_knowledge || strncasecmp(req->url, "https://", 8) == 0) {
        bad |= curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_h2_debug);
        bad |= curl_easy_setopt(e, CURLOPT_DEBUGDATA, x);
        bad |= curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    return bad ? -EINVAL : 0;
}

static int set_smtp(struct nq_xfer *x, const struct nq_transfer_req *req)
{
    CURL *e = x->easy;
    int bad = 0;

    x->smtp = true;
    for (size_t i = 0; i < req->n_rcpt; i++) {
        struct curl_slist *l = curl_slist_append(x->rcpt, req->rcpt[i]);

        if (!l)
            return -ENOMEM;
        x->rcpt = l;
    }
    x->upload = req->body ? req->body : "";
    x->upload_len = req->body ? req->body_len : 0;
    bad |= curl_easy_setopt(e, CURLOPT_MAIL_FROM, req->mail_from ? req->mail_from : "");
    bad |= curl_easy_setopt(e, CURLOPT_MAIL_RCPT, x->rcpt);
    bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_READFUNCTION, on_upload);
    bad |= curl_easy_setopt(e, CURLOPT_READDATA, x);
    bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t) x->upload_len);
    if (req->require_tls)
        bad |= curl_easy_setopt(e, CURLOPT_USE_SSL, (long) CURLUSESSL_ALL);
    if (req->rcpt_allow_fails)
        bad |= curl_easy_setopt(e, RCPT_ALLOWFAILS, 1L);
    /* The debug callback is how the dialogue is recorded; curl calls it
     * only in verbose mode, and with it set prints nothing itself. */
    bad |= curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug);
    bad |= curl_easy_setopt(e, CURLOPT_DEBUGDATA, x);
    bad |= curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    if (req->username) {
        bad |= curl_easy_setopt(e, CURLOPT_USERNAME, req->username);
        bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, req->password ? req->password : "");
    }
    return bad ? -EINVAL : 0;
}

static bool is_smtp(const char *url)
{
    return strncasecmp(url, "smtp://", 7) == 0 || strncasecmp(url, "smtps://", 8) == 0;
}

static int set_common(struct nq_xfer *x, const struct nq_transfer_req *req)
{
    CURL *e = x->easy;
    int bad = 0;

    bad |= curl_easy_setopt(e, CURLOPT_URL, req->url);
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https,smtp,smtps");
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    bad |= curl_easy_setopt(
        e, CURLOPT_CONNECTTIMEOUT_MS,
        (long) (req->connect_timeout_ms ? req->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS));
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS,
                            (long) (req->timeout_ms ? req->timeout_ms : DEFAULT_TIMEOUT_MS));
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    if (req->ca_file)
        bad |= curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
    if (req->insecure) {
        bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    return bad ? -EINVAL : 0;
}

int nq_transfer_start(struct nq_transfer *t, const struct nq_transfer_req *req,
                      nq_transfer_done_fn done, void *userdata, struct nq_xfer **ret)
{
    struct nq_xfer *x;
    int r;

    if (t->running >= t->max)
        return -EBUSY;
    x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    x->t = t;
    x->done = done;
    x->userdata = userdata;
    x->body_max = req->body_max ? req->body_max : NQ_TRANSFER_BODY_MAX_DEFAULT;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return -ENOMEM;
    }
    r = set_common(x, req);
    if (r >= 0)
        r = is_smtp(req->url) ? set_smtp(x, req) : set_http(x, req);
    if (r >= 0 && curl_multi_add_handle(t->multi, x->easy) != CURLM_OK)
        r = -ENOMEM;
    if (r < 0) {
        curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->headers);
        curl_slist_free_all(x->rcpt);
        free(x);
        return r;
    }
    x->next = t->first;
    if (t->first)
        t->first->prev = x;
    t->first = x;
    t->running++;
    if (ret)
        *ret = x;
    return 0;
}

void nq_transfer_cancel(struct nq_transfer *t, struct nq_xfer *x)
{
    (void) t;
    if (x)
        xfer_free(x);
}

void nq_transfer_cancel_all(struct nq_transfer *t)
{
    while (t->first)
        xfer_free(t->first);
}

unsigned nq_transfer_running(const struct nq_transfer *t)
{
    return t->running;
}

/* A socket per transfer, and some to spare: systemd's services start with a
 * soft limit of 1024 descriptors and a far higher hard one, which a process
 * needing more is meant to raise itself. Best effort: without it, the
 * transfers past the limit fail to connect (not sent) and are retried. */
static void raise_fd_limit(unsigned max_transfers)
{
    struct rlimit rl;
    rlim_t want = (rlim_t) max_transfers * 2 + 256;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    (void) setrlimit(RLIMIT_NOFILE, &rl);
}

int nq_transfer_new(struct event_base *base, unsigned max_transfers, struct nq_transfer **ret)
{
    struct nq_transfer *t;
    int bad = 0;

    if (max_transfers == 0 || max_transfers > TRANSFERS_MAX)
        return -EINVAL;
    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    raise_fd_limit(max_transfers);
    t->base = base;
    t->max = max_transfers;
    t->multi = curl_multi_init();
    t->timer = evtimer_new(base, on_timeout, t);
    if (!t->multi || !t->timer) {
        nq_transfer_free(t);
        return -ENOMEM;
    }
    bad |= curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    bad |= curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    bad |= curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    bad |= curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    bad |= curl_multi_setopt(t->multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
    /* Keep a connection per possible transfer so that the next ones reuse
     * them instead of reconnecting. */
    bad |= curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, (long) max_transfers);
    if (bad) {
        nq_transfer_free(t);
        return -EINVAL;
    }
    *ret = t;
    return 0;
}

struct nq_transfer *nq_transfer_free(struct nq_transfer *t)
{
    if (!t)
        return NULL;
    if (t->multi) {
        nq_transfer_cancel_all(t);
        /* Closes the cached connections; their sockets' events go through
         * CURL_POLL_REMOVE first. */
        curl_multi_cleanup(t->multi);
    }
    if (t->timer)
        event_free(t->timer);
    free(t);
    return NULL;
}

/* ---- helpers on replies ------------------------------------------------------ */

const char *nq_transfer_reply_header(const struct nq_transfer_reply *reply, const char *name)
{
    for (size_t i = 0; i < reply->n_headers; i++)
        if (strcasecmp(reply->headers[i].name, name) == 0)
            return reply->headers[i].value;
    return NULL;
}

int nq_transfer_http_date(const char *s, int64_t *ret)
{
    time_t when;

    /* curl_getdate reads every form RFC 9110 asks recipients to accept
     * (and more); each of them names a month. */
    if (!strpbrk(s, "JFMASONDjfmasond"))
        return -EINVAL;
    when = curl_getdate(s, NULL);
    if (when == (time_t) -1)
        return -EINVAL;
    *ret = (int64_t) when;
    return 0;
}
