/* SPDX-License-Identifier: MIT */
/*
 * The embedded scripts and their SHA1 digests (Redis names scripts by them,
 * so EVALSHA can go first and SCRIPT LOAD only on NOSCRIPT); see scripts.h.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <openssl/sha.h>

#include "common/macros.h"
#include "queue/scripts.h"

extern const char nq_lua_add[], nq_lua_work[], nq_lua_extend[], nq_lua_stalled[], nq_lua_recover[],
    nq_lua_pause[], nq_lua_remove[], nq_lua_retry[], nq_lua_promote[], nq_lua_clean[],
    nq_lua_progress[], nq_lua_state[], nq_lua_counts[], nq_lua_scheduler[], nq_lua_fanout[],
    nq_lua_publish[];

static const struct {
    const char *name;
    const char *src;
} scripts[NQ_SCRIPT__COUNT] = {
    [NQ_SCRIPT_ADD] = { "add", nq_lua_add },
    [NQ_SCRIPT_WORK] = { "work", nq_lua_work },
    [NQ_SCRIPT_EXTEND] = { "extend", nq_lua_extend },
    [NQ_SCRIPT_STALLED] = { "stalled", nq_lua_stalled },
    [NQ_SCRIPT_RECOVER] = { "recover", nq_lua_recover },
    [NQ_SCRIPT_PAUSE] = { "pause", nq_lua_pause },
    [NQ_SCRIPT_REMOVE] = { "remove", nq_lua_remove },
    [NQ_SCRIPT_RETRY] = { "retry", nq_lua_retry },
    [NQ_SCRIPT_PROMOTE] = { "promote", nq_lua_promote },
    [NQ_SCRIPT_CLEAN] = { "clean", nq_lua_clean },
    [NQ_SCRIPT_PROGRESS] = { "progress", nq_lua_progress },
    [NQ_SCRIPT_STATE] = { "state", nq_lua_state },
    [NQ_SCRIPT_COUNTS] = { "counts", nq_lua_counts },
    [NQ_SCRIPT_SCHEDULER] = { "scheduler", nq_lua_scheduler },
    [NQ_SCRIPT_FANOUT] = { "fanout", nq_lua_fanout },
    [NQ_SCRIPT_PUBLISH] = { "publish", nq_lua_publish },
};

static char shas[NQ_SCRIPT__COUNT][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

static void sha1_hex(const char *msg, char out[41])
{
    unsigned char md[SHA_DIGEST_LENGTH];

    (void) SHA1((const unsigned char *) msg, strlen(msg), md);
    for (size_t b = 0; b < SHA_DIGEST_LENGTH; b++)
        (void) snprintf(out + 2 * b, 3, "%02x", md[b]);
}

static void compute_shas(void)
{
    for (int s = 0; s < NQ_SCRIPT__COUNT; s++)
        sha1_hex(scripts[s].src, shas[s]);
}

const char *nq_script_name(enum nq_script s)
{
    return scripts[s].name;
}

const char *nq_script_source(enum nq_script s)
{
    return scripts[s].src;
}

const char *nq_script_sha(enum nq_script s)
{
    (void) pthread_once(&shas_once, compute_shas);
    return shas[s];
}
