/* SPDX-License-Identifier: MIT */
/*
 * The engine under config.h: loads one YAML document with libyaml's document
 * API (its nodes keep line/column marks), grafts the --set overrides into that
 * document, then walks it with the key tables of config.c into a fresh
 * struct nq_config. Overrides go into the document rather than the struct so
 * they are validated by the very same walk and a --set of a `defaults` key
 * reaches every queue; nodes an override made remember which one, so their
 * errors name the --set instead of a line.
 *
 * Within one mapping: keys are checked first, in file order (unknown,
 * duplicate, KEY together with KEY_file), then values in table order (so
 * `defaults` is parsed before `queues`, wherever it is written), then required
 * keys, then the table's finish hook. The first error ends the load.
 *
 * Runs in whichever process loads a config; logs nothing.
 */
/* <>, not "": next to this file, "config.h" is config/config.h. */
#include <config.h>

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/duration.h"
#include "config/config.h"
#include "config/internal.h"

#define CONFIG_MAX_BYTES (4u << 20)
#define SECRET_MAX_BYTES (64u << 10)
/* Mappings and lists nested deeper than this are refused before the
 * document is built: our deepest key sits at a fraction of it, and libyaml
 * takes time quadratic in the depth of flow collections ([[[[...). */
#define CONFIG_MAX_DEPTH 32

/* ---- nodes, positions and messages ---- */

static yaml_node_t *node_get(const struct cfg_ctx *c, int id)
{
    return yaml_document_get_node((yaml_document_t *) &c->doc, id);
}

static size_t origin_of(const struct cfg_ctx *c, int id)
{
    return id > 0 && (size_t) id <= c->n_origin ? c->origin[id - 1] : 0;
}

void cfg_node_mark(const struct cfg_ctx *c, int node, unsigned *ret_line, unsigned *ret_column)
{
    const yaml_node_t *n = node > 0 ? node_get(c, node) : NULL;

    if (!n || origin_of(c, node)) {
        *ret_line = *ret_column = 0;
        return;
    }
    *ret_line = (unsigned) n->start_mark.line + 1;
    *ret_column = (unsigned) n->start_mark.column + 1;
}

static void where_override(const struct cfg_ctx *c, size_t ov, char *buf, size_t size)
{
    const char *s = c->overrides[ov - 1];

    if (c->override_secret[ov - 1])
        (void) snprintf(buf, size, "--set %.*s=(hidden)", (int) strcspn(s, "="), s);
    else
        (void) snprintf(buf, size, "--set %s", s);
}

/* "FILE:LINE:COL", "--set KEY=VALUE" or, without a node, "FILE". */
static void where(const struct cfg_ctx *c, int node, char *buf, size_t size)
{
    size_t ov = origin_of(c, node);
    unsigned line, column;

    if (ov) {
        where_override(c, ov, buf, size);
        return;
    }
    cfg_node_mark(c, node, &line, &column);
    if (line)
        (void) snprintf(buf, size, "%s:%u:%u", c->name, line, column);
    else
        (void) snprintf(buf, size, "%s", c->name);
}

static int fail_where(struct cfg_ctx *c, const char *pos, const char *fmt, va_list ap)
{
    char msg[NQ_ERR_MAX];

    (void) vsnprintf(msg, sizeof(msg), fmt, ap);
    if (c->path_len)
        return nq_err_set(c->err, -EINVAL, "%s: %s: %s", pos, c->path, msg);
    return nq_err_set(c->err, -EINVAL, "%s: %s", pos, msg);
}

int(cfg_fail)(struct cfg_ctx *c, int node, const char *fmt, ...)
{
    char pos[NQ_ERR_MAX];
    va_list ap;
    int r;

    where(c, node, pos, sizeof(pos));
    va_start(ap, fmt);
    r = fail_where(c, pos, fmt, ap);
    va_end(ap);
    return r;
}

static size_t path_push(struct cfg_ctx *c, const char *fmt, ...) NQ_PRINTF(2, 3);

/* Appends a segment to the key path; returns the length to restore. */
static size_t path_push(struct cfg_ctx *c, const char *fmt, ...)
{
    size_t saved = c->path_len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + saved, sizeof(c->path) - saved, fmt, ap);
    va_end(ap);
    c->path_len = n < 0 ? saved : saved + (size_t) n;
    if (c->path_len >= sizeof(c->path))
        c->path_len = sizeof(c->path) - 1;
    return saved;
}

static size_t path_push_key(struct cfg_ctx *c, const char *key)
{
    return path_push(c, c->path_len ? ".%s" : "%s", key);
}

static void path_pop(struct cfg_ctx *c, size_t saved)
{
    c->path_len = saved;
    c->path[saved] = '\0';
}

int(cfg_fail_key)(struct cfg_ctx *c, int node, const char *key, const char *fmt, ...)
{
    char pos[NQ_ERR_MAX];
    size_t saved = path_push_key(c, key);
    va_list ap;
    int r;

    where(c, node, pos, sizeof(pos));
    va_start(ap, fmt);
    r = fail_where(c, pos, fmt, ap);
    va_end(ap);
    path_pop(c, saved);
    return r;
}

int cfg_oom(struct cfg_ctx *c)
{
    return nq_err_set(c->err, -ENOMEM, "%s: out of memory", c->name);
}

/* ---- values ---- */

void cfg_free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void *field_of(void *base, const struct cfg_row *r)
{
    return (char *) base + r->offset;
}

static bool is_null(const yaml_node_t *n)
{
    const char *s;

    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    s = (const char *) n->data.scalar.value;
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

static const char *kind_of(const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        return "a mapping";
    if (n->type == YAML_SEQUENCE_NODE)
        return "a list";
    return is_null(n) ? "empty" : "a scalar";
}

static const char *const type_desc[] = {
    [CFG_STRING] = "a string",
    [CFG_PATH] = "an absolute path",
    [CFG_SECRET] = "a string",
    [CFG_UINT] = "an integer",
    [CFG_FLOAT] = "a number",
    [CFG_DURATION] = "a duration",
    [CFG_ENUM] = "a name",
    [CFG_MODE] = "an octal mode",
    [CFG_MAP] = "a mapping",
    [CFG_KEEP] = "true, false or a mapping",
    [CFG_NAMED] = "a mapping",
    [CFG_SECRET_FILES] = "a list of files",
    [CFG_BOOL] = "true or false",
    [CFG_STRING_LIST] = "a list of strings",
    [CFG_STRING_MAP] = "a mapping of names to strings",
    [CFG_SECRET_FILE] = "a file name",
    [CFG_LIST] = "a list of mappings",
};

/* ${NAME} is the environment variable, $$ a dollar. Writes the expansion to
 * out when not NULL and returns its length, or -EINVAL with *why set. */
static ssize_t expand(const char *in, char *out, char *why, size_t why_size)
{
    size_t n = 0;

    for (const char *p = in; *p;) {
        const char *name = p + 2, *end = name, *value;
        char var[128];

        if (p[0] != '$' || (p[1] != '{' && p[1] != '$')) {
            if (out)
                out[n] = *p;
            n++, p++;
            continue;
        }
        if (p[1] == '$') {
            if (out)
                out[n] = '$';
            n++, p += 2;
            continue;
        }
        while (isalnum((unsigned char) *end) || *end == '_')
            end++;
        if (*end != '}' || end == name || isdigit((unsigned char) *name) ||
            (size_t) (end - name) >= sizeof(var)) {
            (void) snprintf(why, why_size, "%s",
                            strchr(name, '}') ? "bad variable name in ${...}"
                                              : "unterminated ${ (write $$ for a dollar)");
            return -EINVAL;
        }
        memcpy(var, name, (size_t) (end - name));
        var[end - name] = '\0';
        value = getenv(var);
        if (!value) {
            (void) snprintf(why, why_size, "environment variable %s is not set", var);
            return -EINVAL;
        }
        if (out)
            memcpy(out + n, value, strlen(value));
        n += strlen(value);
        p = end + 1;
    }
    if (out)
        out[n] = '\0';
    return (ssize_t) n;
}

static int expand_env(struct cfg_ctx *c, int node, const char *in, char **ret)
{
    char why[160];
    ssize_t n = expand(in, NULL, why, sizeof(why));
    char *out;

    if (n < 0)
        return cfg_fail(c, node, "%s", why);
    out = malloc((size_t) n + 1);
    if (!out)
        return cfg_oom(c);
    (void) expand(in, out, why, sizeof(why));
    *ret = out;
    return 0;
}

/* What a file that is not a regular one is, for messages. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISSOCK(mode))
        return "a socket";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    return "not a regular file";
}

/* Reads at most cap bytes of the regular file path into a NUL-terminated
 * buffer. Opened without blocking, so that a FIFO (which would wait for a
 * writer) or a device is refused rather than hang the master on a reload:
 * -EISDIR for a directory, -EMEDIUMTYPE for anything else that is not a
 * regular file, and *ret_kind then says what it is. */
static int read_file(const char *path, size_t cap, char **ret, size_t *ret_len,
                     const char **ret_kind)
{
    nq_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    nq_autofree char *buf = NULL;
    struct stat st;
    size_t len = 0;

    if (fd < 0 || fstat(fd, &st) < 0)
        return -errno;
    if (!S_ISREG(st.st_mode)) {
        *ret_kind = file_kind(st.st_mode);
        return S_ISDIR(st.st_mode) ? -EISDIR : -EMEDIUMTYPE;
    }
    buf = malloc(cap + 1);
    if (!buf)
        return -ENOMEM;
    for (;;) {
        ssize_t n = read(fd, buf + len, cap + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        len += (size_t) n;
        if (len > cap)
            return -EFBIG;
    }
    buf[len] = '\0';
    *ret = NQ_TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

/* The secret held in file path; node (its key or list item) for messages. */
static int read_secret(struct cfg_ctx *c, int node, const char *path, char **ret)
{
    char *buf = NULL;
    const char *kind = NULL;
    size_t len = 0;
    int r = read_file(path, SECRET_MAX_BYTES, &buf, &len, &kind);

    if (kind)
        return cfg_fail(c, node, "%s is %s, not a regular file", path, kind);
    if (r == -EFBIG)
        return cfg_fail(c, node, "%s is larger than %u KiB", path, SECRET_MAX_BYTES >> 10);
    if (r < 0)
        return cfg_fail(c, node, "cannot read %s: %s", path, strerror(-r));
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    if (len == 0 || strlen(buf) != len) {
        explicit_bzero(buf, len);
        free(buf);
        return cfg_fail(c, node, len ? "%s contains a NUL byte" : "%s is empty", path);
    }
    *ret = strdup(buf);
    explicit_bzero(buf, len);
    free(buf);
    return *ret ? 0 : cfg_oom(c);
}

static void free_value(const struct cfg_row *r, char *s)
{
    if (r->type == CFG_SECRET || r->type == CFG_SECRET_FILE)
        cfg_free_secret(s);
    else
        free(s);
}

static void store_string(const struct cfg_row *r, void *field, char *s)
{
    char **p = field;

    free_value(r, *p);
    *p = s;
}

static int set_string(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                      int val)
{
    char *s = NULL;
    const char *problem = NULL;
    int ret = expand_env(c, val, text, &s);

    if (ret < 0)
        return ret;
    if (!*s)
        problem = "must not be empty";
    else if (r->type == CFG_PATH && s[0] != '/')
        problem = "must be an absolute path";
    else if (r->check)
        problem = r->check(s);
    if (problem) {
        free_value(r, s);
        return cfg_fail(c, val, "%s", problem);
    }
    store_string(r, field, s);
    return 0;
}

/* KEY_file: the value names the file, errors point at the key. */
static int set_secret_file(struct cfg_ctx *c, const struct cfg_row *r, void *field,
                           const char *text, int key, int val)
{
    nq_autofree char *path = NULL;
    char *secret = NULL;
    int ret = expand_env(c, val, text, &path);

    if (ret < 0)
        return ret;
    if (path[0] != '/')
        return cfg_fail(c, val, "must be an absolute path");
    ret = read_secret(c, key, path, &secret);
    if (ret < 0)
        return ret;
    store_string(r, field, secret);
    return 0;
}

/* Returns 0, -EINVAL (not an integer) or -ERANGE (negative or too large). */
static int parse_u64(const char *s, uint64_t *ret)
{
    bool negative = *s == '-';
    uint64_t n = 0;
    bool overflow = false;
    const char *p = s + negative;

    if (!isdigit((unsigned char) *p))
        return -EINVAL;
    for (; isdigit((unsigned char) *p); p++) {
        unsigned d = (unsigned) (*p - '0');
        overflow = overflow || n > (UINT64_MAX - d) / 10;
        n = n * 10 + d;
    }
    if (*p)
        return -EINVAL;
    if (negative || overflow)
        return -ERANGE;
    *ret = n;
    return 0;
}

static int set_uint(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                    int val)
{
    uint64_t n = 0;
    int ret = parse_u64(text, &n);

    if (ret == -EINVAL)
        return cfg_fail(c, val, "must be an integer");
    if (ret < 0 || n < r->min || n > r->max)
        return cfg_fail(c, val, "must be %" PRIu64 "..%" PRIu64, r->min, r->max);
    *(uint32_t *) field = (uint32_t) n;
    return 0;
}

static int set_float(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                     int val)
{
    char *end = NULL;
    double d;

    if (!*text || text[strspn(text, "0123456789.eE+-")] != '\0')
        return cfg_fail(c, val, "must be a number");
    errno = 0;
    d = strtod(text, &end);
    if (*end || errno == ERANGE || !isfinite(d))
        return cfg_fail(c, val, "must be a number");
    if (d < r->fmin || d > r->fmax)
        return cfg_fail(c, val, "must be %g..%g", r->fmin, r->fmax);
    *(double *) field = d;
    return 0;
}

static int set_duration(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                        int val)
{
    uint64_t ms = 0;
    int ret = nq_duration_parse(text, &ms);
    char lo[32], hi[32];

    if (ret == -EINVAL)
        return cfg_fail(c, val,
                        "invalid duration \"%.40s\": use a number with ms, s, m, h or d, "
                        "e.g. 30s",
                        text);
    if (ret < 0 || ms < r->min || ms > r->max) {
        nq_duration_format(r->min, lo, sizeof(lo));
        nq_duration_format(r->max, hi, sizeof(hi));
        return cfg_fail(c, val, "must be %s..%s", r->min ? lo : "0", hi);
    }
    *(uint64_t *) field = ms;
    return 0;
}

static void enum_list(const struct cfg_enum *e, const char *sep, char *buf, size_t size)
{
    size_t n = 0;

    buf[0] = '\0';
    for (; e->name && n < size; e++)
        n += (size_t) snprintf(buf + n, size - n, "%s%s", n ? sep : "", e->name);
}

static int set_enum(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                    int val)
{
    char names[256];

    for (const struct cfg_enum *e = r->enums; e->name; e++) {
        if (strcmp(e->name, text) == 0) {
            *(int *) field = e->value;
            return 0;
        }
    }
    enum_list(r->enums, ", ", names, sizeof(names));
    return cfg_fail(c, val, "must be one of %s", names);
}

/* Octal always, quoted or not: YAML 1.1 would read 0660 as octal, 1.2 as
 * decimal, and a mode is only ever meant in octal. */
static int set_mode(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                    int val)
{
    size_t n = strspn(text, "01234567");
    unsigned long m;

    if (n == 0 || n > 4 || text[n] || (m = strtoul(text, NULL, 8)) > r->max)
        return cfg_fail(c, val, "must be an octal mode 0000..%04" PRIo64 ", e.g. 0660", r->max);
    *(mode_t *) field = (mode_t) m;
    return 0;
}

static int set_bool(struct cfg_ctx *c, void *field, const char *text, int val)
{
    static const char *const yes[] = { "true", "True", "TRUE" };
    static const char *const no[] = { "false", "False", "FALSE" };

    for (size_t i = 0; i < NQ_ELEMENTSOF(yes); i++) {
        if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
            *(bool *) field = strcmp(text, yes[i]) == 0;
            return 0;
        }
    }
    return cfg_fail(c, val, "must be true or false");
}

static int set_keep(struct cfg_ctx *c, void *field, const char *text, int val)
{
    static const char *const yes[] = { "true", "True", "TRUE" };
    static const char *const no[] = { "false", "False", "FALSE" };
    struct nq_keep_cfg *k = field;

    for (size_t i = 0; i < NQ_ELEMENTSOF(yes); i++) {
        if (strcmp(text, yes[i]) == 0 || strcmp(text, no[i]) == 0) {
            *k = (struct nq_keep_cfg){ .keep_all = strcmp(text, yes[i]) == 0 };
            return 0;
        }
    }
    return cfg_fail(c, val, "must be true, false or a mapping with count and/or age");
}

/* One scalar value; key and val are its nodes (0 for a table default). */
static int set_scalar(struct cfg_ctx *c, const struct cfg_row *r, void *field, const char *text,
                      int key, int val, bool twin)
{
    switch (r->type) {
    case CFG_STRING:
    case CFG_PATH:
        return set_string(c, r, field, text, val);
    case CFG_SECRET:
        return twin ? set_secret_file(c, r, field, text, key, val)
                    : set_string(c, r, field, text, val);
    case CFG_SECRET_FILE:
        return set_secret_file(c, r, field, text, val, val);
    case CFG_UINT:
        return set_uint(c, r, field, text, val);
    case CFG_FLOAT:
        return set_float(c, r, field, text, val);
    case CFG_DURATION:
        return set_duration(c, r, field, text, val);
    case CFG_ENUM:
        return set_enum(c, r, field, text, val);
    case CFG_MODE:
        return set_mode(c, r, field, text, val);
    case CFG_KEEP:
        return set_keep(c, field, text, val);
    case CFG_BOOL:
        return set_bool(c, field, text, val);
    case CFG_MAP:
    case CFG_NAMED:
    case CFG_SECRET_FILES:
    case CFG_LIST:
    case CFG_STRING_LIST:
    case CFG_STRING_MAP:
        break;
    }
    assert(!"not a scalar type");
    return -EINVAL;
}

/* ---- the walk ---- */

static int walk_map(struct cfg_ctx *c, const struct cfg_table *t, void *base, int id);

/* The text of a scalar node, refusing embedded NULs ("\0" in quotes). */
static int scalar_text(struct cfg_ctx *c, int id, const char **ret)
{
    const yaml_node_t *n = node_get(c, id);
    const char *s = (const char *) n->data.scalar.value;

    if (strlen(s) != n->data.scalar.length)
        return cfg_fail(c, id, "must not contain a NUL byte");
    *ret = s;
    return 0;
}

static const struct cfg_row *find_row(const struct cfg_table *t, const char *key, bool *ret_twin)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        const struct cfg_row *r = &t->rows[i];
        size_t n = strlen(r->key);

        if (strcmp(r->key, key) == 0) {
            *ret_twin = false;
            return r;
        }
        if (r->type == CFG_SECRET && strncmp(r->key, key, n) == 0 && !strcmp(key + n, "_file")) {
            *ret_twin = true;
            return r;
        }
    }
    return NULL;
}

static void short_where(const struct cfg_ctx *c, int node, char *buf, size_t size)
{
    unsigned line, column;

    cfg_node_mark(c, node, &line, &column);
    if (line)
        (void) snprintf(buf, size, "%u:%u", line, column);
    else
        where(c, node, buf, size);
}

/* Phase 1: every key known, allowed here, given once. */
static int scan_keys(struct cfg_ctx *c, const struct cfg_table *t, const yaml_node_t *map,
                     struct cfg_seen *seen)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const yaml_node_t *k = node_get(c, p->key);
        const struct cfg_row *r;
        const char *key = NULL;
        bool twin = false;
        char first[NQ_ERR_MAX];
        size_t i;
        int ret;

        if (k->type != YAML_SCALAR_NODE)
            return cfg_fail(c, p->key, "a key must be a string, not %s", kind_of(k));
        ret = scalar_text(c, p->key, &key);
        if (ret < 0)
            return ret;
        r = find_row(t, key, &twin);
        if (!r)
            return cfg_fail_key(c, p->key, key, "unknown key");
        if (r->flags & t->exclude)
            return cfg_fail_key(c, p->key, key, "%s", t->exclude_why);
        i = (size_t) (r - t->rows);
        if (seen[i].key) {
            short_where(c, seen[i].key, first, sizeof(first));
            if (seen[i].twin == twin)
                return cfg_fail_key(c, p->key, key, "duplicate key (first at %s)", first);
            return cfg_fail_key(c, p->key, key, "conflicts with %s%s (at %s): give one of them",
                                r->key, seen[i].twin ? "_file" : "", first);
        }
        seen[i] = (struct cfg_seen){ .key = p->key, .val = p->value, .twin = twin };
    }
    return 0;
}

static int walk_scalar(struct cfg_ctx *c, const struct cfg_row *r, void *base,
                       const struct cfg_seen *s)
{
    const yaml_node_t *n = node_get(c, s->val);
    const char *text = NULL;
    const char *what = s->twin ? "a file name" : type_desc[r->type];
    int ret;

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return cfg_fail(c, s->val, "must be %s, not %s", what, kind_of(n));
    ret = scalar_text(c, s->val, &text);
    if (ret < 0)
        return ret;
    return set_scalar(c, r, field_of(base, r), text, s->key, s->val, s->twin);
}

static int walk_keep(struct cfg_ctx *c, const struct cfg_row *r, void *base,
                     const struct cfg_seen *s)
{
    struct nq_keep_cfg *k = field_of(base, r);

    if (node_get(c, s->val)->type != YAML_MAPPING_NODE)
        return walk_scalar(c, r, base, s);
    /* A retention mapping replaces what `defaults` gave, it does not merge:
     * {age: 1d} alone must not inherit a count. */
    *k = (struct nq_keep_cfg){ 0 };
    return walk_map(c, r->sub, k, s->val);
}

/* A scalar where a mapping with a shorthand key is expected sets that key. */
static int walk_shorthand(struct cfg_ctx *c, const struct cfg_row *r, void *base,
                          const struct cfg_seen *s)
{
    bool twin = false;
    const struct cfg_row *key = find_row(r->sub, r->shorthand, &twin);

    assert(key && !twin);
    return walk_scalar(c, key, field_of(base, r), s);
}

struct name_ref {
    const char *name;
    size_t index;
};

static int cmp_name_ref(const void *a, const void *b)
{
    const struct name_ref *x = a, *y = b;
    int d = strcmp(x->name, y->name);

    return d ? d : (x->index > y->index) - (x->index < y->index);
}

/* The name keys of a NAMED mapping: strings, each given once. Sorted, not
 * compared pairwise: tenants may number thousands. */
static int scan_names(struct cfg_ctx *c, const yaml_node_t *map)
{
    const yaml_node_pair_t *pairs = map->data.mapping.pairs.start;
    size_t n = (size_t) (map->data.mapping.pairs.top - pairs), dup = SIZE_MAX;
    nq_autofree struct name_ref *refs = calloc(n ? n : 1, sizeof(*refs));
    char first[NQ_ERR_MAX] = "";
    const char *name;
    int ret;

    if (!refs)
        return cfg_oom(c);
    for (size_t i = 0; i < n; i++) {
        const yaml_node_t *k = node_get(c, pairs[i].key);

        if (k->type != YAML_SCALAR_NODE || is_null(k))
            return cfg_fail(c, pairs[i].key, "a name must be a string, not %s", kind_of(k));
        ret = scalar_text(c, pairs[i].key, &refs[i].name);
        if (ret < 0)
            return ret;
        refs[i].index = i;
    }
    qsort(refs, n, sizeof(*refs), cmp_name_ref);
    /* Report the repeat that comes first in the file. */
    for (size_t i = 1; i < n; i++) {
        if (strcmp(refs[i - 1].name, refs[i].name) == 0 && refs[i].index < dup) {
            dup = refs[i].index;
            short_where(c, pairs[refs[i - 1].index].key, first, sizeof(first));
        }
    }
    if (dup == SIZE_MAX)
        return 0;
    name = (const char *) node_get(c, pairs[dup].key)->data.scalar.value;
    return cfg_fail_key(c, pairs[dup].key, name, "duplicate key (first at %s)", first);
}

static int walk_named(struct cfg_ctx *c, const struct cfg_row *r, void *base, int id)
{
    const yaml_node_t *map = node_get(c, id);
    size_t n;
    char *items;
    int ret;

    if (is_null(map))
        return 0;
    if (map->type != YAML_MAPPING_NODE)
        return cfg_fail(c, id, "must be a mapping of names, not %s", kind_of(map));
    ret = scan_names(c, map);
    if (ret < 0)
        return ret;
    n = (size_t) (map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    if (n == 0)
        return 0;
    items = calloc(n, r->named->item_size);
    if (!items)
        return cfg_oom(c);
    /* Owned by base from here on, so a failure half-way frees what exists. */
    *(void **) field_of(base, r) = items;
    *(size_t *) ((char *) base + r->count_offset) = n;
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t p = map->data.mapping.pairs.start[i];
        const char *name = (const char *) node_get(c, p.key)->data.scalar.value;
        char *item = items + i * r->named->item_size;
        char **item_name = (char **) (item + r->named->name_offset);
        size_t saved = path_push_key(c, name);

        ret = r->named->init(c, item, p.key);
        if (ret >= 0) {
            *item_name = strdup(name);
            ret = *item_name ? walk_map(c, r->sub, item, p.value) : cfg_oom(c);
        }
        path_pop(c, saved);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int walk_list(struct cfg_ctx *c, const struct cfg_row *r, void *base, int id)
{
    const yaml_node_t *seq = node_get(c, id);
    char *items;
    size_t n;

    if (seq->type != YAML_SEQUENCE_NODE)
        return cfg_fail(c, id, "must be a list of mappings, not %s", kind_of(seq));
    n = (size_t) (seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0)
        return cfg_fail(c, id, "must list at least one item");
    items = calloc(n, r->named->item_size);
    if (!items)
        return cfg_oom(c);
    /* Owned by base from here on, so a failure half-way frees what exists. */
    *(void **) field_of(base, r) = items;
    *(size_t *) ((char *) base + r->count_offset) = n;
    for (size_t i = 0; i < n; i++) {
        int item = seq->data.sequence.items.start[i];
        const yaml_node_t *in = node_get(c, item);
        size_t saved = path_push(c, "[%zu]", i);
        int ret = in->type == YAML_MAPPING_NODE
                      ? walk_map(c, r->sub, items + i * r->named->item_size, item)
                      : cfg_fail(c, item, "must be a mapping, not %s", kind_of(in));

        path_pop(c, saved);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int walk_secret_files(struct cfg_ctx *c, const struct cfg_row *r, void *base, int id)
{
    const yaml_node_t *seq = node_get(c, id);
    char **secrets;
    size_t n;

    if (seq->type != YAML_SEQUENCE_NODE)
        return cfg_fail(c, id, "must be a list of files, not %s", kind_of(seq));
    n = (size_t) (seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0)
        return cfg_fail(c, id, "must list at least one file");
    secrets = calloc(n, sizeof(*secrets));
    if (!secrets)
        return cfg_oom(c);
    *(char ***) field_of(base, r) = secrets;
    *(size_t *) ((char *) base + r->count_offset) = n;
    for (size_t i = 0; i < n; i++) {
        int item = seq->data.sequence.items.start[i];
        const yaml_node_t *in = node_get(c, item);
        nq_autofree char *path = NULL;
        const char *text = NULL;
        size_t saved = path_push(c, "[%zu]", i);
        int ret = 0;

        if (in->type != YAML_SCALAR_NODE || is_null(in))
            ret = cfg_fail(c, item, "must be a file name, not %s", kind_of(in));
        if (ret >= 0)
            ret = scalar_text(c, item, &text);
        if (ret >= 0)
            ret = expand_env(c, item, text, &path);
        if (ret >= 0 && path[0] != '/')
            ret = cfg_fail(c, item, "must be an absolute path");
        if (ret >= 0)
            ret = read_secret(c, item, path, &secrets[i]);
        path_pop(c, saved);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static void free_strings(char **v, size_t n, bool wipe)
{
    for (size_t i = 0; i < n; i++) {
        if (wipe)
            cfg_free_secret(v[i]);
        else
            free(v[i]);
    }
    free(v);
}

/* A fresh zeroed array of n strings owned by base's field (what was there,
 * a copy of `defaults`, goes): a failure half-way frees what exists. */
static char **strings_replace(const struct cfg_row *r, void *base, size_t n)
{
    char ***field = field_of(base, r);
    size_t *count = (size_t *) ((char *) base + r->count_offset);
    char **v = calloc(n + 1, sizeof(*v));

    if (!v)
        return NULL;
    free_strings(*field, *count, r->type == CFG_STRING_MAP);
    *field = v;
    *count = n;
    return v;
}

/* One string item of a list or mapping: ${ENV} expanded, checked. */
static int string_item(struct cfg_ctx *c, const struct cfg_row *r, int id, char **ret_value)
{
    const yaml_node_t *n = node_get(c, id);
    const char *text = NULL, *problem;
    int ret;

    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return cfg_fail(c, id, "must be a string, not %s", kind_of(n));
    ret = scalar_text(c, id, &text);
    if (ret >= 0)
        ret = expand_env(c, id, text, ret_value);
    if (ret < 0)
        return ret;
    problem = r->type == CFG_STRING_LIST && r->check ? r->check(*ret_value) : NULL;
    return problem ? cfg_fail(c, id, "%s", problem) : 0;
}

static int walk_string_list(struct cfg_ctx *c, const struct cfg_row *r, void *base, int id)
{
    const yaml_node_t *seq = node_get(c, id);
    size_t n;
    char **v;

    if (seq->type != YAML_SEQUENCE_NODE)
        return cfg_fail(c, id, "must be a list of strings, not %s", kind_of(seq));
    n = (size_t) (seq->data.sequence.items.top - seq->data.sequence.items.start);
    if (n == 0)
        return cfg_fail(c, id, "must list at least one string");
    v = strings_replace(r, base, n);
    if (!v)
        return cfg_oom(c);
    for (size_t i = 0; i < n; i++) {
        size_t saved = path_push(c, "[%zu]", i);
        int ret = string_item(c, r, seq->data.sequence.items.start[i], &v[i]);

        path_pop(c, saved);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int walk_string_map(struct cfg_ctx *c, const struct cfg_row *r, void *base, int id)
{
    const yaml_node_t *map = node_get(c, id);
    size_t n;
    char **v;
    int ret;

    if (map->type != YAML_MAPPING_NODE)
        return cfg_fail(c, id, "must be a mapping of names to strings, not %s", kind_of(map));
    ret = scan_names(c, map);
    if (ret < 0)
        return ret;
    n = (size_t) (map->data.mapping.pairs.top - map->data.mapping.pairs.start);
    v = strings_replace(r, base, n);
    if (!v)
        return cfg_oom(c);
    for (size_t i = 0; i < n; i++) {
        yaml_node_pair_t p = map->data.mapping.pairs.start[i];
        const char *name = (const char *) node_get(c, p.key)->data.scalar.value;
        const char *problem = r->check ? r->check(name) : NULL;
        nq_autofree char *value = NULL;
        size_t saved = path_push_key(c, name);

        ret = problem ? cfg_fail(c, p.key, "%s", problem) : string_item(c, r, p.value, &value);
        if (ret >= 0 && asprintf(&v[i], "%s=%s", name, value) < 0) {
            v[i] = NULL;
            ret = cfg_oom(c);
        }
        if (value)
            explicit_bzero(value, strlen(value));
        path_pop(c, saved);
        if (ret < 0)
            return ret;
    }
    return 0;
}

static int walk_value(struct cfg_ctx *c, const struct cfg_row *r, void *base,
                      const struct cfg_seen *s)
{
    switch (r->type) {
    case CFG_MAP:
        if (r->shorthand && node_get(c, s->val)->type == YAML_SCALAR_NODE &&
            !is_null(node_get(c, s->val)))
            return walk_shorthand(c, r, base, s);
        return walk_map(c, r->sub, field_of(base, r), s->val);
    case CFG_KEEP:
        return walk_keep(c, r, base, s);
    case CFG_NAMED:
        return walk_named(c, r, base, s->val);
    case CFG_SECRET_FILES:
        return walk_secret_files(c, r, base, s->val);
    case CFG_LIST:
        return walk_list(c, r, base, s->val);
    case CFG_STRING_LIST:
        return walk_string_list(c, r, base, s->val);
    case CFG_STRING_MAP:
        return walk_string_map(c, r, base, s->val);
    default:
        return walk_scalar(c, r, base, s);
    }
}

/* An absent section still gets its derived values (redis.url's host from
 * the default URL, control.group's default); errors point at the parent. */
static int finish_absent(struct cfg_ctx *c, const struct cfg_row *r, void *base, int parent)
{
    static const struct cfg_seen none[CFG_MAX_ROWS];

    if (r->type != CFG_MAP || !r->sub->finish || (r->flags & CFG_REQUIRED))
        return 0;
    return r->sub->finish(c, field_of(base, r), none, parent);
}

static int walk_map(struct cfg_ctx *c, const struct cfg_table *t, void *base, int id)
{
    static const yaml_node_t no_pairs = { .type = YAML_MAPPING_NODE };
    struct cfg_seen seen[CFG_MAX_ROWS] = { { 0 } };
    const yaml_node_t *map = node_get(c, id);
    int ret;

    assert(t->n_rows <= CFG_MAX_ROWS);
    if (is_null(map))
        map = &no_pairs;
    if (map->type != YAML_MAPPING_NODE)
        return cfg_fail(c, id, "must be a mapping, not %s", kind_of(map));
    ret = scan_keys(c, t, map, seen);
    for (size_t i = 0; ret >= 0 && i < t->n_rows; i++) {
        size_t saved;

        saved = path_push(c, c->path_len ? ".%s%s" : "%s%s", t->rows[i].key,
                          seen[i].twin ? "_file" : "");
        if (seen[i].key)
            ret = walk_value(c, &t->rows[i], base, &seen[i]);
        else
            ret = finish_absent(c, &t->rows[i], base, id);
        path_pop(c, saved);
    }
    for (size_t i = 0; ret >= 0 && i < t->n_rows; i++) {
        if ((t->rows[i].flags & CFG_REQUIRED) && !(t->rows[i].flags & t->exclude) && !seen[i].key)
            ret = cfg_fail_key(c, id, t->rows[i].key, "required key is missing");
    }
    if (ret >= 0 && t->finish)
        ret = t->finish(c, base, seen, id);
    return ret;
}

/* ---- defaults, copy, free ---- */

static int apply_defaults(struct cfg_ctx *c, const struct cfg_table *t, void *base)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        const struct cfg_row *r = &t->rows[i];
        int ret = 0;

        /* A queue-only section's defaults still go into `defaults`: each
         * queue starts as a copy of it. */
        if (r->type == CFG_MAP)
            ret = apply_defaults(c, r->sub, field_of(base, r));
        else if (r->flags & t->exclude)
            continue;
        else if (r->def)
            ret = set_scalar(c, r, field_of(base, r), r->def, 0, 0, false);
        if (ret < 0)
            return ret;
    }
    return 0;
}

/* Replaces a string array shared with the copy's source by its own copy;
 * on failure the strings not copied are NULL. */
static int dup_array(const struct cfg_row *r, void *base)
{
    char ***field = field_of(base, r);
    size_t n = *(size_t *) ((char *) base + r->count_offset);
    char **src = *field, **v;

    if (!src)
        return 0;
    v = *field = calloc(n + 1, sizeof(*v));
    if (!v) {
        *(size_t *) ((char *) base + r->count_offset) = 0;
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        if (!(v[i] = strdup(src[i])))
            return -ENOMEM;
    return 0;
}

static int dup_strings(const struct cfg_table *t, void *base)
{
    int ret = 0;

    for (size_t i = 0; i < t->n_rows; i++) {
        const struct cfg_row *r = &t->rows[i];
        char **p = field_of(base, r);

        switch (r->type) {
        case CFG_STRING:
        case CFG_PATH:
        case CFG_SECRET:
        case CFG_SECRET_FILE:
            if (*p && !(*p = strdup(*p)))
                ret = -ENOMEM;
            break;
        case CFG_MAP:
        case CFG_KEEP:
            if (dup_strings(r->sub, p) < 0)
                ret = -ENOMEM;
            break;
        case CFG_STRING_LIST:
        case CFG_STRING_MAP:
            if (dup_array(r, base) < 0)
                ret = -ENOMEM;
            break;
        case CFG_NAMED:
        case CFG_SECRET_FILES:
        case CFG_LIST:
            assert(!"arrays are not copied");
            break;
        default:
            break;
        }
    }
    return ret;
}

int cfg_copy(const struct cfg_table *t, void *dst, const void *src, size_t size)
{
    memcpy(dst, src, size);
    return dup_strings(t, dst);
}

static void free_fields(const struct cfg_table *t, void *base)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        const struct cfg_row *r = &t->rows[i];
        void *f = field_of(base, r);
        size_t n = r->count_offset ? *(size_t *) ((char *) base + r->count_offset) : 0;

        switch (r->type) {
        case CFG_STRING:
        case CFG_PATH:
            free(*(char **) f);
            break;
        case CFG_SECRET:
        case CFG_SECRET_FILE:
            cfg_free_secret(*(char **) f);
            break;
        case CFG_LIST:
            for (size_t j = 0; j < n; j++)
                free_fields(r->sub, *(char **) f + j * r->named->item_size);
            free(*(void **) f);
            break;
        case CFG_MAP:
        case CFG_KEEP:
            free_fields(r->sub, f);
            break;
        case CFG_NAMED:
            for (size_t j = 0; j < n; j++) {
                char *item = *(char **) f + j * r->named->item_size;
                free_fields(r->sub, item);
                free(*(char **) (item + r->named->name_offset));
            }
            free(*(void **) f);
            break;
        case CFG_SECRET_FILES:
            for (size_t j = 0; j < n; j++)
                cfg_free_secret((*(char ***) f)[j]);
            free(*(void **) f);
            break;
        case CFG_STRING_LIST:
        case CFG_STRING_MAP:
            free_strings(*(char ***) f, n, r->type == CFG_STRING_MAP);
            break;
        default:
            break;
        }
    }
}

struct nq_config *nq_config_free(struct nq_config *cfg)
{
    if (!cfg)
        return NULL;
    free_fields(&nq_cfg_top_table, cfg);
    free(cfg->redis.host);
    free(cfg->path);
    free(cfg);
    return NULL;
}

/* ---- --set overrides, grafted into the document ---- */

static int fail_override(struct cfg_ctx *c, size_t ov, const char *fmt, ...) NQ_PRINTF(3, 4);

static int fail_override(struct cfg_ctx *c, size_t ov, const char *fmt, ...)
{
    char pos[NQ_ERR_MAX];
    va_list ap;
    int r;

    where_override(c, ov, pos, sizeof(pos));
    va_start(ap, fmt);
    r = fail_where(c, pos, fmt, ap);
    va_end(ap);
    return r;
}

/* libyaml refuses non-UTF-8 scalars; say so rather than "out of memory". */
static bool valid_utf8(const char *s)
{
    static const uint32_t min[] = { 0, 0x80, 0x800, 0x10000 };
    const unsigned char *p = (const unsigned char *) s;

    while (*p) {
        int n = *p < 0x80             ? 0
                : (*p & 0xE0) == 0xC0 ? 1
                : (*p & 0xF0) == 0xE0 ? 2
                : (*p & 0xF8) == 0xF0 ? 3
                                      : -1;
        uint32_t v;

        if (n < 0)
            return false;
        v = n == 0 ? *p : (uint32_t) (*p & (0x3F >> n));
        p++;
        for (int i = 0; i < n; i++, p++) {
            if ((*p & 0xC0) != 0x80)
                return false;
            v = (v << 6) | (*p & 0x3F);
        }
        if (v < min[n] || v > 0x10FFFF)
            return false;
    }
    return true;
}

static int set_origin(struct cfg_ctx *c, int id, size_t ov)
{
    if ((size_t) id > c->n_origin) {
        size_t n = (size_t) id + 16;
        size_t *o = realloc(c->origin, n * sizeof(*o));

        if (!o)
            return cfg_oom(c);
        memset(o + c->n_origin, 0, (n - c->n_origin) * sizeof(*o));
        c->origin = o;
        c->n_origin = n;
    }
    c->origin[id - 1] = ov;
    return id;
}

static int add_scalar(struct cfg_ctx *c, const char *s, size_t ov)
{
    int id = yaml_document_add_scalar(&c->doc, NULL, (const yaml_char_t *) s, -1,
                                      YAML_DOUBLE_QUOTED_SCALAR_STYLE);

    return id ? set_origin(c, id, ov) : cfg_oom(c);
}

static int add_mapping(struct cfg_ctx *c, size_t ov)
{
    int id = yaml_document_add_mapping(&c->doc, NULL, YAML_BLOCK_MAPPING_STYLE);

    return id ? set_origin(c, id, ov) : cfg_oom(c);
}

static int pair_index(const struct cfg_ctx *c, int map, const char *key)
{
    const yaml_node_t *m = node_get(c, map);

    for (int i = 0; m->data.mapping.pairs.start + i < m->data.mapping.pairs.top; i++) {
        const yaml_node_t *k = node_get(c, m->data.mapping.pairs.start[i].key);

        if (k->type == YAML_SCALAR_NODE && strcmp((const char *) k->data.scalar.value, key) == 0)
            return i;
    }
    return -1;
}

static int append_pair(struct cfg_ctx *c, int map, const char *key, int val, size_t ov)
{
    int k = add_scalar(c, key, ov);

    if (k < 0)
        return k;
    return yaml_document_append_mapping_pair(&c->doc, map, k, val) ? 0 : cfg_oom(c);
}

/* Makes the value of pair pi of map a mapping of its own and returns its id:
 * a copy when it is one (an alias may share it with other keys, which the
 * override must not touch), a new empty one otherwise. */
static int descend(struct cfg_ctx *c, int map, int pi, size_t ov)
{
    int val = node_get(c, map)->data.mapping.pairs.start[pi].value;
    const yaml_node_t *v = node_get(c, val);
    int id;

    if (v->type != YAML_MAPPING_NODE) {
        id = add_mapping(c, ov);
    } else {
        yaml_mark_t start = v->start_mark;
        size_t from = origin_of(c, val);

        id = yaml_document_add_mapping(&c->doc, NULL, v->data.mapping.style);
        if (!id)
            return cfg_oom(c);
        for (int i = 0;; i++) {
            v = node_get(c, val);
            if (v->data.mapping.pairs.start + i >= v->data.mapping.pairs.top)
                break;
            if (!yaml_document_append_mapping_pair(&c->doc, id, v->data.mapping.pairs.start[i].key,
                                                   v->data.mapping.pairs.start[i].value))
                return cfg_oom(c);
        }
        node_get(c, id)->start_mark = start;
        id = set_origin(c, id, from);
    }
    if (id > 0)
        node_get(c, map)->data.mapping.pairs.start[pi].value = id;
    return id;
}

/* KEY replaces KEY_file and the other way round. */
static void drop_twin(struct cfg_ctx *c, int map, const struct cfg_row *r, bool twin)
{
    char other[64];
    yaml_node_t *m;
    int pi;

    (void) snprintf(other, sizeof(other), "%s%s", r->key, twin ? "" : "_file");
    pi = pair_index(c, map, other);
    if (pi < 0)
        return;
    m = node_get(c, map);
    memmove(m->data.mapping.pairs.start + pi, m->data.mapping.pairs.start + pi + 1,
            (size_t) (m->data.mapping.pairs.top - m->data.mapping.pairs.start - pi - 1) *
                sizeof(yaml_node_pair_t));
    m->data.mapping.pairs.top--;
}

static int set_leaf(struct cfg_ctx *c, int map, const char *key, const struct cfg_row *r, bool twin,
                    const char *value, size_t ov)
{
    int val, pi, ret = 0;

    c->override_secret[ov - 1] = r->type == CFG_SECRET && !twin;
    val = add_scalar(c, value, ov);
    if (val < 0)
        return val;
    pi = pair_index(c, map, key);
    if (pi >= 0)
        node_get(c, map)->data.mapping.pairs.start[pi].value = val;
    else
        ret = append_pair(c, map, key, val, ov);
    if (ret < 0)
        return ret;
    if (r->type == CFG_SECRET)
        drop_twin(c, map, r, twin);
    return 0;
}

/* The scalar value of pair pi when it is r's shorthand (`templates: DIR`),
 * so an override of one of r's keys keeps it; else 0. */
static int shorthand_value(struct cfg_ctx *c, const struct cfg_row *r, int map, int pi)
{
    int val = node_get(c, map)->data.mapping.pairs.start[pi].value;
    const yaml_node_t *v = node_get(c, val);

    return r->shorthand && v->type == YAML_SCALAR_NODE && !is_null(v) ? val : 0;
}

/* How far an override's key path has got. */
struct ov_cursor {
    size_t ov;                   /* override index + 1 */
    int map;                     /* the mapping the next segment is a key of */
    const struct cfg_table *t;   /* its table */
    const struct cfg_row *named; /* set when map's keys are queue or tenant names */
};

/* seg names a queue or tenant of cur->map: step into it. Never created: a
 * misspelt name must not start a new queue. */
static int step_named(struct cfg_ctx *c, struct ov_cursor *cur, const char *seg, bool last)
{
    const struct cfg_row *r = cur->named;
    int pi = pair_index(c, cur->map, seg);

    if (pi < 0)
        return fail_override(c, cur->ov, "no such %s", r->named->what);
    if (last)
        return fail_override(c, cur->ov, "is a %s, set one of its keys", r->named->what);
    cur->map = descend(c, cur->map, pi, cur->ov);
    cur->t = r->sub;
    cur->named = NULL;
    return cur->map < 0 ? cur->map : 0;
}

/* seg is a key of cur->map: set it to value when that is given, else step
 * into its mapping, made when the file lacks it. */
static int step_key(struct cfg_ctx *c, struct ov_cursor *cur, const char *seg, const char *value)
{
    bool twin = false;
    const struct cfg_row *r = find_row(cur->t, seg, &twin);
    int pi, m;

    if (!r)
        return fail_override(c, cur->ov, "unknown key");
    if (r->flags & cur->t->exclude)
        return fail_override(c, cur->ov, "%s", cur->t->exclude_why);
    if (value)
        return set_leaf(c, cur->map, seg, r, twin, value, cur->ov);
    if (r->type != CFG_MAP && r->type != CFG_KEEP && r->type != CFG_NAMED)
        return fail_override(c, cur->ov, "has no keys below it");
    pi = pair_index(c, cur->map, seg);
    if (pi >= 0) {
        int short_val = shorthand_value(c, r, cur->map, pi);

        m = descend(c, cur->map, pi, cur->ov);
        if (m > 0 && short_val > 0 && append_pair(c, m, r->shorthand, short_val, cur->ov) < 0)
            m = -ENOMEM;
    } else {
        m = add_mapping(c, cur->ov);
        if (m > 0 && append_pair(c, cur->map, seg, m, cur->ov) < 0)
            m = -ENOMEM;
    }
    if (m < 0)
        return m;
    cur->map = m;
    if (r->type == CFG_NAMED)
        cur->named = r;
    else
        cur->t = r->sub;
    return 0;
}

/* Walks KEY's dots down the tables and the document and puts VALUE at the
 * end, as a quoted scalar: "null" or "~" mean themselves. */
static int apply_override(struct cfg_ctx *c, size_t i)
{
    const char *s = c->overrides[i], *eq = strchr(s, '=');
    struct ov_cursor cur = { .ov = i + 1, .map = 1, .t = &nq_cfg_top_table };
    nq_autofree char *keys = NULL;

    path_pop(c, 0);
    c->override_secret[i] = true;
    if (!valid_utf8(s))
        return fail_override(c, cur.ov, "not valid UTF-8");
    if (!eq || eq == s)
        return fail_override(c, cur.ov, "expected KEY=VALUE, e.g. queues.email.concurrency=10");
    keys = strndup(s, (size_t) (eq - s));
    if (!keys)
        return cfg_oom(c);
    for (char *seg = keys, *dot; seg; seg = dot ? dot + 1 : NULL) {
        int r;

        dot = strchr(seg, '.');
        if (dot)
            *dot = '\0';
        if (!*seg)
            return fail_override(c, cur.ov, "empty key in %.*s", (int) (eq - s), s);
        (void) path_push_key(c, seg);
        r = cur.named ? step_named(c, &cur, seg, !dot)
                      : step_key(c, &cur, seg, dot ? NULL : eq + 1);
        if (r < 0)
            return r;
    }
    return 0;
}

/* ---- loading ---- */

static int syntax_error(struct cfg_ctx *c, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "invalid YAML";

    if (p->error == YAML_MEMORY_ERROR)
        return cfg_oom(c);
    if (p->error == YAML_READER_ERROR)
        return nq_err_set(c->err, -EINVAL, "%s: %s at byte %zu", c->name, problem,
                          p->problem_offset);
    if (p->context)
        return nq_err_set(c->err, -EINVAL, "%s:%zu:%zu: %s (%s at %zu:%zu)", c->name,
                          p->problem_mark.line + 1, p->problem_mark.column + 1, problem, p->context,
                          p->context_mark.line + 1, p->context_mark.column + 1);
    return nq_err_set(c->err, -EINVAL, "%s:%zu:%zu: %s", c->name, p->problem_mark.line + 1,
                      p->problem_mark.column + 1, problem);
}

/* The root is node 1, a mapping; an empty file counts as an empty one. */
static int check_root(struct cfg_ctx *c)
{
    const yaml_node_t *root = yaml_document_get_root_node(&c->doc);

    if (root && root->type == YAML_MAPPING_NODE)
        return 0;
    if (root)
        return cfg_fail(c, 1, "the top level must be a mapping, not %s", kind_of(root));
    /* A loaded empty document has no node stack to add to: start afresh. */
    yaml_document_delete(&c->doc);
    c->have_doc = yaml_document_initialize(&c->doc, NULL, NULL, NULL, 1, 1);
    if (!c->have_doc || add_mapping(c, 0) < 0)
        return cfg_oom(c);
    return 0;
}

/* Refuses nesting beyond CONFIG_MAX_DEPTH from the parser's events, before
 * a document is built: parsing stops at the first collection too deep, so
 * its cost stays bounded whatever the depth. A syntax error is left to the
 * load, which reports it. */
static int check_depth(struct cfg_ctx *c, const char *buf, size_t len)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int depth = 0, r = 0;
    bool done = false;

    if (!yaml_parser_initialize(&p))
        return cfg_oom(c);
    yaml_parser_set_input_string(&p, (const unsigned char *) buf, len);
    while (!done && r == 0 && yaml_parser_parse(&p, &ev)) {
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (++depth > CONFIG_MAX_DEPTH)
                r = nq_err_set(
                    c->err, -EINVAL, "%s:%zu:%zu: mappings and lists nested deeper than %d levels",
                    c->name, ev.start_mark.line + 1, ev.start_mark.column + 1, CONFIG_MAX_DEPTH);
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            depth--;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    if (p.error == YAML_MEMORY_ERROR)
        r = cfg_oom(c);
    yaml_parser_delete(&p);
    return r;
}

static int load_document(struct cfg_ctx *c, const char *buf, size_t len)
{
    yaml_parser_t p;
    yaml_document_t extra;
    int r = 0;

    if ((r = check_depth(c, buf, len)) < 0)
        return r;
    if (!yaml_parser_initialize(&p))
        return cfg_oom(c);
    yaml_parser_set_input_string(&p, (const unsigned char *) buf, len);
    if (!yaml_parser_load(&p, &c->doc)) {
        r = syntax_error(c, &p);
    } else {
        c->have_doc = true;
        if (!yaml_parser_load(&p, &extra)) {
            r = syntax_error(c, &p);
        } else {
            const yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root)
                r = nq_err_set(c->err, -EINVAL, "%s:%zu:%zu: only one YAML document is allowed",
                               c->name, root->start_mark.line + 1, root->start_mark.column + 1);
            yaml_document_delete(&extra);
        }
    }
    yaml_parser_delete(&p);
    return r < 0 ? r : check_root(c);
}

/* Inline passwords pass through the document: wipe it before freeing. */
static void wipe_document(yaml_document_t *doc)
{
    for (yaml_node_t *n = doc->nodes.start; n && n < doc->nodes.top; n++) {
        if (n->type == YAML_SCALAR_NODE)
            explicit_bzero(n->data.scalar.value, n->data.scalar.length);
    }
}

static int build(struct cfg_ctx *c)
{
    int r;

    c->cfg = calloc(1, sizeof(*c->cfg));
    if (!c->cfg || !(c->cfg->path = strdup(c->name)))
        return cfg_oom(c);
    path_pop(c, 0);
    r = apply_defaults(c, &nq_cfg_top_table, c->cfg);
    if (r < 0)
        return r;
    return walk_map(c, &nq_cfg_top_table, c->cfg, 1);
}

static int parse(const char *name, const char *buf, size_t len, char *const *overrides,
                 size_t n_overrides, struct nq_config **ret_cfg, struct nq_err *err)
{
    struct cfg_ctx c = {
        .name = name,
        .err = err,
        .overrides = overrides,
        .n_overrides = n_overrides,
    };
    int r = 0;

    if (n_overrides && !(c.override_secret = calloc(n_overrides, sizeof(bool))))
        r = cfg_oom(&c);
    if (r >= 0)
        r = load_document(&c, buf, len);
    for (size_t i = 0; r >= 0 && i < n_overrides; i++)
        r = apply_override(&c, i);
    if (r >= 0)
        r = build(&c);
    if (r >= 0)
        *ret_cfg = NQ_TAKE_PTR(c.cfg);
    (void) nq_config_free(c.cfg);
    if (c.have_doc) {
        wipe_document(&c.doc);
        yaml_document_delete(&c.doc);
    }
    free(c.origin);
    free(c.override_secret);
    return r;
}

int nq_config_parse_string(const char *name, const char *yaml, char *const *overrides,
                           size_t n_overrides, struct nq_config **ret_cfg, struct nq_err *err)
{
    return parse(name, yaml, strlen(yaml), overrides, n_overrides, ret_cfg, err);
}

int nq_config_load(const char *path, char *const *overrides, size_t n_overrides,
                   struct nq_config **ret_cfg, struct nq_err *err)
{
    char *buf = NULL;
    const char *kind = NULL;
    size_t len = 0;
    int r = read_file(path, CONFIG_MAX_BYTES, &buf, &len, &kind);

    if (kind)
        return nq_err_set(err, r == -EISDIR ? r : -EINVAL, "%s: is %s, not a regular file", path,
                          kind);
    if (r == -EFBIG)
        return nq_err_set(err, r, "%s: larger than %u MiB", path, CONFIG_MAX_BYTES >> 20);
    if (r < 0)
        return nq_err_set(err, r, "%s: %s", path, strerror(-r));
    r = parse(path, buf, len, overrides, n_overrides, ret_cfg, err);
    explicit_bzero(buf, len);
    free(buf);
    return r;
}

/* ---- the tables as data: key list and reload check ---- */

static const char *const key_type[] = {
    [CFG_STRING] = "string",
    [CFG_PATH] = "path",
    [CFG_SECRET] = "secret",
    [CFG_UINT] = "integer",
    [CFG_FLOAT] = "number",
    [CFG_DURATION] = "duration",
    [CFG_ENUM] = "enum",
    [CFG_MODE] = "octal mode",
    [CFG_MAP] = "mapping",
    [CFG_KEEP] = "retention",
    [CFG_NAMED] = "mapping of names",
    [CFG_SECRET_FILES] = "list of files",
    [CFG_BOOL] = "boolean",
    [CFG_STRING_LIST] = "list of strings",
    [CFG_STRING_MAP] = "mapping of strings",
    [CFG_SECRET_FILE] = "file",
    [CFG_LIST] = "list of mappings",
};

static void describe_range(const struct cfg_row *r, char *buf, size_t size)
{
    char lo[32], hi[32];

    buf[0] = '\0';
    switch (r->type) {
    case CFG_UINT:
        (void) snprintf(buf, size, "%" PRIu64 "..%" PRIu64, r->min, r->max);
        break;
    case CFG_FLOAT:
        (void) snprintf(buf, size, "%g..%g", r->fmin, r->fmax);
        break;
    case CFG_DURATION:
        nq_duration_format(r->min, lo, sizeof(lo));
        nq_duration_format(r->max, hi, sizeof(hi));
        (void) snprintf(buf, size, "%s..%s", r->min ? lo : "0", hi);
        break;
    case CFG_MODE:
        (void) snprintf(buf, size, "0000..%04" PRIo64, r->max);
        break;
    case CFG_ENUM:
        enum_list(r->enums, ", ", buf, size);
        break;
    default:
        break;
    }
}

struct key_walk {
    nq_config_key_fn fn;
    void *userdata;
    char path[256];
};

static int foreach_rows(struct key_walk *w, const struct cfg_table *t, size_t len)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        const struct cfg_row *r = &t->rows[i];
        char range[256];
        struct nq_config_key k = {
            .path = w->path,
            .type = key_type[r->type],
            .def = r->def,
            .range = range,
            .required = r->flags & CFG_REQUIRED,
            .reloadable = !(r->flags & CFG_NO_RELOAD),
        };
        size_t n;
        int ret;

        if (r->flags & t->exclude)
            continue;
        n = len +
            (size_t) snprintf(w->path + len, sizeof(w->path) - len, "%s%s", len ? "." : "", r->key);
        describe_range(r, range, sizeof(range));
        if (!range[0])
            k.range = NULL;
        ret = w->fn(&k, w->userdata);
        if (ret == 0 && r->type == CFG_SECRET) {
            (void) snprintf(w->path + n, sizeof(w->path) - n, "_file");
            k = (struct nq_config_key){ .path = w->path,
                                        .type = "file",
                                        .reloadable = k.reloadable };
            ret = w->fn(&k, w->userdata);
            w->path[n] = '\0';
        }
        if (ret == 0 && (r->type == CFG_MAP || r->type == CFG_KEEP))
            ret = foreach_rows(w, r->sub, n);
        if (ret == 0 && r->type == CFG_NAMED)
            ret = foreach_rows(w, r->sub,
                               n + (size_t) snprintf(w->path + n, sizeof(w->path) - n, ".*"));
        /* A list's items' keys: "http.tokens.role" for each item's role. */
        if (ret == 0 && r->type == CFG_LIST)
            ret = foreach_rows(w, r->sub, n);
        w->path[len] = '\0';
        if (ret)
            return ret;
    }
    return 0;
}

int nq_config_foreach_key(nq_config_key_fn fn, void *userdata)
{
    struct key_walk w = { .fn = fn, .userdata = userdata };

    return foreach_rows(&w, &nq_cfg_top_table, 0);
}

static bool same_value(const struct cfg_row *r, const void *a, const void *b)
{
    switch (r->type) {
    case CFG_STRING:
    case CFG_PATH:
    case CFG_SECRET: {
        const char *x = *(char *const *) a, *y = *(char *const *) b;
        return x == y || (x && y && strcmp(x, y) == 0);
    }
    case CFG_UINT:
        return *(const uint32_t *) a == *(const uint32_t *) b;
    case CFG_DURATION:
        return *(const uint64_t *) a == *(const uint64_t *) b;
    case CFG_ENUM:
        return *(const int *) a == *(const int *) b;
    case CFG_MODE:
        return *(const mode_t *) a == *(const mode_t *) b;
    case CFG_FLOAT:
        return *(const double *) a == *(const double *) b;
    case CFG_BOOL:
        return *(const bool *) a == *(const bool *) b;
    default:
        assert(!"only scalars are CFG_NO_RELOAD");
        return false;
    }
}

static int compare_rows(const struct cfg_table *t, const void *a, const void *b, char *path,
                        size_t len, struct nq_err *err, const char *file)
{
    for (size_t i = 0; i < t->n_rows; i++) {
        const struct cfg_row *r = &t->rows[i];
        const char *fa = (const char *) a + r->offset, *fb = (const char *) b + r->offset;
        size_t n = len + (size_t) snprintf(path + len, 256 - len, "%s%s", len ? "." : "", r->key);
        int ret = 0;

        if (r->type == CFG_MAP)
            ret = compare_rows(r->sub, fa, fb, path, n, err, file);
        else if ((r->flags & CFG_NO_RELOAD) && !same_value(r, fa, fb))
            ret = nq_err_set(err, -EINVAL,
                             "%s: %s: changed, but a reload cannot change it; "
                             "restart notifyqd to apply",
                             file, path);
        path[len] = '\0';
        if (ret < 0)
            return ret;
    }
    return 0;
}

int nq_config_check_reload(const struct nq_config *old, const struct nq_config *new,
                           struct nq_err *err)
{
    char path[256] = "";

    return compare_rows(&nq_cfg_top_table, old, new, path, 0, err, new->path);
}
