/* SPDX-License-Identifier: MIT */
/*
 * The transport: one libcurl multi handle per worker process, driven by the
 * worker's libevent loop (curl_multi_socket_action with socket and timer
 * callbacks that become libevent events), for HTTP/1.1, HTTP/2 (multiplexed
 * on one connection where the server allows it) and SMTP. Every provider
 * that talks to the network sends through it; it knows nothing of jobs or
 * providers: a request goes in, a reply (or a classified transport error)
 * comes out.
 *
 * Up to max_transfers run at once; idle connections are kept (as many as
 * max_transfers) and reused. Nothing blocks the loop for HTTP: name
 * resolution is curl's threaded resolver, connects and TLS are
 * non-blocking, and signals are never used (CURLOPT_NOSIGNAL).
 *
 * SMTP has one exception, libcurl's and not ours: curl (7.88 as in every
 * release since) waits for the server's reply to the message's final "."
 * with a blocking poll inside its "done" phase (smtp_done ->
 * smtp_block_statemach), and for the reply to QUIT when it closes a cached
 * connection. The loop is held for that one round trip per message, at
 * most the transfer's timeout. The SMTP provider must allow for it (a
 * prompt local relay, or SMTP in its own worker processes).
 *
 * Transport errors are classified per PROVIDERS.md §0 (see transfer.c for
 * the rule): NQ_XFER_NOT_SENT when no byte of the request left (refused,
 * DNS, TLS handshake, connect timeout): safe to retry; NQ_XFER_UNKNOWN when
 * the request was written and then the transfer timed out or was reset: the
 * peer may have acted on it, so a retry may duplicate it.
 *
 * Asynchrony: nq_transfer_start() only starts; done is called exactly once,
 * later, from the loop (never from inside nq_transfer_start), unless the
 * transfer is cancelled first (nq_transfer_cancel, nq_transfer_cancel_all,
 * nq_transfer_free): then done is never called. done may start and cancel
 * transfers, but not cancel the one it reports nor free the transport.
 *
 * Ownership: everything a struct nq_transfer_req points to is borrowed
 * until done is called or the transfer cancelled (the body is not copied).
 * A struct nq_transfer_reply and all it points to are valid during done
 * only. Logging: none; secrets and bodies never leave this module except to
 * the peer and the caller.
 *
 * See: ../shared/PROVIDERS.md §0, providers/http.h (what drives it).
 */
#ifndef NQ_TRANSFER_TRANSFER_H
#define NQ_TRANSFER_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"

struct event_base;
struct nq_transfer;
struct nq_xfer; /* one transfer in flight, owned by its nq_transfer */

/* Reply bodies are cut beyond this unless a request asks for another cap. */
#define NQ_TRANSFER_BODY_MAX_DEFAULT (64u << 10)
/* Headers of one reply kept: count and total bytes; the rest are dropped. */
#define NQ_TRANSFER_HEADERS_MAX 100
#define NQ_TRANSFER_HEADER_BYTES_MAX (32u << 10)

struct nq_transfer_req {
    const char *url;            /* http://, https://, smtp://, smtps:// */
    const char *method;         /* HTTP: "POST", "PUT"...; NULL: POST with a body, else GET */
    const char *const *headers; /* HTTP: "Name: value" lines, n_headers of them */
    size_t n_headers;
    const char *body; /* HTTP request body, or the SMTP message; may be NULL */
    size_t body_len;
    uint64_t connect_timeout_ms; /* 0: 10 s */
    uint64_t timeout_ms;         /* the whole transfer; 0: 30 s */
    size_t body_max;             /* reply body bytes kept; 0: NQ_TRANSFER_BODY_MAX_DEFAULT */
    bool http2_prior_knowledge;  /* h2c on http:// (APNs mocks); else HTTP/2 over TLS only */
    /* TLS (https://, smtps://, STARTTLS) */
    const char *ca_file; /* NULL: the system's */
    bool insecure;       /* do not verify the peer (tests against self-signed peers) */
    /* SMTP */
    const char *mail_from;   /* MAIL FROM address */
    const char *const *rcpt; /* RCPT TO addresses */
    size_t n_rcpt;
    bool require_tls; /* smtp://: STARTTLS or fail, never plain text */
    /* A rejected RCPT does not abort the others (CURLOPT_MAIL_RCPT_ALLOWFAILS):
     * the message goes to those accepted; see the reply's smtp steps for who. */
    bool rcpt_allow_fails;
    const char *username; /* AUTH; NULL: none */
    const char *password;
};

enum nq_transfer_error {
    NQ_XFER_NONE,     /* a complete reply came */
    NQ_XFER_NOT_SENT, /* nothing of the request left: retry is safe */
    NQ_XFER_UNKNOWN,  /* written, then timeout or reset: may have been executed */
};

/* SMTP: one command of the dialogue and the server's reply to it, in the
 * order they happened, as the transfer's debug callback saw them (libcurl
 * reports only the last reply code; the others, one per RCPT in
 * particular, are only visible there). cmd is the command's verb in upper
 * case ("MAIL", "RCPT", "DATA", "QUIT"...), "." for the end of the message
 * after DATA's 354, and "" for the greeting. */
#define NQ_TRANSFER_SMTP_STEPS_MAX 1100 /* 1000 recipients and the rest */
#define NQ_TRANSFER_SMTP_TEXT_MAX 200   /* bytes of a reply's text kept */

struct nq_transfer_smtp_step {
    char cmd[12];
    int code;   /* the reply's code; 0: none came (the connection dropped) */
    char *arg;  /* MAIL, RCPT: the address, without <>; else NULL (AUTH is never kept) */
    char *text; /* the reply's last line after the code, cut; "" when none */
};

struct nq_transfer_header {
    char *name; /* as received (HTTP/2 sends them lower case) */
    char *value;
};

struct nq_transfer_reply {
    long status; /* HTTP final status, or the last SMTP reply code; 0: none came */
    const struct nq_transfer_header *headers; /* of the final response */
    size_t n_headers;
    const char *body; /* NUL-terminated; "" when empty */
    size_t body_len;
    bool body_truncated; /* more came than body_max: the rest was discarded */
    enum nq_transfer_error error;
    bool timed_out;         /* the error was the connect or total timeout */
    bool tls_refused;       /* require_tls, and the server offers no STARTTLS */
    bool login_denied;      /* the server refused our credentials */
    const char *error_text; /* curl's explanation; "" without error */
    /* SMTP: the dialogue (see struct nq_transfer_smtp_step); steps beyond
     * NQ_TRANSFER_SMTP_STEPS_MAX are not kept. */
    const struct nq_transfer_smtp_step *smtp;
    size_t n_smtp;
};

typedef void (*nq_transfer_done_fn)(const struct nq_transfer_reply *reply, void *userdata);

/* Process-wide libcurl setup; call once in the worker, before any
 * nq_transfer_new (never in the master: STYLE.md pitfall 8). 0 or -EIO. */
int nq_transfer_global_init(void) NQ_MUSTCHECK;
/* Undoes one nq_transfer_global_init, with no transport left. */
void nq_transfer_global_done(void);

/* A transport on base for up to max_transfers at once (1..100000); raises
 * the process's soft descriptor limit towards its hard one when it is too
 * low for that many sockets. 0, -EINVAL, or -ENOMEM. */
int nq_transfer_new(struct event_base *base, unsigned max_transfers,
                    struct nq_transfer **ret) NQ_MUSTCHECK;
/* Cancels every transfer in flight (no done calls) and frees t. */
struct nq_transfer *nq_transfer_free(struct nq_transfer *t);

/* Starts req. 0 and *ret (the handle for nq_transfer_cancel; ret may be
 * NULL), -EBUSY when max_transfers are running, -EINVAL when curl refuses
 * an option (a malformed URL is a reply with NQ_XFER_NOT_SENT instead), or
 * -ENOMEM. On error done is never called. */
int nq_transfer_start(struct nq_transfer *t, const struct nq_transfer_req *req,
                      nq_transfer_done_fn done, void *userdata, struct nq_xfer **ret) NQ_MUSTCHECK;
/* Abandons x: done will not be called, x is freed. */
void nq_transfer_cancel(struct nq_transfer *t, struct nq_xfer *x);
/* Abandons every transfer in flight (drain, fast stop). */
void nq_transfer_cancel_all(struct nq_transfer *t);
/* Transfers in flight. */
unsigned nq_transfer_running(const struct nq_transfer *t);

/* The value of the first header called name (ASCII case-insensitive) in
 * reply, or NULL. Works on any reply, including ones a test builds. */
const char *nq_transfer_reply_header(const struct nq_transfer_reply *reply, const char *name);

/* An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and
 * asctime forms) as Unix seconds, or -EINVAL. */
int nq_transfer_http_date(const char *s, int64_t *ret) NQ_MUSTCHECK;

#endif
