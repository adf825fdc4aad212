/* SPDX-License-Identifier: MIT */
/*
 * Mustache templates: our own renderer over jansson values, and the store
 * the channel handlers read templates from. A non-logging module: every
 * function returns an error (struct nq_err naming the template, line and
 * column) and its caller decides what to log.
 *
 * The language is Mustache as the spec (github.com/mustache/spec) defines
 * it, without the spec's optional modules (lambdas, dynamic names,
 * inheritance):
 *   {{name}}        the value, HTML-escaped when the render asks for it
 *   {{{name}}} {{&name}}   the value, never escaped
 *   {{#name}}..{{/name}}   a section: once per item of a list, once with
 *                   the value pushed on the context for any other truthy
 *                   value, never for a falsy one (missing, null, false, "",
 *                   an empty list)
 *   {{^name}}..{{/name}}   an inverted section: once when name is falsy
 *   {{! comment }}  {{> partial}}  {{=<% %>=}} (new delimiters)
 *   names are dotted (a.b.c), "." is the current item (implicit iterator)
 * A value renders as its text: strings as they are, integers in decimal,
 * reals in their shortest round-trip form, true/false, null as nothing,
 * lists and objects as compact JSON.
 *
 * Compile once, render many times: a struct nq_template is immutable after
 * nq_template_compile and may be rendered any number of times. Partials are
 * looked up at render time through a callback, so a partial compiled once
 * serves every template that includes it; partials nest at most
 * NQ_TEMPLATE_DEPTH_MAX deep (a recursive partial over deep data stops
 * with an error, not a crash). A render's output is capped at
 * NQ_TEMPLATE_OUTPUT_MAX bytes.
 *
 * Missing variables render as nothing, unless the render is strict: then a
 * missing {{name}} (and a missing partial) is an error naming it and where
 * it is used. A section over a missing name is simply false in both modes
 * ({{#coupon}}...{{/coupon}} is how templates say "optional").
 *
 * The store (nq_template_store_*): one per worker process, made at handler
 * init from the config's templates directory and freed with the handler (a
 * reload starts new workers, hence a fresh store). A template id names up
 * to three files, <dir>/<tenant>/<id>.subject.mustache, <id>.txt.mustache
 * and <id>.html.mustache; a tenant directory holding none of them falls
 * back to <dir>/default/ as a whole (no mixing of a tenant's html with the
 * default's subject). Partials {{> name}} are <name>.partial.mustache,
 * looked up the same way. Files are read and compiled on first use and
 * kept for the life of the store. Ids, tenants and partial names must be
 * plain names: no '/', no NUL, not "." or "..", 1..128 bytes.
 */
#ifndef NQ_TEMPLATE_TEMPLATE_H
#define NQ_TEMPLATE_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "common/macros.h"

#define NQ_TEMPLATE_DEPTH_MAX 32          /* partials within partials */
#define NQ_TEMPLATE_NESTING_MAX 100       /* sections within sections */
#define NQ_TEMPLATE_SOURCE_MAX (1u << 20) /* bytes of one template file */
#define NQ_TEMPLATE_OUTPUT_MAX (8u << 20) /* bytes of one render */
#define NQ_TEMPLATE_NAME_MAX 128          /* bytes of an id, tenant, partial */

struct nq_template;

/* Compiles src (len bytes; NULs are refused) under name, which errors
 * quote: "welcome.html.mustache:3:5: unclosed section 'items'". 0 and *ret,
 * -EINVAL with err, or -ENOMEM. */
int nq_template_compile(const char *name, const char *src, size_t len, struct nq_template **ret,
                        struct nq_err *err) NQ_MUSTCHECK;
struct nq_template *nq_template_free(struct nq_template *t);
/* The name given at compile. Borrowed. */
const char *nq_template_name(const struct nq_template *t);

/* Finds the partial called name: 0 and *ret (borrowed, valid for the whole
 * render), 0 and *ret NULL when there is none, or a negative errno with err
 * set (a partial that does not compile). */
typedef int (*nq_template_partial_fn)(void *userdata, const char *name,
                                      const struct nq_template **ret, struct nq_err *err);

struct nq_template_render_opts {
    bool escape_html;               /* {{name}} escapes & < > " ' (HTML bodies) */
    bool strict;                    /* a missing variable or partial is an error */
    nq_template_partial_fn partial; /* NULL: no partials (each renders empty) */
    void *partial_userdata;
};

/* Renders t with data as the root context (any JSON value; NULL stands for
 * an empty object). 0 and *ret (a NUL-terminated string the caller frees),
 * or -EINVAL with err ("welcome.txt.mustache:2:7: missing variable
 * 'user.name'", output too large, partials too deep), or -ENOMEM. */
int nq_template_render(const struct nq_template *t, const json_t *data,
                       const struct nq_template_render_opts *opts, char **ret,
                       struct nq_err *err) NQ_MUSTCHECK;

/* ---- the store --------------------------------------------------------------- */

struct nq_template_store;

/* What a template id renders to; each part NULL when that file does not
 * exist. Free with nq_template_rendered_done. */
struct nq_template_rendered {
    char *subject; /* <id>.subject.mustache, not escaped */
    char *text;    /* <id>.txt.mustache, not escaped */
    char *html;    /* <id>.html.mustache, HTML-escaped */
};

void nq_template_rendered_done(struct nq_template_rendered *r);

/* dir is copied; nothing is read until the first render. NULL on OOM. */
struct nq_template_store *nq_template_store_new(const char *dir, bool strict);
struct nq_template_store *nq_template_store_free(struct nq_template_store *s);

/* 0 when name is a safe id, tenant or partial name; else -EINVAL with why
 * (static text). len is the name's length in bytes (a JSON string may hold
 * NULs). */
int nq_template_name_check(const char *name, size_t len, const char **ret_why) NQ_MUSTCHECK;

/* Renders template id for tenant (NULL: the default set) with vars (NULL: no
 * variables). 0 and *ret, or a negative errno with err:
 *   -ENOENT  "template 'welcome' not found in /etc/notifyq/templates/acme
 *            or /etc/notifyq/templates/default"
 *   -EINVAL  a bad id or tenant, a template that does not compile
 *            ("/etc/.../default/welcome.html.mustache:3:5: unclosed
 *            section 'items'"), a strict render's missing variable
 *   -EIO...  a file that cannot be read (err names it)
 *   -ENOMEM */
int nq_template_store_render(struct nq_template_store *s, const char *tenant, const char *id,
                             const json_t *vars, struct nq_template_rendered *ret,
                             struct nq_err *err) NQ_MUSTCHECK;

#endif
