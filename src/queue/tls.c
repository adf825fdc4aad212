/* SPDX-License-Identifier: MIT */
/*
 * TLS to Redis (rediss://, redis.tls): an in-process relay. See internal.h.
 *
 * Why a relay. Debian 12's hiredis (0.14) has no TLS, and its async
 * context reads and writes its socket itself, with no hook for another
 * transport. The choices were:
 *   - hiredis 1.x with hiredis_ssl from bookworm-backports: not Debian 12's
 *     own package (the project promises those), another soname, and a
 *     backports pin for a library every worker links;
 *   - our own Redis connection over libevent's bufferevent_openssl with
 *     hiredis's reply reader: the cleanest wire path, but it replaces the
 *     whole async layer the store is built on (callback queue, disconnect
 *     and free semantics, the control tool's blocking context) for one
 *     transport, and every store operation would ride on new code;
 *   - this relay: hiredis keeps talking plain RESP over a local stream
 *     socket, and a bufferevent_openssl pair on the same libevent loop
 *     moves the bytes to and from the TLS connection. The store changes
 *     only where it connects; OpenSSL does the verification (chain against
 *     ca_file or the system's CAs, host name or IP address, SNI).
 * The cost is one extra local hop per command (a write and a read on a
 * unix socket) next to TLS's own cost, and no hiredis feature is lost.
 *
 * The local socket: the worker's hiredis can only connect to a path (0.14
 * has no async context over a given fd), so each connection binds a
 * listener in a fresh mode-0700 directory, lets hiredis connect (a unix
 * connect completes at once), accepts, and removes the socket and the
 * directory before returning: nothing stays on disk, and no other user
 * can reach it meanwhile. notifyqctl's blocking context takes a socketpair
 * (redisConnectFd), and the relay runs on a thread of its own.
 *
 * A handshake that fails (an unknown CA, a name the certificate does not
 * hold, a refused client certificate) is reported with OpenSSL's reason
 * before the local socket is closed, so the caller says why rather than
 * "connection closed".
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "queue/internal.h"

struct nq_tls {
    SSL_CTX *ctx;
    char *server_name; /* NULL: the host connected to */
    bool verify;
};

struct nq_tls_relay {
    struct bufferevent *local;  /* hiredis's peer */
    struct bufferevent *remote; /* the TLS connection to Redis */
    nq_tls_event_fn cb;
    void *userdata;
    bool up, failed; /* reported */
    bool cert_asked; /* the server asked for a client certificate we do not have */
    bool answered;   /* bytes came from the server: it accepted us */
};

/* The last OpenSSL error, or fallback. */
static void openssl_reason(char *buf, size_t size, const char *fallback)
{
    unsigned long e = ERR_peek_last_error();

    if (e)
        ERR_error_string_n(e, buf, size);
    else
        (void) snprintf(buf, size, "%s", fallback);
    ERR_clear_error();
}

/* The server asks for a client certificate and none is configured: with
 * TLS 1.3 its refusal comes after our handshake, and may be lost. */
static int on_cert_asked(SSL *ssl, X509 **x509, EVP_PKEY **pkey)
{
    struct nq_tls_relay *r = SSL_get_app_data(ssl);

    (void) x509, (void) pkey;
    if (r)
        r->cert_asked = true;
    return 0; /* none: the server decides (tls-auth-clients optional accepts) */
}

int nq_tls_new(const struct nq_redis_tls_cfg *cfg, struct nq_tls **ret, struct nq_err *err)
{
    struct nq_tls *t = calloc(1, sizeof(*t));
    const char *what = NULL;

    if (!t || !(t->ctx = SSL_CTX_new(TLS_client_method())) ||
        (cfg->server_name && !(t->server_name = strdup(cfg->server_name)))) {
        nq_tls_free(t);
        return -ENOMEM;
    }
    t->verify = cfg->verify;
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(t->ctx, cfg->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (cfg->ca_file ? SSL_CTX_load_verify_locations(t->ctx, cfg->ca_file, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(t->ctx) != 1)
        what = cfg->ca_file ? cfg->ca_file : "the system's CA certificates";
    else if (cfg->cert_file && SSL_CTX_use_certificate_chain_file(t->ctx, cfg->cert_file) != 1)
        what = cfg->cert_file;
    else if (cfg->key_file &&
             (SSL_CTX_use_PrivateKey_file(t->ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1 ||
              SSL_CTX_check_private_key(t->ctx) != 1))
        what = cfg->key_file;
    if (!cfg->cert_file)
        SSL_CTX_set_client_cert_cb(t->ctx, on_cert_asked);
    if (what) {
        char why[256];
        openssl_reason(why, sizeof(why), "unreadable");
        nq_tls_free(t);
        return nq_err_set(err, -EINVAL, "redis TLS: %s: %s", what, why);
    }
    *ret = t;
    return 0;
}

struct nq_tls *nq_tls_free(struct nq_tls *t)
{
    if (!t)
        return NULL;
    SSL_CTX_free(t->ctx);
    free(t->server_name);
    free(t);
    return NULL;
}

/* ---- the relay ------------------------------------------------------------ */

static void report(struct nq_tls_relay *r, int k, const char *why)
{
    if (r->failed || (k == 0 && r->up))
        return;
    r->up = r->up || k == 0;
    r->failed = k < 0;
    if (r->cb)
        r->cb(r->userdata, k, why);
}

static void close_local(struct nq_tls_relay *r)
{
    if (r->local)
        bufferevent_free(r->local);
    r->local = NULL;
}

static void close_remote(struct nq_tls_relay *r)
{
    if (r->remote)
        bufferevent_free(r->remote); /* frees the SSL too */
    r->remote = NULL;
}

static void on_local_read(struct bufferevent *bev, void *arg)
{
    struct nq_tls_relay *r = arg;

    if (r->remote)
        evbuffer_add_buffer(bufferevent_get_output(r->remote), bufferevent_get_input(bev));
}

static void on_remote_read(struct bufferevent *bev, void *arg)
{
    struct nq_tls_relay *r = arg;

    r->answered = true;
    if (r->local)
        evbuffer_add_buffer(bufferevent_get_output(r->local), bufferevent_get_input(bev));
}

/* Once what Redis sent last reached hiredis, hiredis sees the close. */
static void on_local_drained(struct bufferevent *bev, void *arg)
{
    (void) bev;
    close_local(arg);
}

static void on_local_event(struct bufferevent *bev, short what, void *arg)
{
    struct nq_tls_relay *r = arg;

    (void) bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) { /* hiredis closed */
        close_local(r);
        close_remote(r);
    }
}

/* OpenSSL's error for bev: libevent keeps OpenSSL's errors and, among
 * them, SSL_get_error() codes (small numbers, no library), skipped here. */
static unsigned long openssl_error(struct bufferevent *bev)
{
    unsigned long e, found = 0;

    while ((e = bufferevent_get_openssl_error(bev)))
        if (!found && ERR_GET_LIB(e) != 0)
            found = e;
    return found;
}

/* Why the handshake or the session failed, in OpenSSL's words. Returns
 * whether TLS itself failed (not a plain close or socket error). */
static bool remote_reason(struct nq_tls_relay *r, struct bufferevent *bev, short what, char *buf,
                          size_t size)
{
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    long v = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    int sock_err = EVUTIL_SOCKET_ERROR();
    unsigned long e = openssl_error(bev);

    if (v != X509_V_OK)
        (void) snprintf(buf, size, "certificate verify failed: %s",
                        X509_verify_cert_error_string(v));
    else if (r->cert_asked && !r->answered) /* the alert saying so may be lost to a reset */
        (void) snprintf(buf, size,
                        "the server requires a client certificate (redis.tls.cert_file and "
                        "key_file)");
    else if (e)
        ERR_error_string_n(e, buf, size);
    else if ((what & BEV_EVENT_ERROR) && sock_err)
        (void) snprintf(buf, size, "%s", evutil_socket_error_to_string(sock_err));
    else
        (void) snprintf(buf, size, "connection closed");
    ERR_clear_error();
    return v != X509_V_OK || e || (r->cert_asked && !r->answered);
}

static void on_remote_event(struct bufferevent *bev, short what, void *arg)
{
    struct nq_tls_relay *r = arg;
    char why[256];

    if (what & BEV_EVENT_CONNECTED) {
        report(r, 0, NULL);
        return;
    }
    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
        return;
    /* A session that was up and ends without a TLS error is a plain close
     * (a Redis restart), which hiredis reports. One ended by an alert is
     * reported: with TLS 1.3 a server refuses a client certificate only
     * after the handshake completed on our side. */
    if (remote_reason(r, bev, what, why, sizeof(why)) || !r->up)
        report(r, -ECONNREFUSED, why);
    close_remote(r);
    if (r->local && evbuffer_get_length(bufferevent_get_output(r->local)) > 0) {
        bufferevent_setcb(r->local, NULL, on_local_drained, on_local_event, r);
        bufferevent_disable(r->local, EV_READ);
    } else {
        close_local(r);
    }
}

static bool is_ip(const char *s)
{
    unsigned char buf[sizeof(struct in6_addr)];

    return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* An SSL for host: SNI and the name checked (a name, or an IP address). */
static SSL *new_ssl(struct nq_tls *t, const char *host)
{
    const char *name = t->server_name ? t->server_name : host;
    SSL *ssl = SSL_new(t->ctx);

    if (!ssl)
        return NULL;
    if (!is_ip(name) && SSL_set_tlsext_host_name(ssl, name) != 1)
        goto fail;
    if (t->verify) {
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        int ok = is_ip(name) ? X509_VERIFY_PARAM_set1_ip_asc(p, name)
                             : X509_VERIFY_PARAM_set1_host(p, name, 0);
        if (ok != 1)
            goto fail;
    }
    return ssl;
fail:
    SSL_free(ssl);
    return NULL;
}

struct nq_tls_relay *nq_tls_relay_new(struct event_base *base, struct nq_tls *t, int fd,
                                      const char *host, uint16_t port, nq_tls_event_fn cb,
                                      void *userdata)
{
    struct nq_tls_relay *r = calloc(1, sizeof(*r));
    SSL *ssl = NULL;

    if (!r) {
        close(fd);
        return NULL;
    }
    r->cb = cb;
    r->userdata = userdata;
    r->local = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!r->local) {
        close(fd);
        return nq_tls_relay_free(r);
    }
    if ((ssl = new_ssl(t, host)))
        SSL_set_app_data(ssl, r);
    if (!ssl || !(r->remote = bufferevent_openssl_socket_new(
                      base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE))) {
        SSL_free(ssl);
        return nq_tls_relay_free(r);
    }
    bufferevent_openssl_set_allow_dirty_shutdown(r->remote, 1);
    bufferevent_setcb(r->local, on_local_read, NULL, on_local_event, r);
    bufferevent_setcb(r->remote, on_remote_read, NULL, on_remote_event, r);
    bufferevent_enable(r->local, EV_READ | EV_WRITE);
    bufferevent_enable(r->remote, EV_READ | EV_WRITE);
    /* Resolves with getaddrinfo, as hiredis does for a plain connection. */
    if (bufferevent_socket_connect_hostname(r->remote, NULL, AF_UNSPEC, host, port) < 0) {
        close_remote(r); /* hiredis sees the close; the caller the reason */
        close_local(r);
        report(r, -EHOSTUNREACH, "cannot resolve or connect");
    }
    return r;
}

struct nq_tls_relay *nq_tls_relay_free(struct nq_tls_relay *r)
{
    if (!r)
        return NULL;
    close_local(r);
    close_remote(r);
    free(r);
    return NULL;
}

/* ---- hiredis async through a relay ------------------------------------------ */

/* A listening socket in a fresh private directory; *ret_path names it. */
static int private_listener(char dir[64], char path[80])
{
    const char *tmp = getenv("TMPDIR");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    if (!tmp || !*tmp || strlen(tmp) > 40)
        tmp = "/tmp";
    (void) snprintf(dir, 64, "%s/notifyq-tls-XXXXXX", tmp);
    if (!mkdtemp(dir))
        return -errno;
    (void) snprintf(path, 80, "%s/s", dir);
    (void) snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0 || listen(fd, 1) < 0) {
        int e = -errno;
        if (fd >= 0)
            close(fd);
        (void) unlink(path);
        (void) rmdir(dir);
        return e;
    }
    return fd;
}

redisAsyncContext *nq_tls_async_connect(struct event_base *base, struct nq_tls *t, const char *host,
                                        uint16_t port, nq_tls_event_fn cb, void *userdata,
                                        struct nq_tls_relay **ret_relay, char *why, size_t why_size)
{
    char dir[64], path[80];
    int lfd = private_listener(dir, path), fd = -1;
    redisAsyncContext *ac = NULL;

    *ret_relay = NULL;
    if (lfd < 0) {
        (void) snprintf(why, why_size, "TLS relay socket: %s", strerror(-lfd));
        return NULL;
    }
    ac = redisAsyncConnectUnix(path);
    if (ac && !ac->err)
        fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    (void) unlink(path);
    (void) rmdir(dir);
    close(lfd);
    if (!ac || ac->err || fd < 0) {
        (void) snprintf(why, why_size, "TLS relay socket: %s",
                        !ac       ? "out of memory"
                        : ac->err ? ac->errstr
                                  : strerror(errno));
        if (ac)
            redisAsyncFree(ac);
        return NULL;
    }
    *ret_relay = nq_tls_relay_new(base, t, fd, host, port, cb, userdata);
    if (!*ret_relay) {
        (void) snprintf(why, why_size, "TLS: out of memory");
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* ---- a blocking context through a relay on its own thread -------------------- */

struct nq_tls_thread {
    pthread_t thread;
    bool started;
    struct event_base *base;
    struct nq_tls_relay *relay;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* 1 handshaking, 0 up, < 0 failed */
    char why[256];
};

static void on_thread_event(void *userdata, int r, const char *why)
{
    struct nq_tls_thread *th = userdata;

    pthread_mutex_lock(&th->mu);
    th->state = r;
    if (why)
        (void) snprintf(th->why, sizeof(th->why), "%s", why);
    pthread_cond_signal(&th->cv);
    pthread_mutex_unlock(&th->mu);
}

static void *run_thread(void *arg)
{
    struct nq_tls_thread *th = arg;

    /* Returns once the relay closed both sides: nothing left to wait on. */
    (void) event_base_dispatch(th->base);
    return NULL;
}

/* Waits for the handshake; returns 0 or the error with why set. */
static int wait_handshake(struct nq_tls_thread *th, uint64_t timeout_ms, char *why, size_t size)
{
    struct timespec until;
    int r = 0;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += (time_t) (timeout_ms / 1000);
    until.tv_nsec += (long) (timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_mutex_lock(&th->mu);
    while (th->state == 1 && r == 0)
        r = pthread_cond_timedwait(&th->cv, &th->mu, &until);
    int state = th->state;
    (void) snprintf(why, size, "%s", state == 1 ? "TLS handshake timed out" : th->why);
    pthread_mutex_unlock(&th->mu);
    return state == 1 ? -ETIMEDOUT : state;
}

int nq_tls_sync_connect(struct nq_tls *t, const char *host, uint16_t port, uint64_t timeout_ms,
                        redisContext **ret_c, struct nq_tls_thread **ret_th, char *why,
                        size_t why_size)
{
    struct nq_tls_thread *th = calloc(1, sizeof(*th));
    int sv[2] = { -1, -1 }, r;

    *ret_c = NULL;
    *ret_th = NULL;
    if (!th)
        return -ENOMEM;
    th->state = 1;
    pthread_mutex_init(&th->mu, NULL);
    pthread_cond_init(&th->cv, NULL);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
        evutil_make_socket_nonblocking(sv[0]) < 0) {
        r = -errno;
        (void) snprintf(why, why_size, "TLS relay socket: %s", strerror(errno));
        goto fail;
    }
    if (!(th->base = event_base_new()) ||
        !(th->relay = nq_tls_relay_new(th->base, t, sv[0], host, port, on_thread_event, th))) {
        sv[0] = -1; /* taken */
        r = -ENOMEM;
        goto fail;
    }
    sv[0] = -1;
    if ((r = -pthread_create(&th->thread, NULL, run_thread, th)) < 0)
        goto fail;
    th->started = true;
    *ret_th = th;
    r = wait_handshake(th, timeout_ms, why, why_size);
    if (r < 0) {
        close(sv[1]); /* the relay sees hiredis's side close and ends */
        *ret_th = nq_tls_thread_free(th);
        return r;
    }
    if (!(*ret_c = redisConnectFd(sv[1]))) {
        close(sv[1]);
        *ret_th = nq_tls_thread_free(th);
        return -ENOMEM;
    }
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    nq_tls_thread_free(th);
    return r;
}

bool nq_tls_thread_failed(struct nq_tls_thread *th, char *why, size_t size)
{
    pthread_mutex_lock(&th->mu);
    bool failed = th->state < 0;
    if (failed)
        (void) snprintf(why, size, "%s", th->why);
    pthread_mutex_unlock(&th->mu);
    return failed;
}

struct nq_tls_thread *nq_tls_thread_free(struct nq_tls_thread *th)
{
    if (!th)
        return NULL;
    if (th->started)
        pthread_join(th->thread, NULL);
    nq_tls_relay_free(th->relay);
    if (th->base)
        event_base_free(th->base);
    pthread_mutex_destroy(&th->mu);
    pthread_cond_destroy(&th->cv);
    free(th);
    return NULL;
}
