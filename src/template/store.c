/* SPDX-License-Identifier: MIT */
/*
 * The template store (see template.h): files under the templates directory,
 * read and compiled on first use, kept by path in a hash table for the life
 * of the worker process. What a path turned out to be is kept too: a file
 * that does not exist, or one that does not compile (its error text), so a
 * stream of jobs naming a broken template costs one read, not one each.
 * Files that do not exist are remembered only up to ABSENT_MAX: job data
 * chooses the names, and must not grow the table without bound.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "template/internal.h"

#define DEFAULT_SET "default"
#define BUCKETS_MIN 64
#define ABSENT_MAX 4096

struct entry {
    struct entry *next;
    char *path;
    struct nq_template *t; /* NULL: no such file, or error */
    char *error;           /* why it failed to load, or NULL */
    int error_code;
};

struct nq_template_store {
    char *dir;
    bool strict;
    struct entry **buckets;
    size_t n_buckets, n_entries, n_absent;
    struct entry absent; /* what a path not remembered resolves to */
};

/* The three parts of a template id, in struct nq_template_rendered order. */
static const struct {
    const char *suffix;
    bool escape_html;
} parts[] = {
    { "subject", false },
    { "txt", false },
    { "html", true },
};

int nq_template_name_check(const char *name, size_t len, const char **ret_why)
{
    *ret_why = NULL;
    if (len == 0)
        *ret_why = "must not be empty";
    else if (len > NQ_TEMPLATE_NAME_MAX)
        *ret_why = "longer than 128 bytes";
    else if (memchr(name, '\0', len))
        *ret_why = "must not contain a NUL byte";
    else if (memchr(name, '/', len))
        *ret_why = "must not contain '/'";
    else if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 || strstr(name, ".."))
        *ret_why = "must not contain '..' or be '.'";
    return *ret_why ? -EINVAL : 0;
}

void nq_template_rendered_done(struct nq_template_rendered *r)
{
    free(r->subject);
    free(r->text);
    free(r->html);
    *r = (struct nq_template_rendered){ NULL, NULL, NULL };
}

struct nq_template_store *nq_template_store_new(const char *dir, bool strict)
{
    struct nq_template_store *s = calloc(1, sizeof(*s));

    if (!s)
        return NULL;
    s->strict = strict;
    s->n_buckets = BUCKETS_MIN;
    s->dir = strdup(dir);
    s->buckets = calloc(s->n_buckets, sizeof(struct entry *));
    if (!s->dir || !s->buckets)
        return nq_template_store_free(s);
    return s;
}

struct nq_template_store *nq_template_store_free(struct nq_template_store *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; s->buckets && i < s->n_buckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e; e = next) {
            next = e->next;
            nq_template_free(e->t);
            free(e->error);
            free(e->path);
            free(e);
        }
    }
    free(s->buckets);
    free(s->dir);
    free(s);
    return NULL;
}

static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */

    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ull;
    return (size_t) h;
}

static struct entry *entry_find(const struct nq_template_store *s, const char *path)
{
    for (struct entry *e = s->buckets[hash(path) % s->n_buckets]; e; e = e->next)
        if (strcmp(e->path, path) == 0)
            return e;
    return NULL;
}

/* Doubles the table when it gets crowded; a failed grow keeps the old one. */
static void maybe_grow(struct nq_template_store *s)
{
    size_t n = s->n_buckets * 2;
    struct entry **b;

    if (s->n_entries < 2 * s->n_buckets || !(b = calloc(n, sizeof(struct entry *))))
        return;
    for (size_t i = 0; i < s->n_buckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e; e = next) {
            size_t k = hash(e->path) % n;

            next = e->next;
            e->next = b[k];
            b[k] = e;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->n_buckets = n;
}

/* The file's bytes, capped; -ENOENT when it does not exist. */
static int read_source(const char *path, char **ret, size_t *ret_len, struct nq_err *err)
{
    nq_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    nq_autofree char *buf = NULL;
    struct stat st;
    size_t len = 0;

    if (fd < 0 && errno == ENOENT)
        return -ENOENT;
    if (fd < 0 || fstat(fd, &st) < 0)
        return nq_err_set(err, -errno, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return nq_err_set(err, -EINVAL, "%s: not a regular file", path);
    if ((uint64_t) st.st_size > NQ_TEMPLATE_SOURCE_MAX)
        return nq_err_set(err, -EFBIG, "%s: larger than %u bytes", path, NQ_TEMPLATE_SOURCE_MAX);
    buf = malloc((size_t) st.st_size + 1);
    if (!buf)
        return nq_err_set(err, -ENOMEM, "out of memory");
    while (len < (size_t) st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t) st.st_size - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return nq_err_set(err, -errno, "%s: %s", path, strerror(errno));
        if (n == 0)
            break; /* shrank while read: compile what is there */
        len += (size_t) n;
    }
    buf[len] = '\0';
    *ret = NQ_TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

static int entry_load(struct entry *e)
{
    nq_autofree char *src = NULL;
    struct nq_err err = { "" };
    size_t len = 0;
    int r;

    r = read_source(e->path, &src, &len, &err);
    if (r == -ENOENT)
        return 0;
    if (r >= 0)
        r = nq_template_compile(e->path, src, len, &e->t, &err);
    if (r == -ENOMEM)
        return r; /* not remembered: the next job may have the memory */
    if (r < 0) {
        e->error_code = r;
        e->error = strdup(nq_err_str(&err));
        if (!e->error)
            return -ENOMEM;
    }
    return 0;
}

/* The cached entry for path, loading it on first use. */
static int entry_get(struct nq_template_store *s, const char *path, struct entry **ret,
                     struct nq_err *err)
{
    struct entry *e = entry_find(s, path);
    size_t k;
    int r;

    if (e) {
        *ret = e;
        return 0;
    }
    e = calloc(1, sizeof(*e));
    if (!e || !(e->path = strdup(path))) {
        free(e);
        return nq_err_set(err, -ENOMEM, "out of memory");
    }
    r = entry_load(e);
    if (r < 0 || (!e->t && !e->error && s->n_absent >= ABSENT_MAX)) {
        free(e->path);
        free(e);
        *ret = &s->absent;
        return r < 0 ? nq_err_set(err, r, "out of memory") : 0;
    }
    s->n_absent += !e->t && !e->error;
    maybe_grow(s);
    k = hash(path) % s->n_buckets;
    e->next = s->buckets[k];
    s->buckets[k] = e;
    s->n_entries++;
    *ret = e;
    return 0;
}

/* <dir>/<set>/<name>.<suffix>.mustache */
static int path_of(const struct nq_template_store *s, const char *set, const char *name,
                   const char *suffix, char **ret, struct nq_err *err)
{
    if (asprintf(ret, "%s/%s/%s.%s.mustache", s->dir, set, name, suffix) < 0)
        return nq_err_set(err, -ENOMEM, "out of memory");
    return 0;
}

/* The compiled template at set/name.suffix: 0 and *ret (NULL when there is
 * no such file), or its load error. */
static int lookup(struct nq_template_store *s, const char *set, const char *name,
                  const char *suffix, const struct nq_template **ret, struct nq_err *err)
{
    nq_autofree char *path = NULL;
    struct entry *e = NULL;
    int r;

    r = path_of(s, set, name, suffix, &path, err);
    if (r >= 0)
        r = entry_get(s, path, &e, err);
    if (r < 0)
        return r;
    if (e->error)
        return nq_err_set(err, e->error_code, "%s", e->error);
    *ret = e->t;
    return 0;
}

struct partial_ctx {
    struct nq_template_store *s;
    const char *set; /* where the template came from */
};

static int find_partial(void *userdata, const char *name, const struct nq_template **ret,
                        struct nq_err *err)
{
    struct partial_ctx *pc = userdata;
    const char *why;
    int r;

    if (nq_template_name_check(name, strlen(name), &why) < 0)
        return nq_err_set(err, -EINVAL, "partial '%.128s': %s", name, why);
    *ret = NULL;
    r = lookup(pc->s, pc->set, name, "partial", ret, err);
    if (r >= 0 && !*ret && strcmp(pc->set, DEFAULT_SET) != 0)
        r = lookup(pc->s, DEFAULT_SET, name, "partial", ret, err);
    return r;
}

/* The parts of id in set; 0 with all NULL when set has none of them. */
static int find_parts(struct nq_template_store *s, const char *set, const char *id,
                      const struct nq_template *ret[3], struct nq_err *err)
{
    for (size_t i = 0; i < NQ_ELEMENTSOF(parts); i++) {
        ret[i] = NULL;
        int r = lookup(s, set, id, parts[i].suffix, &ret[i], err);
        if (r < 0)
            return r;
    }
    return 0;
}

static int render_parts(struct nq_template_store *s, const char *set,
                        const struct nq_template *t[3], const json_t *vars,
                        struct nq_template_rendered *ret, struct nq_err *err)
{
    struct nq_template_rendered out = { NULL, NULL, NULL };
    char **dst[] = { &out.subject, &out.text, &out.html };
    struct partial_ctx pc = { .s = s, .set = set };
    int r = 0;

    for (size_t i = 0; i < NQ_ELEMENTSOF(parts) && r >= 0; i++) {
        struct nq_template_render_opts o = { .escape_html = parts[i].escape_html,
                                             .strict = s->strict,
                                             .partial = find_partial,
                                             .partial_userdata = &pc };
        if (t[i])
            r = nq_template_render(t[i], vars, &o, dst[i], err);
    }
    if (r < 0) {
        nq_template_rendered_done(&out);
        return r;
    }
    *ret = out;
    return 0;
}

int nq_template_store_render(struct nq_template_store *s, const char *tenant, const char *id,
                             const json_t *vars, struct nq_template_rendered *ret,
                             struct nq_err *err)
{
    const struct nq_template *t[3] = { NULL, NULL, NULL };
    const char *set = tenant ? tenant : DEFAULT_SET, *why;
    int r;

    if (nq_template_name_check(id, strlen(id), &why) < 0)
        return nq_err_set(err, -EINVAL, "template id '%.128s': %s", id, why);
    if (tenant && nq_template_name_check(tenant, strlen(tenant), &why) < 0)
        return nq_err_set(err, -EINVAL, "tenant '%.128s': %s", tenant, why);
    r = find_parts(s, set, id, t, err);
    if (r >= 0 && !t[0] && !t[1] && !t[2] && strcmp(set, DEFAULT_SET) != 0) {
        set = DEFAULT_SET;
        r = find_parts(s, set, id, t, err);
    }
    if (r < 0)
        return r;
    if (!t[0] && !t[1] && !t[2]) {
        if (tenant && strcmp(tenant, DEFAULT_SET) != 0)
            return nq_err_set(err, -ENOENT, "template '%s' not found in %s/%s or %s/%s", id, s->dir,
                              tenant, s->dir, DEFAULT_SET);
        return nq_err_set(err, -ENOENT, "template '%s' not found in %s/%s", id, s->dir,
                          DEFAULT_SET);
    }
    return render_parts(s, set, t, vars, ret, err);
}
