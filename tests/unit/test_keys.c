/* SPDX-License-Identifier: MIT */
/* Key naming: base key, job keys with ':' in ids, hash tags, client names. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "queue/keys.h"

/* The part of a key Redis Cluster hashes: the first {...} with content. */
static char *hash_tag(const char *key)
{
    const char *open = strchr(key, '{');
    if (!open)
        return strdup(key);
    const char *close = strchr(open + 1, '}');
    if (!close || close == open + 1)
        return strdup(key);
    return strndup(open + 1, (size_t) (close - open - 1));
}

static void plain_prefix(void **state)
{
    struct nq_keys k;
    (void) state;

    assert_int_equal(nq_keys_init(&k, "bull", "emails"), 0);
    assert_string_equal(k.base, "bull:emails:");
    assert_int_equal(k.base_len, strlen("bull:emails:"));
    char *s = nq_keys_queue_key(&k, "wait");
    assert_string_equal(s, "bull:emails:wait");
    free(s);
    s = nq_keys_job_key(&k, "42", NULL);
    assert_string_equal(s, "bull:emails:42");
    free(s);
    s = nq_keys_job_key(&k, "42", "lock");
    assert_string_equal(s, "bull:emails:42:lock");
    free(s);
    nq_keys_done(&k);
    assert_null(k.base);
}

static void job_ids_with_colons(void **state)
{
    struct nq_keys k;
    (void) state;

    assert_int_equal(nq_keys_init(&k, "bull", "q"), 0);
    char *lock = nq_keys_job_key(&k, "repeat:every-1s:1795576937559", "lock");
    assert_string_equal(lock, "bull:q:repeat:every-1s:1795576937559:lock");
    free(lock);
    assert_string_equal(nq_keys_job_id_borrow(&k, "bull:q:repeat:every-1s:1795576937559"),
                        "repeat:every-1s:1795576937559");
    assert_null(nq_keys_job_id_borrow(&k, "bull:other:1"));
    assert_null(nq_keys_job_id_borrow(&k, "bull:q:"));
    nq_keys_done(&k);
}

static void hash_tag_prefix_keeps_one_slot(void **state)
{
    static const char *const cases[][3] = {
        /* prefix, queue, expected tag */
        { "{myapp}", "emails", "myapp" },
        { "bull", "{emails}", "emails" },
        { "{t}:x", "q", "t" },
    };
    static const char *const suffixes[] = { "wait",   "active", "meta",     "events",
                                            "marker", "de:abc", "repeat:s1" };
    (void) state;

    for (size_t c = 0; c < NQ_ELEMENTSOF(cases); c++) {
        struct nq_keys k;
        assert_int_equal(nq_keys_init(&k, cases[c][0], cases[c][1]), 0);
        for (size_t i = 0; i < NQ_ELEMENTSOF(suffixes); i++) {
            char *key = nq_keys_queue_key(&k, suffixes[i]);
            char *tag = hash_tag(key);
            assert_string_equal(tag, cases[c][2]);
            free(tag);
            free(key);
        }
        char *job = nq_keys_job_key(&k, "a:b:c", "lock");
        char *tag = hash_tag(job);
        assert_string_equal(tag, cases[c][2]);
        free(tag);
        free(job);
        nq_keys_done(&k);
    }
}

static void tagged_base_key(void **state)
{
    struct nq_keys k;
    (void) state;

    assert_int_equal(nq_keys_init(&k, "{myapp}", "emails"), 0);
    assert_string_equal(k.base, "{myapp}:emails:");
    char *s = nq_keys_queue_key(&k, "wait");
    assert_string_equal(s, "{myapp}:emails:wait");
    free(s);
    nq_keys_done(&k);
}

static void invalid_names(void **state)
{
    struct nq_keys k = { 0 };
    (void) state;

    assert_int_equal(nq_keys_init(&k, "", "q"), -EINVAL);
    assert_int_equal(nq_keys_init(&k, "bull", ""), -EINVAL);
    assert_int_equal(nq_keys_init(&k, "bull", "a:b"), -EINVAL);
    assert_int_equal(nq_keys_init(&k, NULL, "q"), -EINVAL);
    assert_null(k.base); /* untouched on failure */
}

static void worker_client_names(void **state)
{
    struct nq_keys k;
    (void) state;

    assert_int_equal(nq_keys_init(&k, "bull", "demo"), 0);
    char *s = nq_keys_worker_client_name(&k, "notifyq-1");
    assert_string_equal(s, "bull:ZGVtbw==:w:notifyq-1");
    free(s);
    s = nq_keys_worker_client_name(&k, NULL);
    assert_string_equal(s, "bull:ZGVtbw==");
    free(s);
    nq_keys_done(&k);
    /* base64 padding cases: 1, 2 and 3 bytes of tail */
    static const char *const q[][2] = { { "q10", "bull:cTEw" },
                                        { "ab", "bull:YWI=" },
                                        { "abcd", "bull:YWJjZA==" } };
    for (size_t i = 0; i < NQ_ELEMENTSOF(q); i++) {
        assert_int_equal(nq_keys_init(&k, "bull", q[i][0]), 0);
        s = nq_keys_worker_client_name(&k, "");
        assert_string_equal(s, q[i][1]);
        free(s);
        nq_keys_done(&k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(plain_prefix),
        cmocka_unit_test(job_ids_with_colons),
        cmocka_unit_test(hash_tag_prefix_keeps_one_slot),
        cmocka_unit_test(tagged_base_key),
        cmocka_unit_test(invalid_names),
        cmocka_unit_test(worker_client_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
