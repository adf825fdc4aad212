/* SPDX-License-Identifier: MIT */
/*
 * Form fields and Basic credentials for HTTP providers (see httputil.h).
 * base64 is OpenSSL's.
 */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "providers/httputil.h"

static void form_encode(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("*-._", *p))
            fputc(*p, f);
        else if (*p == ' ')
            fputc('+', f);
        else
            fprintf(f, "%%%02X", *p);
    }
}

void nq_form_add(FILE *f, const char *name, const char *value)
{
    if (ftell(f) > 0)
        fputc('&', f);
    form_encode(f, name);
    fputc('=', f);
    form_encode(f, value);
}

char *nq_http_basic_auth(const char *user, const char *password)
{
    size_t n = strlen(user) + 1 + strlen(password);
    char *plain = malloc(n + 1);
    char *out = malloc(6 + 4 * ((n + 2) / 3) + 1);

    if (!plain || !out) {
        free(plain);
        free(out);
        return NULL;
    }
    (void) snprintf(plain, n + 1, "%s:%s", user, password);
    strcpy(out, "Basic ");
    EVP_EncodeBlock((unsigned char *) out + 6, (const unsigned char *) plain, (int) n);
    OPENSSL_cleanse(plain, n);
    free(plain);
    return out;
}
