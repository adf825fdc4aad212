/* SPDX-License-Identifier: MIT */
/* The SigV4 signer against AWS's published vectors: the signing-key
 * example (PROVIDERS.md §7), the SigV4 test suite's get-vanilla and
 * post-vanilla, and the S3 API reference's "GET Object" example (a header
 * besides host and x-amz-date, a path, another key). */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "providers/sigv4.h"

#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"

static void the_signing_key_example_matches(void **state)
{
    const struct nq_sigv4_key k = { "AKIDEXAMPLE", SUITE_SECRET, "us-east-1", "iam" };
    unsigned char key[32];
    char hex[65];

    (void) state;
    assert_int_equal(nq_sigv4_signing_key(&k, "20150830", key), 0);
    for (size_t i = 0; i < 32; i++)
        (void) snprintf(hex + 2 * i, 3, "%02x", key[i]);
    assert_string_equal(hex, "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9");
}

static void the_suites_vanilla_requests_sign_exactly(void **state)
{
    const struct nq_sigv4_key k = { "AKIDEXAMPLE", SUITE_SECRET, "us-east-1", "service" };
    /* out of order and mixed case: the signer sorts and lower-cases */
    const struct nq_sigv4_header h[] = { { "X-Amz-Date", "20150830T123600Z" },
                                         { "Host", "example.amazonaws.com" } };
    static const struct {
        const char *method, *sig;
    } want[] = {
        { "GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31" },
        { "POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b" },
    };

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(want); i++) {
        char *auth = NULL, expect[256];

        assert_int_equal(nq_sigv4_authorization(&k, want[i].method, "/", "", h, 2, "", 0,
                                                "20150830T123600Z", &auth),
                         0);
        (void) snprintf(expect, sizeof(expect),
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                        "aws4_request, SignedHeaders=host;x-amz-date, Signature=%s",
                        want[i].sig);
        assert_string_equal(auth, expect);
        free(auth);
    }
}

static void the_s3_get_object_example_signs_exactly(void **state)
{
    const struct nq_sigv4_key k = { "AKIAIOSFODNN7EXAMPLE",
                                    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "us-east-1", "s3" };
    const struct nq_sigv4_header h[] = {
        { "host", "examplebucket.s3.amazonaws.com" },
        { "range", "  bytes=0-9 " }, /* trimmed */
        { "x-amz-content-sha256",
          "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "x-amz-date", "20130524T000000Z" },
    };
    char *auth = NULL;

    (void) state;
    assert_int_equal(
        nq_sigv4_authorization(&k, "GET", "/test.txt", "", h, 4, "", 0, "20130524T000000Z", &auth),
        0);
    assert_string_equal(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/"
                              "us-east-1/s3/aws4_request, "
                              "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                              "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c"
                              "6036bdb41");
    free(auth);
}

static void a_request_without_x_amz_date_is_refused(void **state)
{
    const struct nq_sigv4_key k = { "AKIDEXAMPLE", SUITE_SECRET, "us-east-1", "service" };
    const struct nq_sigv4_header h[] = { { "host", "example.amazonaws.com" } };
    char *auth = NULL;

    (void) state;
    assert_int_equal(
        nq_sigv4_authorization(&k, "GET", "/", "", h, 1, "", 0, "20150830T123600Z", &auth),
        -EINVAL);
    assert_null(auth);
}

static void the_date_is_utc_in_the_basic_format(void **state)
{
    char d[NQ_SIGV4_DATE_SIZE];

    (void) state;
    nq_sigv4_date(1440938160, d);
    assert_string_equal(d, "20150830T123600Z");
    nq_sigv4_date(1709164800, d);
    assert_string_equal(d, "20240229T000000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(the_signing_key_example_matches),
        cmocka_unit_test(the_suites_vanilla_requests_sign_exactly),
        cmocka_unit_test(the_s3_get_object_example_signs_exactly),
        cmocka_unit_test(a_request_without_x_amz_date_is_refused),
        cmocka_unit_test(the_date_is_utc_in_the_basic_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
