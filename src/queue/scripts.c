/* SPDX-License-Identifier: MIT */
/*
 * The embedded scripts and their SHA1 digests; see scripts.h. SHA1 (FIPS
 * 180-1) is here because Redis names scripts by it and we link no crypto
 * library; it only ever hashes our own sources.
 */
#include "config.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common/macros.h"
#include "queue/scripts.h"

extern const char nq_lua_add[], nq_lua_work[], nq_lua_extend[], nq_lua_stalled[],
    nq_lua_recover[], nq_lua_pause[], nq_lua_remove[], nq_lua_retry[], nq_lua_promote[],
    nq_lua_clean[], nq_lua_progress[], nq_lua_state[], nq_lua_counts[], nq_lua_scheduler[];

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
};

static char shas[NQ_SCRIPT__COUNT][41];
static pthread_once_t shas_once = PTHREAD_ONCE_INIT;

static uint32_t rol(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16 |
               (uint32_t) p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20)
            f = (b & c) | (~b & d), k = 0x5A827999;
        else if (i < 40)
            f = b ^ c ^ d, k = 0x6ED9EBA1;
        else if (i < 60)
            f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
        else
            f = b ^ c ^ d, k = 0xCA62C1D6;
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d, d = c, c = rol(b, 30), b = a, a = t;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void sha1_hex(const char *msg, char out[41])
{
    uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
    size_t len = strlen(msg), i = 0;
    unsigned char tail[128] = { 0 };

    for (; i + 64 <= len; i += 64)
        sha1_block(h, (const unsigned char *) msg + i);
    size_t rest = len - i;
    memcpy(tail, msg + i, rest);
    tail[rest] = 0x80;
    size_t tail_len = rest + 9 <= 64 ? 64 : 128;
    uint64_t bits = (uint64_t) len * 8;
    for (int b = 0; b < 8; b++)
        tail[tail_len - 1 - b] = (unsigned char) (bits >> (8 * b));
    sha1_block(h, tail);
    if (tail_len == 128)
        sha1_block(h, tail + 64);
    for (int b = 0; b < 5; b++)
        snprintf(out + 8 * b, 9, "%08x", h[b]);
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
