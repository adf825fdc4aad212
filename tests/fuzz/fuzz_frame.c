/* SPDX-License-Identifier: MIT */
/* The master's frame decoder on any datagram: a frame or an error, never a
 * crash. A decoded frame encodes again and decodes to the same frame: what
 * the master accepts, the child side can say. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "proc/proc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_strings(const struct nq_frame *f)
{
    if (f->type == NQ_FRAME_METRICS && !memchr(f->metrics.note, '\0', sizeof(f->metrics.note)))
        abort();
    if (f->type == NQ_FRAME_RECYCLE && !memchr(f->reason, '\0', sizeof(f->reason)))
        abort();
    if (!memchr(f->recover.prefix, '\0', sizeof(f->recover.prefix)) ||
        !memchr(f->recover.signal, '\0', sizeof(f->recover.signal)))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[NQ_FRAME_MAX], again[NQ_FRAME_MAX];
    struct nq_frame f, g;
    struct nq_err err = { "" };

    memset(&f, 0, sizeof(f));
    if (nq_frame_decode(data, size, &f, &err) < 0) {
        if (nq_err_str(&err)[0] == '\0')
            abort();
        return 0;
    }
    check_strings(&f);
    int n = nq_frame_encode(&f, buf, sizeof(buf));
    if (n < 0)
        abort();
    memset(&g, 0, sizeof(g));
    if (nq_frame_decode(buf, (size_t) n, &g, &err) < 0)
        abort();
    if (nq_frame_encode(&g, again, sizeof(again)) != n || memcmp(buf, again, (size_t) n) != 0)
        abort();
    return 0;
}
