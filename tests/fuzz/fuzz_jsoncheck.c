/* SPDX-License-Identifier: MIT */
/* The JSON checker against jansson's json_loadb(JSON_DECODE_ANY), as
 * tests/unit/test_jsoncheck.c does it: the same verdict on every text, bar
 * the one documented difference (jansson drops a NUL right after a number or
 * true/false/null; we refuse it). Whatever we accept, jansson must parse. */
#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue/jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool ours_accepts(const char *text, size_t len, struct nq_jsoncheck_err *err)
{
    bool ok = nq_jsoncheck_validate(text, len, err) == 0;

    if (!ok && (!err->reason || err->offset > len))
        abort(); /* a refusal always says why, and where inside the text */
    return ok;
}

static bool jansson_accepts(const char *text, size_t len)
{
    json_t *v = json_loadb(text, len, JSON_DECODE_ANY, NULL);

    json_decref(v);
    return v != NULL;
}

/* True when the only reason we refuse is NULs right after scalars, which
 * jansson skips: removing each such NUL makes the text acceptable to both. */
static bool only_nul_after_scalar(const char *text, size_t len)
{
    char *copy = malloc(len ? len : 1);
    struct nq_jsoncheck_err err = { NULL, 0 };
    bool only = true;

    if (!copy)
        return false;
    memcpy(copy, text, len);
    while (only && !ours_accepts(copy, len, &err)) {
        size_t at = err.offset;

        if (at == 0 || at >= len || copy[at] != '\0' || !strchr("0123456789el", copy[at - 1])) {
            only = false;
            break;
        }
        memmove(copy + at, copy + at + 1, len - at - 1);
        len--;
    }
    only = only && jansson_accepts(copy, len);
    free(copy);
    return only;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy: ASan sees any read past the end. */
    char *text = malloc(size ? size : 1);
    struct nq_jsoncheck_err err = { NULL, 0 };

    if (!text)
        return 0;
    memcpy(text, data, size);
    bool ours = ours_accepts(text, size, &err);
    bool theirs = jansson_accepts(text, size);
    if (ours && !theirs)
        abort();
    if (!ours && theirs && !only_nul_after_scalar(text, size))
        abort();
    free(text);
    return 0;
}
