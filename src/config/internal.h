/* SPDX-License-Identifier: MIT */
/*
 * Shared by the config module's files only (config.c, walk.c, url.c).
 *
 * Every YAML mapping the file may hold has one struct cfg_table: a row per
 * key with its type, the offsetof() of its field, range, default (written as
 * in the file, so the defaults go through the same parsers as user values),
 * and flags. walk.c knows no key names: it walks a libyaml document with the
 * tables, reports errors as FILE:LINE:COL: key.path: message, and uses the
 * same tables to apply defaults, copy, free, compare and list the keys.
 * A table's finish hook adds the checks and derived values that span keys.
 */
#ifndef NQ_CONFIG_INTERNAL_H
#define NQ_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "common/macros.h"

struct nq_config;
struct nq_err;

enum cfg_type {
    CFG_STRING,       /* char *, ${ENV} expanded, never empty */
    CFG_PATH,         /* char *, an absolute path */
    CFG_SECRET,       /* char *; KEY inline or KEY_file naming a file holding it */
    CFG_UINT,         /* uint32_t in min..max */
    CFG_FLOAT,        /* double in fmin..fmax */
    CFG_DURATION,     /* uint64_t ms in min..max, common/duration.h syntax */
    CFG_ENUM,         /* int, one of enums[] */
    CFG_MODE,         /* mode_t written in octal, at most max */
    CFG_MAP,          /* embedded struct walked with sub; merges over what is there */
    CFG_KEEP,         /* struct nq_keep_cfg: true | false | mapping walked with sub */
    CFG_NAMED,        /* NAME -> mapping: array at offset, size_t count at count_offset */
    CFG_SECRET_FILES, /* list of files, each holding one secret: char ** + size_t count */
    CFG_BOOL,         /* bool: true or false */
    CFG_STRING_LIST,  /* list of strings, ${ENV} expanded, may be empty: char ** + size_t
                       * count, the array NULL-terminated too (an argv) */
    CFG_SECRET_FILE,  /* char *: the value names a file; the field gets the secret it holds */
    CFG_LIST,         /* list of mappings walked with sub, each named->item_size bytes:
                       * array at offset, size_t count at count_offset; at least one */
    CFG_STRING_MAP,   /* NAME -> string, ${ENV} expanded: "NAME=value" char ** + size_t count,
                       * NULL-terminated (an envp); wiped when freed (they may hold tokens) */
};

enum {
    CFG_REQUIRED = 1 << 0,
    CFG_NO_RELOAD = 1 << 1,  /* a reload may not change it (nq_config_check_reload) */
    CFG_QUEUE_ONLY = 1 << 2, /* a queue key that `defaults` refuses */
};

struct cfg_ctx;

struct cfg_enum {
    const char *name;
    int value;
};

/* Per row of a table, where its key was found in the mapping walked. */
struct cfg_seen {
    int key, val; /* libyaml node ids; 0 when the key is absent */
    bool twin;    /* CFG_SECRET given as KEY_file */
};

struct cfg_table {
    const struct cfg_row *rows;
    size_t n_rows;
    unsigned exclude;        /* rows with one of these flags are refused here */
    const char *exclude_why; /* the message then */
    /* Cross-key checks and derived values, after every key of the mapping
     * (node) was parsed; seen[] is indexed like rows. */
    int (*finish)(struct cfg_ctx *c, void *base, const struct cfg_seen *seen, int node);
};

struct cfg_named {
    /* CFG_LIST uses item_size only. */
    const char *what; /* "queue": messages say "no such queue" */
    size_t item_size;
    size_t name_offset; /* char * holding the map key */
    /* Prepares a zeroed item before its keys are walked (copies `defaults`,
     * checks the name); key is the name's node, for messages. */
    int (*init)(struct cfg_ctx *c, void *item, int key);
};

struct cfg_row {
    const char *key;
    enum cfg_type type;
    unsigned flags;
    size_t offset;
    size_t count_offset;          /* CFG_NAMED, CFG_SECRET_FILES, CFG_STRING_LIST/MAP */
    uint64_t min, max;            /* CFG_UINT, CFG_DURATION; max for CFG_MODE */
    double fmin, fmax;            /* CFG_FLOAT */
    const char *def;              /* default as written in the file; NULL: none */
    const struct cfg_enum *enums; /* CFG_ENUM, ended by a NULL name */
    const struct cfg_table *sub;  /* CFG_MAP, CFG_KEEP, CFG_NAMED (one item) */
    const struct cfg_named *named;
    /* CFG_MAP: a scalar in place of the mapping sets this key of it
     * (`templates: DIR` for `templates: {dir: DIR}`). */
    const char *shorthand;
    /* CFG_STRING, CFG_PATH, CFG_STRING_LIST items: extra check of the
     * expanded value; CFG_STRING_MAP: of each name. Returns NULL when fine,
     * else the message. */
    const char *(*check)(const char *value);
};

#define CFG_MAX_ROWS 48

/* The document being turned into a config; see walk.c. */
struct cfg_ctx {
    const char *name; /* the file as given, for messages */
    yaml_document_t doc;
    bool have_doc;
    struct nq_err *err;
    struct nq_config *cfg;
    char *const *overrides;
    size_t n_overrides;
    bool *override_secret; /* hide the value of that --set in messages */
    size_t *origin;        /* per node id - 1: 0 from the file, i + 1 made by override i */
    size_t n_origin;
    char path[256]; /* key path of what is being parsed, "queues.email.concurrency" */
    size_t path_len;
};

/* The tables (tables.c). */
extern const struct cfg_table nq_cfg_top_table;

/* Fills err with "WHERE: key.path: message" for node (0: no position) and
 * returns -EINVAL. */
int cfg_fail(struct cfg_ctx *c, int node, const char *fmt, ...) NQ_PRINTF(3, 4);
/* The same, naming the key path `key` under the current path. */
int cfg_fail_key(struct cfg_ctx *c, int node, const char *key, const char *fmt, ...)
    NQ_PRINTF(4, 5);
#ifdef __clang_analyzer__
/* As for nq_err_set (common/err.h): the analyzer does not follow a variadic
 * call, so say that both return -EINVAL. */
#define cfg_fail(c, node, ...) (cfg_fail((c), (node), __VA_ARGS__), -EINVAL)
#define cfg_fail_key(c, node, key, ...) (cfg_fail_key((c), (node), (key), __VA_ARGS__), -EINVAL)
#endif
int cfg_oom(struct cfg_ctx *c);
/* 1-based line and column of node (0, 0 for one made by --set). */
void cfg_node_mark(const struct cfg_ctx *c, int node, unsigned *ret_line, unsigned *ret_column);

/* Deep-copies size bytes of src into dst, duplicating the strings of t's
 * rows; on failure the missing strings are NULL and dst must still be freed
 * with t. */
int cfg_copy(const struct cfg_table *t, void *dst, const void *src, size_t size) NQ_MUSTCHECK;

/* A redis:// or unix:// URL, parsed (url.c). */
struct cfg_redis_url {
    char *host; /* redis:// */
    uint16_t port;
    char *socket;   /* unix:// */
    char *username; /* percent-decoded */
    char *password; /* percent-decoded; secret */
    int db;         /* -1: not given */
    bool tls;       /* rediss:// */
};

/* Returns 0, -EINVAL with *ret_problem set (it never quotes the URL, which
 * may hold a password), or -ENOMEM. */
int cfg_redis_url_parse(const char *url, struct cfg_redis_url *ret,
                        const char **ret_problem) NQ_MUSTCHECK;
void cfg_redis_url_done(struct cfg_redis_url *u);

/* Zeroes and frees a secret. */
void cfg_free_secret(char *s);

#endif
