/* SPDX-License-Identifier: MIT */
/* The config loader on any bytes: a config is refused with an error or loaded
 * whole, never a crash, a leak or an error without a message. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *yaml = malloc(size + 1);
    struct nq_config *cfg = NULL;
    struct nq_err err = { "" };

    if (!yaml)
        return 0;
    memcpy(yaml, data, size);
    yaml[size] = '\0';
    int r = nq_config_parse_string("fuzz.yaml", yaml, NULL, 0, &cfg, &err);
    if (r < 0 && (cfg || (r != -ENOMEM && nq_err_str(&err)[0] == '\0')))
        abort(); /* a refusal sets no config and always says why */
    if (r == 0 && !cfg)
        abort();
    nq_config_free(cfg);
    free(yaml);
    return 0;
}
