/* SPDX-License-Identifier: MIT */
/* The Mustache compiler and renderer on any template and data: a template
 * compiles or is refused with a message; one that compiles renders (with
 * the input's JSON tail as data, itself as its own partial so recursion is
 * exercised) to a string or an error, in both escaping modes, never a
 * crash, and output that is valid UTF-8 whenever template and data are. */
#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/err.h"
#include "common/utf8.h"
#include "template/template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int self_partial(void *userdata, const char *name, const struct nq_template **ret,
                        struct nq_err *err)
{
    (void) name, (void) err;
    *ret = userdata;
    return 0;
}

static void render(const struct nq_template *t, const json_t *j, bool html, bool utf8)
{
    const struct nq_template_render_opts o = { .escape_html = html,
                                               .partial = self_partial,
                                               .partial_userdata = (void *) t };
    struct nq_err err = { "" };
    char *out = NULL;

    if (nq_template_render(t, j, &o, &out, &err) < 0) {
        if (!nq_err_str(&err)[0] || out)
            abort();
        return;
    }
    if (!out)
        abort();
    if (utf8 && nq_utf8_valid_prefix(out, strlen(out)) != strlen(out))
        abort();
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* template, then an optional "\x01" and the data as JSON */
    const uint8_t *sep = memchr(data, 1, size);
    size_t tlen = sep ? (size_t) (sep - data) : size;
    json_t *j =
        sep ? json_loadb((const char *) sep + 1, size - tlen - 1, JSON_DECODE_ANY, NULL) : NULL;
    struct nq_template *t = NULL;
    struct nq_err err = { "" };

    if (nq_template_compile("fuzz.mustache", (const char *) data, tlen, &t, &err) < 0) {
        if (!nq_err_str(&err)[0] || t)
            abort();
    } else {
        bool utf8 = nq_utf8_valid_prefix((const char *) data, tlen) == tlen;

        render(t, j, true, utf8);
        render(t, j, false, utf8);
        nq_template_free(t);
    }
    json_decref(j);
    return 0;
}
