/* SPDX-License-Identifier: MIT */
/*
 * The HTTP server: libmicrohttpd with one internal thread, the route table,
 * bearer-token auth (role read or admin), the per-token rate limit and the
 * request body cap. Tokens are compared as SHA-256 digests with
 * CRYPTO_memcmp, every configured one each time, so neither the time taken
 * nor an early exit says how much of a guess was right; a token is never
 * logged or echoed.
 */
#include "config.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "admin/internal.h"
#include "common/cleanup.h"
#include "common/log.h"

NQ_DEFINE_CLEANUP(FILE *, fclose)

/* What a route needs of the caller. */
enum need { NEED_NONE, NEED_READ, NEED_ADMIN, NEED_METRICS };

typedef void (*route_fn)(struct api *a, const struct api_req *rq, struct api_reply *rep);

struct route {
    const char *method;
    const char *pattern; /* "{}" matches one path segment, captured in order */
    enum need need;
    route_fn fn;
};

static const struct route routes[] = {
    { "GET", "/health", NEED_NONE, api_health },
    { "GET", "/health/live", NEED_NONE, api_live },
    { "GET", "/metrics", NEED_METRICS, api_metrics },
    { "GET", "/api/v1/queues", NEED_READ, api_queues_list },
    { "GET", "/api/v1/queues/{}", NEED_READ, api_queue_get },
    { "POST", "/api/v1/queues/{}/pause", NEED_ADMIN, api_queue_pause },
    { "POST", "/api/v1/queues/{}/resume", NEED_ADMIN, api_queue_resume },
    { "POST", "/api/v1/queues/{}/clean", NEED_ADMIN, api_queue_clean },
    { "POST", "/api/v1/queues/{}/jobs", NEED_ADMIN, api_jobs_add },
    { "GET", "/api/v1/queues/{}/jobs", NEED_READ, api_jobs_list },
    { "GET", "/api/v1/queues/{}/jobs/{}", NEED_READ, api_job_get },
    { "DELETE", "/api/v1/queues/{}/jobs/{}", NEED_ADMIN, api_job_delete },
    { "POST", "/api/v1/queues/{}/jobs/{}/retry", NEED_ADMIN, api_job_retry },
};

/* Per connection, between libmicrohttpd's calls for one request. */
struct upload {
    char *buf;
    size_t len;
    bool too_big;
};

/* Configured tokens' digests: computed once, in the child. */
static unsigned char (*token_digests)[32];

static void digest(const char *s, size_t len, unsigned char out[32])
{
    unsigned int n = 32;

    if (!EVP_Digest(s, len, out, &n, EVP_sha256(), NULL))
        memset(out, 0, 32); /* matches nothing: configured ones are never all-zero */
}

void api_json(struct api_reply *rep, unsigned status, json_t *body_take)
{
    json_decref(rep->json);
    rep->status = body_take ? status : 500;
    rep->json = body_take ? body_take : json_pack("{s:s}", "error", "out of memory");
}

void api_error(struct api_reply *rep, unsigned status, const char *field, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    json_t *o;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    o = json_pack("{s:s}", "error", msg);
    if (o && field && json_object_set_new(o, "field", json_string(field)) < 0)
        o = (json_decref(o), NULL);
    api_json(rep, status, o);
}

/* Index of the token presented, -1 none, -2 one that matches nothing. */
static int authenticate(struct api *a, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    unsigned char d[32];
    int found = -1;

    if (!h)
        return -1;
    if (strncasecmp(h, "Bearer ", 7) != 0)
        return -2;
    h += 7;
    while (*h == ' ')
        h++;
    digest(h, strlen(h), d);
    for (size_t i = 0; i < a->cfg->http.n_tokens; i++)
        if (CRYPTO_memcmp(d, token_digests[i], 32) == 0 && found < 0)
            found = (int) i;
    return found < 0 ? -2 : found;
}

/* 0, or the seconds to wait when the token used up its window. */
static unsigned rate_limited(struct api *a, int token)
{
    const struct nq_rate_limit_cfg *rl = &a->cfg->http.rate_limit;
    struct api_bucket *b = &a->buckets[token];
    uint64_t now = api_mono_ms();

    if (rl->max == 0)
        return 0;
    if (now - b->window_start_ms >= rl->duration_ms || b->used == 0) {
        b->window_start_ms = now;
        b->used = 0;
    }
    if (b->used < rl->max) {
        b->used++;
        return 0;
    }
    return (unsigned) ((b->window_start_ms + rl->duration_ms - now + 999) / 1000);
}

/* Splits path into segments in place; returns how many (at most max). */
static size_t split(char *path, char **segs, size_t max)
{
    size_t n = 0;

    for (char *p = path; *p && n <= max;) {
        while (*p == '/')
            *p++ = '\0';
        if (!*p)
            break;
        if (n == max)
            return max + 1;
        segs[n++] = p;
        while (*p && *p != '/')
            p++;
    }
    return n;
}

static bool match(const char *pattern, char **segs, size_t n, const char **params)
{
    char buf[64], *ps[8];
    size_t np, k = 0;

    (void) snprintf(buf, sizeof(buf), "%s", pattern);
    np = split(buf, ps, 8);
    if (np != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(ps[i], "{}") == 0)
            params[k++] = segs[i];
        else if (strcmp(ps[i], segs[i]) != 0)
            return false;
    }
    return true;
}

/* Whether the caller may go on; fills rep when not. */
static bool authorize(struct api *a, const struct api_req *rq, enum need need,
                      struct api_reply *rep)
{
    int t;
    unsigned wait;

    if (need == NEED_NONE || (need == NEED_METRICS && !a->cfg->http.metrics_auth))
        return true;
    t = authenticate(a, rq->conn);
    if (t < 0) {
        api_error(rep, 401, NULL, t == -1 ? "a bearer token is required" : "invalid token");
        return false;
    }
    if (need == NEED_ADMIN && a->cfg->http.tokens[t].role != NQ_HTTP_ROLE_ADMIN) {
        api_error(rep, 403, NULL, "this token's role is read; admin is needed");
        return false;
    }
    wait = rate_limited(a, t);
    if (wait) {
        api_error(rep, 429, NULL, "rate limit of this token reached (%u per %llu ms)",
                  a->cfg->http.rate_limit.max,
                  (unsigned long long) a->cfg->http.rate_limit.duration_ms);
        rep->retry_after_s = wait;
        return false;
    }
    return true;
}

static void dispatch(struct api *a, const char *url, struct api_req *rq, struct api_reply *rep)
{
    nq_autofree char *path = strdup(url);
    char *segs[8], allow[64] = "";
    size_t n;

    if (!path) {
        api_json(rep, 500, NULL);
        return;
    }
    n = split(path, segs, 8);
    for (size_t i = 0; i < NQ_ELEMENTSOF(routes); i++) {
        const struct route *r = &routes[i];
        const char *params[2] = { NULL, NULL };

        if (!match(r->pattern, segs, n, params))
            continue;
        if (strcmp(r->method, rq->method) != 0) {
            size_t len = strlen(allow);
            (void) snprintf(allow + len, sizeof(allow) - len, "%s%s", len ? ", " : "", r->method);
            continue;
        }
        rq->params[0] = params[0];
        rq->params[1] = params[1];
        if (authorize(a, rq, r->need, rep))
            r->fn(a, rq, rep);
        return;
    }
    if (allow[0])
        api_error(rep, 405, NULL, "method %s not allowed here; allowed: %s", rq->method, allow);
    else
        api_error(rep, 404, NULL, "no such route");
}

static enum MHD_Result send_reply(struct MHD_Connection *conn, struct api_reply *rep)
{
    const char *type = rep->content_type ? rep->content_type : "application/json";
    struct MHD_Response *res;
    enum MHD_Result ret;
    char retry[16];

    if (rep->text) {
        res = MHD_create_response_from_buffer(rep->text_len, rep->text, MHD_RESPMEM_MUST_FREE);
        if (res)
            rep->text = NULL;
    } else {
        char *body = rep->json ? json_dumps(rep->json, JSON_COMPACT) : NULL;

        if (!body)
            return MHD_NO;
        res = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
        if (!res)
            free(body);
    }
    if (!res)
        return MHD_NO;
    (void) MHD_add_response_header(res, "Content-Type", type);
    (void) MHD_add_response_header(res, "Cache-Control", "no-store");
    if (rep->retry_after_s) {
        (void) snprintf(retry, sizeof(retry), "%u", rep->retry_after_s);
        (void) MHD_add_response_header(res, "Retry-After", retry);
    }
    ret = MHD_queue_response(conn, rep->status, res);
    MHD_destroy_response(res);
    return ret;
}

static enum MHD_Result reply_and_free(struct MHD_Connection *conn, struct api_reply *rep)
{
    enum MHD_Result r = send_reply(conn, rep);

    json_decref(rep->json);
    free(rep->text);
    return r;
}

/* A declared length over the cap is refused before the body is read. */
static bool declared_too_big(struct api *a, struct MHD_Connection *conn)
{
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
    char *end;
    unsigned long long n;

    if (!cl)
        return false;
    errno = 0;
    n = strtoull(cl, &end, 10);
    return errno == ERANGE || (end != cl && n > a->cfg->http.max_body);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    struct api *a = cls;
    struct upload *up = *req_cls;
    struct api_reply rep = { .status = 200 };
    struct api_req rq = { .conn = conn, .method = method, .body = "" };

    (void) version;
    if (!up) {
        up = calloc(1, sizeof(*up));
        if (!up)
            return MHD_NO;
        *req_cls = up;
        if (!declared_too_big(a, conn))
            return MHD_YES;
        up->too_big = true;
        api_error(&rep, 413, NULL, "request body larger than %u bytes (http.max_body)",
                  a->cfg->http.max_body);
        return reply_and_free(conn, &rep);
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;

        *upload_data_size = 0;
        if (up->too_big || up->len + n > a->cfg->http.max_body) {
            up->too_big = true;
            return MHD_YES;
        }
        char *b = realloc(up->buf, up->len + n + 1);
        if (!b)
            return MHD_NO;
        memcpy(b + up->len, upload_data, n);
        up->buf = b;
        up->len += n;
        up->buf[up->len] = '\0';
        return MHD_YES;
    }
    if (up->too_big) {
        api_error(&rep, 413, NULL, "request body larger than %u bytes (http.max_body)",
                  a->cfg->http.max_body);
        return reply_and_free(conn, &rep);
    }
    if (up->buf) {
        rq.body = up->buf;
        rq.body_len = up->len;
    }
    a->requests++;
    dispatch(a, url, &rq, &rep);
    return reply_and_free(conn, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct upload *up = *req_cls;

    (void) cls;
    (void) conn;
    (void) toe;
    if (up) {
        free(up->buf);
        free(up);
        *req_cls = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    size_t n;

    (void) cls;
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    n = strlen(msg);
    while (n && msg[n - 1] == '\n')
        msg[--n] = '\0';
    nq_log(LOG_WARNING, "http server: %s", msg);
}

#define PEM_MAX ((size_t) 1 << 20)

/* Reads a PEM file whole, NUL-terminated, for libmicrohttpd. */
static int read_pem(const char *path, char **ret, struct nq_err *err)
{
    NQ_CLEANUP(fclosep) FILE *f = fopen(path, "re");
    char *buf;
    size_t n;

    if (!f)
        return nq_err_set(err, -errno, "http.tls: %s: %s", path, strerror(errno));
    buf = calloc(1, PEM_MAX + 1);
    if (!buf)
        return nq_err_set(err, -ENOMEM, "out of memory");
    n = fread(buf, 1, PEM_MAX, f);
    if (n == 0 || n == PEM_MAX) {
        free(buf);
        return nq_err_set(err, -EINVAL, "http.tls: %s: empty or larger than 1 MiB", path);
    }
    *ret = buf;
    return 0;
}

/* "HOST:PORT" or "[V6]:PORT" (checked by the config) to an address. */
static int resolve(const char *listen, struct addrinfo **ret, struct nq_err *err)
{
    nq_autofree char *host = strdup(listen);
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV };
    char *port, *h;
    int r;

    if (!host)
        return nq_err_set(err, -ENOMEM, "out of memory");
    port = strrchr(host, ':');
    *port++ = '\0';
    h = host;
    if (h[0] == '[') {
        h++;
        h[strlen(h) - 1] = '\0';
    }
    r = getaddrinfo(h, port, &hints, ret);
    if (r != 0)
        return nq_err_set(err, -EINVAL, "http.listen: %s: %s", listen, gai_strerror(r));
    return 0;
}

int api_server_start(struct api *a, struct nq_err *err)
{
    const struct nq_http_cfg *h = &a->cfg->http;
    struct addrinfo *ai = NULL;
    nq_autofree char *cert = NULL, *key = NULL;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
    int r;

    token_digests = calloc(h->n_tokens + 1, sizeof(*token_digests));
    if (!token_digests)
        return nq_err_set(err, -ENOMEM, "out of memory");
    for (size_t i = 0; i < h->n_tokens; i++)
        digest(h->tokens[i].secret, strlen(h->tokens[i].secret), token_digests[i]);
    if (h->tls.cert_file) {
        r = read_pem(h->tls.cert_file, &cert, err);
        if (r == 0)
            r = read_pem(h->tls.key_file, &key, err);
        if (r < 0)
            return r;
        flags |= MHD_USE_TLS;
    }
    r = resolve(h->listen, &ai, err);
    if (r < 0)
        return r;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* SO_REUSEPORT: a reload's new http child listens while the old one
     * still finishes its requests. */
    a->mhd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_access, a, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int) 1, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned int) ((h->timeout_ms + 999) / 1000), MHD_OPTION_CONNECTION_LIMIT,
        (unsigned int) 256, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, a,
        cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cert, MHD_OPTION_HTTPS_MEM_KEY, key,
        MHD_OPTION_END);
    r = errno;
    freeaddrinfo(ai);
    if (!a->mhd)
        return nq_err_set(err, -(r ? r : EINVAL), "http: cannot listen on %s%s: %s", h->listen,
                          cert ? " with TLS" : "", strerror(r ? r : EINVAL));
    nq_log(LOG_INFO, "http server listening on %s%s, %zu tokens", h->listen, cert ? " (TLS)" : "",
           h->n_tokens);
    return 0;
}

void api_server_stop(struct api *a)
{
    uint64_t until = api_mono_ms() + 2000;
    MHD_socket fd;

    if (a->mhd) {
        /* Stop accepting, let requests in progress finish (idle keep-alive
         * connections only wait out the grace). */
        fd = MHD_quiesce_daemon(a->mhd);
        while (api_mono_ms() < until) {
            const union MHD_DaemonInfo *i =
                MHD_get_daemon_info(a->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
            if (!i || i->num_connections == 0)
                break;
            (void) usleep(20000);
        }
        MHD_stop_daemon(a->mhd);
        if (fd != MHD_INVALID_SOCKET)
            (void) close(fd);
        a->mhd = NULL;
    }
    free(token_digests);
    token_digests = NULL;
}
