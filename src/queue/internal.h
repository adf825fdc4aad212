/* SPDX-License-Identifier: MIT */
/*
 * Shared by store.c (async) and admin.c (sync) only: building script
 * arguments, parsing script replies, finding the master through Sentinel. Included from nowhere
 * else but the queue module and its tests.
 */
#ifndef NQ_QUEUE_INTERNAL_H
#define NQ_QUEUE_INTERNAL_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#include "common/macros.h"
#include "queue/job.h"
#include "queue/keys.h"
#include "queue/scripts.h"
#include "queue/store.h"

/* A growable argv: all strings in one buffer, so a request can be re-sent
 * after NOSCRIPT without rebuilding it. */
struct nq_args {
    char *buf;
    size_t len, cap;
    size_t *off, *lens;
    size_t n, cap_n;
    const char **argv; /* built by nq_args_argv */
    char *resp;        /* built by nq_args_resp */
    size_t cap_resp;
    int oom; /* sticky: a failed add makes nq_args_argv fail */
};

void nq_args_init(struct nq_args *a);
void nq_args_done(struct nq_args *a);
/* Empties a, keeping its buffers for the next arguments. */
void nq_args_reset(struct nq_args *a);
/* Makes room for n_args arguments of n_bytes in all (a hint: adds grow
 * past it). */
void nq_args_reserve(struct nq_args *a, size_t n_args, size_t n_bytes);
void nq_args_add(struct nq_args *a, const char *s, size_t len);
void nq_args_adds(struct nq_args *a, const char *s);
void nq_args_addu(struct nq_args *a, uint64_t v);
/* Starts "EVALSHA <sha> 1 <base>meta <base>" for script s. */
void nq_args_script(struct nq_args *a, enum nq_script s, const struct nq_keys *k);
/* Finalises: pointers into the buffer, valid until the next add. Returns 0
 * or -ENOMEM. */
int nq_args_argv(struct nq_args *a, const char ***ret_argv, const size_t **ret_lens) NQ_MUSTCHECK;
/* The whole command in Redis's protocol, as hiredis would format it (it
 * builds it by growing a string one argument at a time: a sixth of a busy
 * worker's CPU). Valid until the next add. Returns 0 or -ENOMEM. */
int nq_args_resp(struct nq_args *a, const char **ret, size_t *ret_len) NQ_MUSTCHECK;

struct nq_work_args {
    uint64_t now_ms;
    uint64_t lock_duration_ms;
    const char *token_prefix;
    uint64_t token_seq; /* first token number of this call */
    uint32_t fetch_max;
    const char *worker_name;
    uint32_t limiter_max;
    uint64_t limiter_duration_ms;
};

/* The work script's arguments: a fixed head, then 10 per finish; bytes
 * are a typical size (ids, token, a small returnvalue), for reserving. */
#define NQ_WORK_ARGS 15
#define NQ_WORK_ARGS_BYTES 512
#define NQ_WORK_FINISH_ARGS 11
#define NQ_WORK_FINISH_BYTES 128

/* The whole EVALSHA of the work script. */
void nq_args_work(struct nq_args *a, const struct nq_keys *k, const struct nq_work_args *w,
                  const struct nq_finish *fin, size_t n_fin);

/* Parses the work script's reply. Returns 0, -EPROTO, -ENOMEM. */
int nq_reply_work(const redisReply *r, struct nq_work_result *ret) NQ_MUSTCHECK;

/* Parses the counts script's reply. Returns 0, -EPROTO. */
int nq_reply_counts(const redisReply *r, struct nq_counts *ret) NQ_MUSTCHECK;

/* A job from an HGETALL-shaped array reply. token may be NULL; so may prev,
 * the job decoded before it in the same reply (nq_job_decode_like). Returns
 * 0, -EPROTO, -ENOMEM. */
int nq_reply_job(const char *id, size_t id_len, const char *token, const redisReply *hash,
                 const struct nq_job *prev, struct nq_job **ret) NQ_MUSTCHECK;

/* True for a NOSCRIPT error reply. */
int nq_reply_is_noscript(const redisReply *r);
/* True for an error reply that says "not now" rather than "wrong": the
 * server is loading its dataset, busy with a script, or its replication
 * or cluster state says try again. */
int nq_reply_is_transient(const redisReply *r);

/* ---- Redis Sentinel (sentinel.c) ---- */

struct event_base;
struct nq_err;
struct nq_sentinel_ask;

/* "HOST:PORT" or "[V6]:PORT" into *ret_host (the caller's) and *ret_port.
 * Returns 0, -EINVAL, -ENOMEM. */
int nq_host_port_split(const char *s, char **ret_host, uint16_t *ret_port) NQ_MUSTCHECK;
/* SENTINEL get-master-addr-by-name's reply. Returns 0, -ENOENT (the
 * sentinel knows no such master), -EPROTO, -ENOMEM. */
int nq_reply_master_addr(const redisReply *r, char **ret_host, uint16_t *ret_port) NQ_MUSTCHECK;
/* True when ROLE's reply says "master". */
int nq_reply_is_master(const redisReply *r);

/* r = 0: host:port is the master as `node` named it (valid during the
 * call); -EHOSTUNREACH: no sentinel named one, why says the last one's
 * problem; -ENOMEM. */
typedef void (*nq_sentinel_fn)(void *userdata, int r, const char *host, uint16_t port,
                               const char *why);
/* Asks cfg's sentinels in turn on base, each for at most timeout_ms; cb
 * runs once, from the loop, never from this call. cfg is borrowed for the
 * ask's life. NULL on OOM. Freeing an ask cancels it (cb does not run);
 * cb may free it. */
struct nq_sentinel_ask *nq_sentinel_ask_new(struct event_base *base,
                                            const struct nq_sentinel_cfg *cfg, uint64_t timeout_ms,
                                            nq_sentinel_fn cb, void *userdata);
struct nq_sentinel_ask *nq_sentinel_ask_free(struct nq_sentinel_ask *a);
/* The same, blocking, for notifyqctl: each sentinel for at most
 * timeout_ms to connect and as much per reply. Returns 0, -EHOSTUNREACH
 * (err says why), -ENOMEM. */
int nq_sentinel_lookup(const struct nq_sentinel_cfg *cfg, uint64_t timeout_ms, char **ret_host,
                       uint16_t *ret_port, struct nq_err *err) NQ_MUSTCHECK;

/* ---- TLS (tls.c): an in-process relay between hiredis and OpenSSL ---- */

struct nq_tls;
struct nq_tls_relay;
struct nq_tls_thread;

/* Loads the CAs, client certificate and key of cfg. Returns 0, -ENOMEM,
 * -EINVAL with err naming the file and OpenSSL's reason. */
int nq_tls_new(const struct nq_redis_tls_cfg *cfg, struct nq_tls **ret,
               struct nq_err *err) NQ_MUSTCHECK;
struct nq_tls *nq_tls_free(struct nq_tls *t);

/* r = 0: the TLS session is up (handshake and verification passed);
 * r < 0: it failed, why says how ("certificate verify failed: hostname
 * mismatch"), before or after it was up (a TLS alert; not a plain close).
 * Runs at most once with each. */
typedef void (*nq_tls_event_fn)(void *userdata, int r, const char *why);
/* Relays the local stream socket fd (taken) to a TLS connection to
 * host:port: bytes go both ways; when one side closes, so does the other
 * (after the last bytes from Redis reached fd). NULL on OOM. */
struct nq_tls_relay *nq_tls_relay_new(struct event_base *base, struct nq_tls *t, int fd,
                                      const char *host, uint16_t port, nq_tls_event_fn cb,
                                      void *userdata);
struct nq_tls_relay *nq_tls_relay_free(struct nq_tls_relay *r);
/* A hiredis async context (not attached yet) talking to host:port over TLS
 * through a relay on base (*ret_relay, which outlives the context: free
 * it after). NULL with why set on failure. */
redisAsyncContext *nq_tls_async_connect(struct event_base *base, struct nq_tls *t, const char *host,
                                        uint16_t port, nq_tls_event_fn cb, void *userdata,
                                        struct nq_tls_relay **ret_relay, char *why,
                                        size_t why_size);
/* A blocking hiredis context over TLS, its relay on a thread of its own;
 * waits up to timeout_ms for the handshake. Returns 0, or a negative errno
 * with why set. Free the context first, then the thread. */
int nq_tls_sync_connect(struct nq_tls *t, const char *host, uint16_t port, uint64_t timeout_ms,
                        redisContext **ret_c, struct nq_tls_thread **ret_th, char *why,
                        size_t why_size) NQ_MUSTCHECK;
/* Whether the TLS session failed after the handshake (a refused client
 * certificate), with why: what the context's broken connection means. */
bool nq_tls_thread_failed(struct nq_tls_thread *th, char *why, size_t size);
struct nq_tls_thread *nq_tls_thread_free(struct nq_tls_thread *th);

#endif
