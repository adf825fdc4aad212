/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "common/err.h"

int(nq_err_set)(struct nq_err *err, int r, const char *fmt, ...)
{
    va_list ap;

    if (!err)
        return r;
    va_start(ap, fmt);
    (void) vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return r;
}

const char *nq_err_str(const struct nq_err *err)
{
    return err ? err->msg : "";
}
