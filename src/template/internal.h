/* SPDX-License-Identifier: MIT */
/*
 * Shared by the template module's files only: the compiled program that
 * compile.c builds and render.c walks.
 */
#ifndef NQ_TEMPLATE_INTERNAL_H
#define NQ_TEMPLATE_INTERNAL_H

#include <stddef.h>

#include "template/template.h"

enum tpl_op {
    TPL_TEXT,     /* text: literal bytes */
    TPL_VAR,      /* {{name}}: escaped when the render escapes */
    TPL_RAW,      /* {{{name}}}, {{&name}} */
    TPL_SECTION,  /* {{#name}}: children are nodes [i + 1, end) */
    TPL_INVERTED, /* {{^name}} */
    TPL_PARTIAL,  /* {{>name}}: text is the name, indent its standalone indentation */
};

struct tpl_node {
    enum tpl_op op;
    unsigned line, col; /* of the tag, for errors */
    size_t end;         /* sections: the index past the closing tag */
    char *text;         /* TPL_TEXT: the bytes; else the name as written */
    size_t len;
    char **parts; /* a dotted name split; none for "." */
    size_t n_parts;
    char *indent; /* TPL_PARTIAL: "" unless the tag stood alone, indented */
};

struct nq_template {
    char *name;
    struct tpl_node *nodes;
    size_t n;
};

#endif
