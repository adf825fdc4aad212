/* SPDX-License-Identifier: MIT */
/* The control socket's request parser on any line: a request or an error whose
 * text fits in a JSON reply, never a crash; a queue name always NUL-terminated. */
#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "supervisor/control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct nq_control_request req;
    struct nq_err err = { "" };

    memset(&req, 0xa5, sizeof(req));
    if (nq_control_parse((const char *) data, size, &req, &err) < 0) {
        /* The text goes back to the client in a JSON reply: it must be one. */
        json_t *reply = json_pack("{s:b, s:s}", "ok", 0, "error", nq_err_str(&err));
        if (!reply || nq_err_str(&err)[0] == '\0')
            abort();
        json_decref(reply);
        return 0;
    }
    if (!memchr(req.queue, '\0', sizeof(req.queue)))
        abort();
    bool wants_queue = req.cmd == NQ_CONTROL_PAUSE || req.cmd == NQ_CONTROL_RESUME;
    if ((unsigned) req.cmd > NQ_CONTROL_STOP || (!wants_queue && req.queue[0]))
        abort();
    return 0;
}
