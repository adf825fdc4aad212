/* SPDX-License-Identifier: MIT */
/*
 * Mustache source to a flat program (see template.h for the language). The
 * program is an array of nodes in source order; a section's node records
 * the index just past its closing tag, so the renderer walks ranges and
 * never reparses. Standalone tags (a section, inverted, close, comment,
 * partial or delimiter tag alone on its line) take their line's
 * indentation and newline with them, as the spec asks; a standalone
 * partial keeps that indentation to prefix each line it renders.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "template/internal.h"

#define DELIM_MAX 16

struct parser {
    const char *name;
    const char *src;
    size_t len;
    size_t pos;               /* next byte to scan */
    char open[DELIM_MAX + 1]; /* current delimiters */
    char close[DELIM_MAX + 1];
    struct tpl_node *nodes;
    size_t n, cap;
    size_t stack[NQ_TEMPLATE_NESTING_MAX]; /* indexes of open sections */
    size_t depth;
    struct nq_err *err;
    size_t at, at_line, at_ls; /* position()'s memo: offsets only grow */
};

/* Line and column (1-based, columns in bytes) of offset in the source.
 * Scans on from the last offset asked, so a compile stays linear. */
static void position(struct parser *p, size_t offset, unsigned *line, unsigned *col)
{
    if (offset < p->at)
        p->at = p->at_ls = 0, p->at_line = 1;
    for (; p->at < offset; p->at++) {
        if (p->src[p->at] == '\n') {
            p->at_line++;
            p->at_ls = p->at + 1;
        }
    }
    *line = (unsigned) p->at_line;
    *col = (unsigned) (offset - p->at_ls + 1);
}

static int fail_at(struct parser *p, size_t offset, const char *fmt, ...) NQ_PRINTF(3, 4);

static int fail_at(struct parser *p, size_t offset, const char *fmt, ...)
{
    char msg[NQ_ERR_MAX];
    unsigned line, col;
    va_list ap;

    va_start(ap, fmt);
    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    position(p, offset, &line, &col);
    return nq_err_set(p->err, -EINVAL, "%s:%u:%u: %s", p->name, line, col, msg);
}

static struct tpl_node *node_add(struct parser *p, enum tpl_op op, size_t offset)
{
    struct tpl_node *nd;

    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        struct tpl_node *v = realloc(p->nodes, cap * sizeof(*v));

        if (!v)
            return NULL;
        p->nodes = v;
        p->cap = cap;
    }
    nd = &p->nodes[p->n++];
    *nd = (struct tpl_node){ .op = op };
    position(p, offset, &nd->line, &nd->col);
    return nd;
}

static int add_text(struct parser *p, size_t from, size_t to)
{
    struct tpl_node *nd;

    if (from >= to)
        return 0;
    nd = node_add(p, TPL_TEXT, from);
    if (!nd || !(nd->text = strndup(p->src + from, to - from)))
        return nq_err_set(p->err, -ENOMEM, "out of memory");
    nd->len = to - from;
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Splits a dotted name into parts; "." is the implicit iterator (no parts). */
static int name_set(struct parser *p, struct tpl_node *nd, const char *s, size_t n, size_t at)
{
    size_t parts = 1;

    if (!(nd->text = strndup(s, n)))
        return nq_err_set(p->err, -ENOMEM, "out of memory");
    nd->len = n;
    if (n == 1 && s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++)
        parts += s[i] == '.';
    nd->parts = calloc(parts, sizeof(*nd->parts));
    if (!nd->parts)
        return nq_err_set(p->err, -ENOMEM, "out of memory");
    for (const char *b = s, *end = s + n; b <= end; nd->n_parts++) {
        const char *dot = memchr(b, '.', (size_t) (end - b));
        const char *e = dot ? dot : end;

        if (e == b)
            return fail_at(p, at, "bad name '%.*s': empty part", (int) n, s);
        if (!(nd->parts[nd->n_parts] = strndup(b, (size_t) (e - b))))
            return nq_err_set(p->err, -ENOMEM, "out of memory");
        b = e + 1;
    }
    return 0;
}

/* "{{=<% %>=}}": body is what lies between the '='s. */
static int set_delimiters(struct parser *p, const char *body, size_t n, size_t at)
{
    const char *s = body, *end = body + n, *a, *b;
    size_t la, lb;

    while (s < end && is_space(*s))
        s++;
    while (end > s && is_space(end[-1]))
        end--;
    for (a = s; a < end && !is_space(*a); a++)
        ;
    la = (size_t) (a - s);
    for (b = a; b < end && is_space(*b); b++)
        ;
    lb = (size_t) (end - b);
    if (la == 0 || lb == 0 || memchr(b, ' ', lb) || memchr(b, '\t', lb))
        return fail_at(p, at, "bad delimiter: write {{=OPEN CLOSE=}}, two delimiters apart");
    if (la > DELIM_MAX || lb > DELIM_MAX)
        return fail_at(p, at, "bad delimiter: longer than %d bytes", DELIM_MAX);
    if (memchr(s, '=', la) || memchr(b, '=', lb))
        return fail_at(p, at, "bad delimiter: '=' is not allowed in a delimiter");
    memcpy(p->open, s, la);
    p->open[la] = '\0';
    memcpy(p->close, b, lb);
    p->close[lb] = '\0';
    return 0;
}

static const char *find(const struct parser *p, size_t from, const char *needle)
{
    size_t n = strlen(needle);

    if (from > p->len || p->len - from < n)
        return NULL;
    return memmem(p->src + from, p->len - from, needle, n);
}

/* A tag found at [start, end): its sigil, and body (trimmed). */
struct tag {
    size_t start, end;
    char sigil; /* 0 for a variable */
    const char *body;
    size_t body_len;
};

static int read_tag(struct parser *p, size_t start, struct tag *t)
{
    size_t inner = start + strlen(p->open);
    const char *s = p->src + inner, *close, *e;
    char want_close[DELIM_MAX + 2];

    t->start = start;
    t->sigil = (char) (inner < p->len && strchr("#^/!>&{=", *s) ? *s : 0);
    if (t->sigil)
        s++, inner++;
    if (t->sigil == '{' || t->sigil == '=') {
        want_close[0] = t->sigil == '{' ? '}' : '=';
        strcpy(want_close + 1, p->close);
    } else {
        strcpy(want_close, p->close);
    }
    close = find(p, inner, want_close);
    if (!close)
        return fail_at(p, start, "unclosed tag: no '%s' after '%s'", want_close, p->open);
    t->end = (size_t) (close - p->src) + strlen(want_close);
    e = close;
    if (t->sigil == '=') {
        t->body = s;
        t->body_len = (size_t) (e - s);
        return 0;
    }
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    t->body = s;
    t->body_len = (size_t) (e - s);
    if (t->sigil == '!')
        return 0;
    /* cppcheck-suppress knownConditionTrueFalse ; cppcheck 2.10 misreads the trimming above */
    if (t->body_len == 0)
        return fail_at(p, start, "empty tag name");
    for (const char *c = s; c < e; c++)
        if (is_space(*c))
            return fail_at(p, start, "bad tag name '%.*s': no spaces allowed", (int) t->body_len,
                           t->body);
    return 0;
}

/* Whether the tag stands alone on its line; if so, where its line starts
 * and where the next one does. */
static bool standalone(const struct parser *p, const struct tag *t, size_t text_from,
                       size_t *ret_ls, size_t *ret_next)
{
    size_t ls = t->start, e = t->end;

    if (t->sigil == 0 || t->sigil == '&' || t->sigil == '{')
        return false;
    while (ls > text_from && (p->src[ls - 1] == ' ' || p->src[ls - 1] == '\t'))
        ls--;
    if (ls > 0 && p->src[ls - 1] != '\n')
        return false;
    while (e < p->len && (p->src[e] == ' ' || p->src[e] == '\t'))
        e++;
    if (e < p->len && p->src[e] == '\r' && e + 1 < p->len && p->src[e + 1] == '\n')
        e += 2;
    else if (e < p->len && p->src[e] == '\n')
        e++;
    else if (e < p->len)
        return false;
    *ret_ls = ls;
    *ret_next = e;
    return true;
}

static int open_section(struct parser *p, const struct tag *t)
{
    struct tpl_node *nd = node_add(p, t->sigil == '#' ? TPL_SECTION : TPL_INVERTED, t->start);

    if (!nd)
        return nq_err_set(p->err, -ENOMEM, "out of memory");
    if (p->depth == NQ_TEMPLATE_NESTING_MAX)
        return fail_at(p, t->start, "sections nested deeper than %d", NQ_TEMPLATE_NESTING_MAX);
    p->stack[p->depth++] = p->n - 1;
    return name_set(p, nd, t->body, t->body_len, t->start);
}

static int close_section(struct parser *p, const struct tag *t)
{
    struct tpl_node *open;

    if (p->depth == 0)
        return fail_at(p, t->start, "close tag '%.*s' without an open section", (int) t->body_len,
                       t->body);
    open = &p->nodes[p->stack[p->depth - 1]];
    if (open->len != t->body_len || memcmp(open->text, t->body, t->body_len) != 0)
        return fail_at(p, t->start, "mismatched close tag '%.*s': section '%s' opened at %u:%u",
                       (int) t->body_len, t->body, open->text, open->line, open->col);
    open->end = p->n;
    p->depth--;
    return 0;
}

static int add_tag(struct parser *p, const struct tag *t, const char *indent, size_t indent_len)
{
    struct tpl_node *nd;

    switch (t->sigil) {
    case '!':
        return 0;
    case '=':
        return set_delimiters(p, t->body, t->body_len, t->start);
    case '#':
    case '^':
        return open_section(p, t);
    case '/':
        return close_section(p, t);
    case '>':
        nd = node_add(p, TPL_PARTIAL, t->start);
        if (!nd || !(nd->indent = strndup(indent, indent_len)))
            return nq_err_set(p->err, -ENOMEM, "out of memory");
        if (!(nd->text = strndup(t->body, t->body_len)))
            return nq_err_set(p->err, -ENOMEM, "out of memory");
        nd->len = t->body_len;
        return 0;
    default:
        nd = node_add(p, t->sigil ? TPL_RAW : TPL_VAR, t->start);
        if (!nd)
            return nq_err_set(p->err, -ENOMEM, "out of memory");
        return name_set(p, nd, t->body, t->body_len, t->start);
    }
}

static int parse(struct parser *p)
{
    size_t text_from = 0;
    const char *o;
    int r;

    while ((o = find(p, p->pos, p->open))) {
        struct tag t = { 0 };
        size_t ls, next, start = (size_t) (o - p->src);
        bool alone;

        r = read_tag(p, start, &t);
        if (r < 0)
            return r;
        alone = standalone(p, &t, text_from, &ls, &next);
        r = add_text(p, text_from, alone ? ls : start);
        if (r >= 0)
            r = add_tag(p, &t, alone ? p->src + ls : "", alone ? start - ls : 0);
        if (r < 0)
            return r;
        text_from = p->pos = alone ? next : t.end;
    }
    if (p->depth > 0) {
        const struct tpl_node *open = &p->nodes[p->stack[p->depth - 1]];

        return nq_err_set(p->err, -EINVAL, "%s:%u:%u: unclosed section '%s'", p->name, open->line,
                          open->col, open->text);
    }
    return add_text(p, text_from, p->len);
}

static void node_done(struct tpl_node *nd)
{
    free(nd->text);
    free(nd->indent);
    for (size_t i = 0; i < nd->n_parts; i++)
        free(nd->parts[i]);
    free(nd->parts);
}

static void nodes_free(struct tpl_node *nodes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        node_done(&nodes[i]);
    free(nodes);
}

/* Offset of the first byte that is not part of well-formed UTF-8 (no
 * overlongs, surrogates or code points past U+10FFFF), or len. Rendered
 * text goes into JSON and mail headers, which need valid UTF-8. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n = c < 0x80                 ? 1
                   : c >= 0xc2 && c <= 0xdf ? 2
                   : c >= 0xe0 && c <= 0xef ? 3
                   : c >= 0xf0 && c <= 0xf4 ? 4
                                            : 0;

        if (n == 0 || len - i < n)
            return i;
        for (size_t k = 1; k < n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        if ((c == 0xe0 && s[i + 1] < 0xa0) || (c == 0xed && s[i + 1] > 0x9f) ||
            (c == 0xf0 && s[i + 1] < 0x90) || (c == 0xf4 && s[i + 1] > 0x8f))
            return i;
        i += n;
    }
    return len;
}

int nq_template_compile(const char *name, const char *src, size_t len, struct nq_template **ret,
                        struct nq_err *err)
{
    size_t bad;

    struct parser p = {
        .name = name, .src = src, .len = len, .open = "{{", .close = "}}", .err = err, .at_line = 1
    };
    struct nq_template *t;
    int r;

    if (memchr(src, '\0', len))
        return fail_at(&p, (size_t) ((const char *) memchr(src, '\0', len) - src),
                       "NUL byte in the template");
    bad = utf8_invalid_at((const unsigned char *) src, len);
    if (bad < len)
        return fail_at(&p, bad, "not valid UTF-8");
    r = parse(&p);
    if (r < 0) {
        nodes_free(p.nodes, p.n);
        return r;
    }
    t = calloc(1, sizeof(*t));
    if (!t || !(t->name = strdup(name))) {
        free(t);
        nodes_free(p.nodes, p.n);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    t->nodes = p.nodes;
    t->n = p.n;
    *ret = t;
    return 0;
}

struct nq_template *nq_template_free(struct nq_template *t)
{
    if (t) {
        nodes_free(t->nodes, t->n);
        free(t->name);
        free(t);
    }
    return NULL;
}

const char *nq_template_name(const struct nq_template *t)
{
    return t->name;
}
