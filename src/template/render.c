/* SPDX-License-Identifier: MIT */
/*
 * Walks a compiled template over a jansson value (see template.h). The
 * context stack lives on the C stack as a linked list, one frame per
 * section entered, so a render allocates nothing but its output.
 *
 * Indentation of standalone partials: after each newline of template text
 * inside such a partial, its indentation is owed ("pending") and written
 * before the next byte of output, whether that byte comes from template
 * text or a variable; newlines inside a variable's value owe nothing, and
 * whatever is owed when the partial ends is dropped. That is what the spec's
 * "indent every line of the partial's source" yields, without compiling a
 * partial once per indentation.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/internal.h"

struct ctx {
    const json_t *v;
    const struct ctx *up;
};

struct render {
    const struct nq_template_render_opts *o;
    struct nq_err *err;
    char *buf;
    size_t len, cap;
    const char *indent; /* the current partial's, "" outside one */
    bool pending;       /* indent owed before the next byte */
    unsigned partials;  /* nesting depth */
};

static int fail_node(struct render *r, const struct nq_template *t, const struct tpl_node *nd,
                     const char *what)
{
    return nq_err_set(r->err, -EINVAL, "%s:%u:%u: %s '%s'", t->name, nd->line, nd->col, what,
                      nd->text);
}

static int put_raw(struct render *r, const char *s, size_t n)
{
    if (n > NQ_TEMPLATE_OUTPUT_MAX - r->len)
        return nq_err_set(r->err, -EINVAL, "template output larger than %u bytes",
                          NQ_TEMPLATE_OUTPUT_MAX);
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        char *b;

        while (cap < r->len + n + 1)
            cap *= 2;
        b = realloc(r->buf, cap);
        if (!b)
            return nq_err_set(r->err, -ENOMEM, "out of memory");
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, s, n);
    r->len += n;
    r->buf[r->len] = '\0';
    return 0;
}

/* Writes what is owed before output that is about to start. */
static int settle_indent(struct render *r)
{
    if (!r->pending)
        return 0;
    r->pending = false;
    return put_raw(r, r->indent, strlen(r->indent));
}

static int put_text(struct render *r, const char *s, size_t n)
{
    while (n > 0) {
        const char *nl = *r->indent ? memchr(s, '\n', n) : NULL;
        size_t chunk = nl ? (size_t) (nl - s) + 1 : n;
        int e = settle_indent(r);

        if (e >= 0)
            e = put_raw(r, s, chunk);
        if (e < 0)
            return e;
        r->pending = nl != NULL;
        s += chunk;
        n -= chunk;
    }
    return 0;
}

static int put_escaped(struct render *r, const char *s, size_t n)
{
    size_t from = 0;
    int e = 0;

    for (size_t i = 0; i < n && e >= 0; i++) {
        const char *rep = NULL;

        switch (s[i]) {
        case '&':
            rep = "&amp;";
            break;
        case '<':
            rep = "&lt;";
            break;
        case '>':
            rep = "&gt;";
            break;
        case '"':
            rep = "&quot;";
            break;
        case '\'':
            rep = "&#39;";
            break;
        default:
            continue;
        }
        e = put_raw(r, s + from, i - from);
        if (e >= 0)
            e = put_raw(r, rep, strlen(rep));
        from = i + 1;
    }
    return e < 0 ? e : put_raw(r, s + from, n - from);
}

/* The shortest text that reads back as the same double (1.21, not
 * 1.2099999999999999645). */
static void format_real(double d, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        (void) snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            return;
    }
}

static int put_value(struct render *r, const json_t *v, bool escape)
{
    char num[40];
    char *dump = NULL;
    const char *s = num;
    size_t n;
    int e;

    switch (json_typeof(v)) {
    case JSON_STRING:
        s = json_string_value(v);
        n = json_string_length(v);
        break;
    case JSON_INTEGER:
        n = (size_t) snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        break;
    case JSON_REAL:
        format_real(json_real_value(v), num, sizeof(num));
        n = strlen(num);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        s = json_is_true(v) ? "true" : "false";
        n = strlen(s);
        break;
    case JSON_NULL:
        return 0;
    default:
        dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!dump)
            return nq_err_set(r->err, -ENOMEM, "out of memory");
        s = dump;
        n = strlen(dump);
        break;
    }
    e = n ? settle_indent(r) : 0;
    if (e >= 0)
        e = escape ? put_escaped(r, s, n) : put_raw(r, s, n);
    free(dump);
    return e;
}

/* The value name stands for, or NULL when it is missing. The first part
 * is looked up from the innermost context out; the others only inside
 * what the first found (the spec's "broken chains" render empty). */
static const json_t *lookup(const struct ctx *c, const struct tpl_node *nd)
{
    const json_t *v = NULL;

    if (nd->n_parts == 0)
        return c->v;
    for (; c && !v; c = c->up)
        v = json_is_object(c->v) ? json_object_get(c->v, nd->parts[0]) : NULL;
    for (size_t i = 1; v && i < nd->n_parts; i++)
        v = json_is_object(v) ? json_object_get(v, nd->parts[i]) : NULL;
    return v;
}

static bool truthy(const json_t *v)
{
    if (!v || json_is_null(v) || json_is_false(v))
        return false;
    if (json_is_array(v))
        return json_array_size(v) > 0;
    if (json_is_string(v))
        return json_string_length(v) > 0;
    return true;
}

static int render_range(struct render *r, const struct nq_template *t, size_t from, size_t to,
                        const struct ctx *c);

static int render_section(struct render *r, const struct nq_template *t, size_t i,
                          const struct ctx *c)
{
    const struct tpl_node *nd = &t->nodes[i];
    const json_t *v = lookup(c, nd);
    struct ctx inner = { .v = v, .up = c };
    size_t k;
    json_t *item;
    int e;

    if (nd->op == TPL_INVERTED)
        return truthy(v) ? 0 : render_range(r, t, i + 1, nd->end, c);
    if (!truthy(v))
        return 0;
    if (!json_is_array(v))
        return render_range(r, t, i + 1, nd->end, &inner);
    json_array_foreach (v, k, item) {
        inner.v = item;
        e = render_range(r, t, i + 1, nd->end, &inner);
        if (e < 0)
            return e;
    }
    return 0;
}

static int render_partial(struct render *r, const struct nq_template *t, const struct tpl_node *nd,
                          const struct ctx *c)
{
    const struct nq_template *p = NULL;
    const char *saved_indent = r->indent;
    bool saved_pending = r->pending;
    char *indent = NULL;
    int e;

    if (r->partials >= NQ_TEMPLATE_DEPTH_MAX)
        return nq_err_set(r->err, -EINVAL,
                          "%s:%u:%u: partial '%s' nested deeper than %d partials (does it "
                          "include itself?)",
                          t->name, nd->line, nd->col, nd->text, NQ_TEMPLATE_DEPTH_MAX);
    e = r->o->partial ? r->o->partial(r->o->partial_userdata, nd->text, &p, r->err) : 0;
    if (e < 0)
        return e;
    if (!p)
        return r->o->strict ? fail_node(r, t, nd, "missing partial") : 0;
    if (*nd->indent && asprintf(&indent, "%s%s", r->indent, nd->indent) < 0)
        return nq_err_set(r->err, -ENOMEM, "out of memory");
    r->indent = indent ? indent : "";
    r->pending = indent != NULL;
    r->partials++;
    e = render_range(r, p, 0, p->n, c);
    r->partials--;
    r->indent = saved_indent;
    r->pending = saved_pending;
    free(indent);
    return e;
}

static int render_range(struct render *r, const struct nq_template *t, size_t from, size_t to,
                        const struct ctx *c)
{
    int e = 0;

    for (size_t i = from; i < to && e >= 0; i++) {
        const struct tpl_node *nd = &t->nodes[i];
        const json_t *v;

        switch (nd->op) {
        case TPL_TEXT:
            e = put_text(r, nd->text, nd->len);
            break;
        case TPL_VAR:
        case TPL_RAW:
            v = lookup(c, nd);
            if (!v)
                e = r->o->strict ? fail_node(r, t, nd, "missing variable") : 0;
            else
                e = put_value(r, v, nd->op == TPL_VAR && r->o->escape_html);
            break;
        case TPL_SECTION:
        case TPL_INVERTED:
            e = render_section(r, t, i, c);
            i = nd->end - 1;
            break;
        case TPL_PARTIAL:
            e = render_partial(r, t, nd, c);
            break;
        }
    }
    return e;
}

int nq_template_render(const struct nq_template *t, const json_t *data,
                       const struct nq_template_render_opts *opts, char **ret, struct nq_err *err)
{
    static const struct nq_template_render_opts plain = { 0 };
    json_t *empty = data ? NULL : json_object();
    struct render r = { .o = opts ? opts : &plain, .err = err, .indent = "" };
    struct ctx root = { .v = data ? data : empty };
    int e;

    if (!root.v)
        return nq_err_set(err, -ENOMEM, "out of memory");
    e = put_raw(&r, "", 0); /* an empty render is "", not NULL */
    if (e >= 0)
        e = render_range(&r, t, 0, t->n, &root);
    json_decref(empty);
    if (e < 0) {
        free(r.buf);
        return e;
    }
    *ret = r.buf;
    return 0;
}
