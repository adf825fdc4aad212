/* SPDX-License-Identifier: MIT */
/* The Mustache renderer against every case of the Mustache spec (the JSON
 * files in NQ_MUSTACHE_SPEC_DIR, a copy of github.com/mustache/spec's
 * specs/, MIT), then what the spec leaves to us: HTML escaping, error
 * messages with line and column, missing variables (empty, or an error when
 * strict), partial depth; and the template store over a real directory. */
#include "config.h"

/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "template/template.h"

/* ---- the spec ------------------------------------------------------------ */

struct spec_partials {
    const json_t *sources; /* the case's "partials" object */
    struct nq_template *compiled[16];
    const char *names[16];
    size_t n;
};

static int spec_partial(void *userdata, const char *name, const struct nq_template **ret,
                        struct nq_err *err)
{
    struct spec_partials *sp = userdata;
    json_t *src = json_object_get(sp->sources, name);
    int r;

    *ret = NULL;
    for (size_t i = 0; i < sp->n; i++) {
        if (strcmp(sp->names[i], name) == 0) {
            *ret = sp->compiled[i];
            return 0;
        }
    }
    if (!src)
        return 0;
    assert_true(sp->n < 16);
    r = nq_template_compile(name, json_string_value(src), json_string_length(src),
                            &sp->compiled[sp->n], err);
    if (r < 0)
        return r;
    sp->names[sp->n] = name;
    *ret = sp->compiled[sp->n++];
    return 0;
}

/* Runs one case; 0 when it passes, else prints why. */
static int spec_case(const char *file, const json_t *c)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    const json_t *tpl = json_object_get(c, "template");
    const char *want = json_string_value(json_object_get(c, "expected"));
    struct spec_partials sp = { .sources = json_object_get(c, "partials") };
    struct nq_template_render_opts o = { .escape_html = true,
                                         .partial = spec_partial,
                                         .partial_userdata = &sp };
    struct nq_template *t = NULL;
    struct nq_err err = { "" };
    char *got = NULL;
    int r;

    r = nq_template_compile(name, json_string_value(tpl), json_string_length(tpl), &t, &err);
    if (r >= 0)
        r = nq_template_render(t, json_object_get(c, "data"), &o, &got, &err);
    if (r < 0)
        printf("FAIL %s: %s: %s\n", file, name, nq_err_str(&err));
    else if (strcmp(got, want) != 0)
        printf("FAIL %s: %s:\n  want [%s]\n  got  [%s]\n", file, name, want, got);
    if (r >= 0 && strcmp(got, want) != 0)
        r = -1;
    free(got);
    nq_template_free(t);
    for (size_t i = 0; i < sp.n; i++)
        nq_template_free(sp.compiled[i]);
    return r < 0 ? -1 : 0;
}

static void spec_every_case_passes(void **state)
{
    DIR *d = opendir(NQ_MUSTACHE_SPEC_DIR);
    struct dirent *de;
    size_t files = 0, cases = 0, failed = 0;

    (void) state;
    if (!d)
        fail_msg("%s: %s (the Mustache spec's JSON files must be there)", NQ_MUSTACHE_SPEC_DIR,
                 strerror(errno));
    while ((de = readdir(d))) {
        char path[512];
        json_error_t jerr;
        json_t *doc, *tests, *c;
        size_t i, n = strlen(de->d_name);

        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", NQ_MUSTACHE_SPEC_DIR, de->d_name);
        doc = json_load_file(path, 0, &jerr);
        if (!doc)
            fail_msg("%s:%d: %s", path, jerr.line, jerr.text);
        tests = json_object_get(doc, "tests");
        assert_true(json_array_size(tests) > 0);
        files++;
        json_array_foreach (tests, i, c) {
            cases++;
            failed += spec_case(de->d_name, c) < 0;
        }
        json_decref(doc);
    }
    closedir(d);
    printf("mustache spec: %zu files, %zu of %zu cases passed\n", files, cases - failed, cases);
    /* comments, delimiters, interpolation, inverted, partials, sections */
    assert_int_equal(files, 6);
    assert_int_equal(cases, 136);
    assert_int_equal(failed, 0);
}

/* ---- beyond the spec ------------------------------------------------------- */

static char *render(const char *src, const char *data_json, bool escape, bool strict,
                    struct nq_err *err, int *ret_r)
{
    json_t *data = data_json ? json_loads(data_json, JSON_DECODE_ANY, NULL) : NULL;
    struct nq_template_render_opts o = { .escape_html = escape, .strict = strict };
    struct nq_template *t = NULL;
    char *out = NULL;
    int r;

    r = nq_template_compile("t.mustache", src, strlen(src), &t, err);
    if (r >= 0)
        r = nq_template_render(t, data, &o, &out, err);
    nq_template_free(t);
    json_decref(data);
    *ret_r = r;
    return out;
}

static void html_escaping(void **state)
{
    static const char *const data = "{\"v\":\"<a href='x'>Tom & \\\"Jerry\\\"</a>\"}";
    struct nq_err err = { "" };
    char *out;
    int r;

    (void) state;
    out = render("{{v}}|{{{v}}}|{{&v}}", data, true, false, &err, &r);
    assert_int_equal(r, 0);
    assert_string_equal(out, "&lt;a href=&#39;x&#39;&gt;Tom &amp; &quot;Jerry&quot;&lt;/a&gt;|"
                             "<a href='x'>Tom & \"Jerry\"</a>|<a href='x'>Tom & \"Jerry\"</a>");
    free(out);
    /* Plain text bodies and subjects: nothing escaped. */
    out = render("{{v}}", data, false, false, &err, &r);
    assert_int_equal(r, 0);
    assert_string_equal(out, "<a href='x'>Tom & \"Jerry\"</a>");
    free(out);
}

static void values_render_as_text(void **state)
{
    struct nq_err err = { "" };
    char *out;
    int r;

    (void) state;
    out = render("{{i}} {{r}} {{t}} {{f}} {{n}} {{{l}}} {{#e}}x{{/e}}{{^e}}empty{{/e}}",
                 "{\"i\":-42,\"r\":1.21,\"t\":true,\"f\":false,\"n\":null,\"l\":[1,\"a\"],"
                 "\"e\":\"\"}",
                 true, false, &err, &r);
    assert_int_equal(r, 0);
    assert_string_equal(out, "-42 1.21 true false  [1,\"a\"] empty");
    free(out);
}

static const struct {
    const char *src, *want;
} bad[] = {
    { "Hi\n  {{#items}}\n{{.}}\n", "t.mustache:2:3: unclosed section 'items'" },
    { "{{#a}}\n {{#b}}\n{{/a}}",
      "t.mustache:3:1: mismatched close tag 'a': section 'b' opened at 2:2" },
    { "x\n\n{{/a}}", "t.mustache:3:1: close tag 'a' without an open section" },
    { "line\nhello {{name", "t.mustache:2:7: unclosed tag: no '}}' after '{{'" },
    { "{{{name}}", "t.mustache:1:1: unclosed tag: no '}}}' after '{{'" },
    { "ok\n{{=<% =}}",
      "t.mustache:2:1: bad delimiter: write {{=OPEN CLOSE=}}, two delimiters apart" },
    { "{{= <% %> %> =}}",
      "t.mustache:1:1: bad delimiter: write {{=OPEN CLOSE=}}, two delimiters apart" },
    { "{{=<= =>=}}", "t.mustache:1:1: bad delimiter: '=' is not allowed in a delimiter" },
    { "{{=<% %>=}}\n<%#a%>\n<%/b%>",
      "t.mustache:3:1: mismatched close tag 'b': section 'a' opened at 2:1" },
    { "a {{ }}", "t.mustache:1:3: empty tag name" },
    { "a {{first name}}", "t.mustache:1:3: bad tag name 'first name': no spaces allowed" },
    { "{{a..b}}", "t.mustache:1:1: bad name 'a..b': empty part" },
};

static void errors_name_template_line_and_column(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct nq_template *t = NULL;
        struct nq_err err = { "" };

        assert_int_equal(
            nq_template_compile("t.mustache", bad[i].src, strlen(bad[i].src), &t, &err), -EINVAL);
        assert_null(t);
        assert_string_equal(nq_err_str(&err), bad[i].want);
    }
}

static void missing_variables_empty_unless_strict(void **state)
{
    static const char *const src = "Hi {{user.name}}{{#coupon}}, {{code}}{{/coupon}}!\n"
                                   "  {{user.nick}} {{missing}}";
    static const char *const data = "{\"user\":{\"nick\":\"bo\"}}";
    struct nq_err err = { "" };
    char *out;
    int r;

    (void) state;
    out = render(src, data, true, false, &err, &r);
    assert_int_equal(r, 0);
    assert_string_equal(out, "Hi !\n  bo ");
    free(out);
    out = render(src, data, true, true, &err, &r);
    assert_int_equal(r, -EINVAL);
    assert_null(out);
    assert_string_equal(nq_err_str(&err), "t.mustache:1:4: missing variable 'user.name'");
    /* A section over a missing name is false, strict or not. */
    out = render("{{#coupon}}{{code}}{{/coupon}}{{^coupon}}none{{/coupon}}", data, true, true, &err,
                 &r);
    assert_int_equal(r, 0);
    assert_string_equal(out, "none");
    free(out);
    out = render("{{a}}\n{{b}}", "{\"a\":1}", true, true, &err, &r);
    assert_int_equal(r, -EINVAL);
    assert_null(out);
    assert_string_equal(nq_err_str(&err), "t.mustache:2:1: missing variable 'b'");
}

static int self_partial(void *userdata, const char *name, const struct nq_template **ret,
                        struct nq_err *err)
{
    (void) name;
    (void) err;
    *ret = userdata;
    return 0;
}

static void recursive_partials_stop_at_the_depth_limit(void **state)
{
    static const char *const src = "x{{>me}}";
    struct nq_template *t = NULL;
    struct nq_template_render_opts o = { .partial = self_partial };
    struct nq_err err = { "" };
    char *out = NULL;

    (void) state;
    assert_int_equal(nq_template_compile("me", src, strlen(src), &t, &err), 0);
    o.partial_userdata = t;
    assert_int_equal(nq_template_render(t, NULL, &o, &out, &err), -EINVAL);
    assert_null(out);
    assert_string_equal(nq_err_str(&err), "me:1:2: partial 'me' nested deeper than 32 partials "
                                          "(does it include itself?)");
    nq_template_free(t);
}

static void compiled_once_rendered_many_times(void **state)
{
    static const char *const src = "{{#items}}<li>{{name}}</li>{{/items}}";
    struct nq_template *t = NULL;
    struct nq_template_render_opts o = { .escape_html = true };
    struct nq_err err = { "" };
    char *out = NULL;

    (void) state;
    assert_int_equal(nq_template_compile("list", src, strlen(src), &t, &err), 0);
    for (int i = 0; i < 3; i++) {
        json_t *data = json_pack("{s:[{s:i},{s:s}]}", "items", "name", i, "name", "<b>");
        char want[64];

        assert_int_equal(nq_template_render(t, data, &o, &out, &err), 0);
        snprintf(want, sizeof(want), "<li>%d</li><li>&lt;b&gt;</li>", i);
        assert_string_equal(out, want);
        free(out);
        json_decref(data);
    }
    assert_string_equal(nq_template_name(t), "list");
    nq_template_free(t);
}

static void bad_bytes_and_oversized_output_refused(void **state)
{
    struct nq_template *t = NULL;
    struct nq_err err = { "" };
    json_t *data;
    char *out = NULL, *big;
    int r;

    (void) state;
    assert_int_equal(nq_template_compile("n", "ab\0c", 4, &t, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "n:1:3: NUL byte in the template");
    assert_int_equal(nq_template_compile("u", "h\xc3\xa9\n\xe2\x82\xac \xe9t\xe9", 10, &t, &err),
                     -EINVAL);
    assert_string_equal(nq_err_str(&err), "u:2:5: not valid UTF-8");
    assert_int_equal(nq_template_compile("o", "\xc0\xaf", 2, &t, &err), -EINVAL);
    assert_int_equal(nq_template_compile("s", "\xed\xa0\x80", 3, &t, &err), -EINVAL);
    assert_int_equal(nq_template_compile("ok", "\xf0\x9f\x98\x80", 4, &t, &err), 0);
    t = nq_template_free(t);
    /* 1 MiB value, rendered 9 times: over the 8 MiB cap. */
    big = malloc((1u << 20) + 1);
    memset(big, 'x', 1u << 20);
    big[1u << 20] = '\0';
    data = json_pack("{s:s,s:[i,i,i,i,i,i,i,i,i]}", "v", big, "l", 1, 2, 3, 4, 5, 6, 7, 8, 9);
    assert_non_null(data);
    free(big);
    assert_int_equal(nq_template_compile("big", "{{#l}}{{v}}{{/l}}", 17, &t, &err), 0);
    r = nq_template_render(t, data, NULL, &out, &err);
    assert_int_equal(r, -EINVAL);
    assert_null(out);
    assert_string_equal(nq_err_str(&err), "template output larger than 8388608 bytes");
    nq_template_free(t);
    json_decref(data);
}

/* ---- the store ----------------------------------------------------------------- */

struct tree {
    char dir[64];
};

static void put(const char *dir, const char *rel, const char *content)
{
    char path[256];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs(content, f);
    fclose(f);
}

static int tree_setup(void **state)
{
    struct tree *t = calloc(1, sizeof(*t));
    char sub[128];

    strcpy(t->dir, "/tmp/nq-template-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(sub, sizeof(sub), "%s/default", t->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(sub, sizeof(sub), "%s/acme", t->dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    put(t->dir, "default/welcome.subject.mustache", "Welcome, {{name}}!\n");
    put(t->dir, "default/welcome.txt.mustache", "Hi {{name}} & co\n{{> footer}}");
    put(t->dir, "default/welcome.html.mustache", "<p>Hi {{name}}</p>{{> footer}}");
    put(t->dir, "default/footer.partial.mustache", "-- {{company}}");
    put(t->dir, "acme/welcome.html.mustache", "<h1>ACME {{name}}</h1>{{> footer}}");
    put(t->dir, "acme/footer.partial.mustache", "-- ACME");
    put(t->dir, "default/broken.txt.mustache", "ok\n{{#items}}\n{{name}}\n");
    put(t->dir, "default/strict.txt.mustache", "{{name}} {{missing}}");
    *state = t;
    return 0;
}

static int tree_teardown(void **state)
{
    struct tree *t = *state;
    char cmd[128];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", t->dir);
    assert_int_equal(system(cmd), 0);
    free(t);
    return 0;
}

static void store_renders_subject_text_and_html(void **state)
{
    struct tree *t = *state;
    struct nq_template_store *s = nq_template_store_new(t->dir, false);
    json_t *vars = json_pack("{s:s,s:s}", "name", "<Ann>", "company", "Q&A");
    struct nq_template_rendered out;
    struct nq_err err = { "" };

    assert_non_null(s);
    assert_int_equal(nq_template_store_render(s, NULL, "welcome", vars, &out, &err), 0);
    assert_string_equal(out.subject, "Welcome, <Ann>!\n");
    assert_string_equal(out.text, "Hi <Ann> & co\n-- Q&A");
    assert_string_equal(out.html, "<p>Hi &lt;Ann&gt;</p>-- Q&amp;A");
    nq_template_rendered_done(&out);
    /* A tenant with its own files uses them alone, partials first from it. */
    assert_int_equal(nq_template_store_render(s, "acme", "welcome", vars, &out, &err), 0);
    assert_null(out.subject);
    assert_null(out.text);
    assert_string_equal(out.html, "<h1>ACME &lt;Ann&gt;</h1>-- ACME");
    nq_template_rendered_done(&out);
    /* A tenant without them falls back to default/. */
    assert_int_equal(nq_template_store_render(s, "globex", "welcome", vars, &out, &err), 0);
    assert_string_equal(out.html, "<p>Hi &lt;Ann&gt;</p>-- Q&amp;A");
    nq_template_rendered_done(&out);
    /* Compiled once: a file changed on disk is not read again. */
    put(t->dir, "default/welcome.html.mustache", "changed");
    assert_int_equal(nq_template_store_render(s, NULL, "welcome", vars, &out, &err), 0);
    assert_string_equal(out.html, "<p>Hi &lt;Ann&gt;</p>-- Q&amp;A");
    nq_template_rendered_done(&out);
    nq_template_store_free(s);
    /* A new store (a reload) reads it. */
    s = nq_template_store_new(t->dir, false);
    assert_int_equal(nq_template_store_render(s, NULL, "welcome", vars, &out, &err), 0);
    assert_string_equal(out.html, "changed");
    nq_template_rendered_done(&out);
    nq_template_store_free(s);
    json_decref(vars);
}

static void store_errors_name_what_failed(void **state)
{
    struct tree *t = *state;
    struct nq_template_store *s = nq_template_store_new(t->dir, false);
    struct nq_template_rendered out = { NULL, NULL, NULL };
    struct nq_err err = { "" };
    char want[512];

    assert_int_equal(nq_template_store_render(s, "acme", "nope", NULL, &out, &err), -ENOENT);
    snprintf(want, sizeof(want), "template 'nope' not found in %s/acme or %s/default", t->dir,
             t->dir);
    assert_string_equal(nq_err_str(&err), want);
    assert_int_equal(nq_template_store_render(s, NULL, "nope", NULL, &out, &err), -ENOENT);
    snprintf(want, sizeof(want), "template 'nope' not found in %s/default", t->dir);
    assert_string_equal(nq_err_str(&err), want);
    /* Twice: the second answer comes from the cache, the same. */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nq_template_store_render(s, NULL, "broken", NULL, &out, &err), -EINVAL);
        snprintf(want, sizeof(want), "%s/default/broken.txt.mustache:2:1: unclosed section 'items'",
                 t->dir);
        assert_string_equal(nq_err_str(&err), want);
    }
    assert_int_equal(nq_template_store_render(s, NULL, "../default/welcome", NULL, &out, &err),
                     -EINVAL);
    assert_string_equal(nq_err_str(&err), "template id '../default/welcome': must not contain '/'");
    assert_int_equal(nq_template_store_render(s, "..", "welcome", NULL, &out, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "tenant '..': must not contain '..' or be '.'");
    assert_int_equal(nq_template_store_render(s, NULL, "", NULL, &out, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "template id '': must not be empty");
    assert_null(out.text);
    nq_template_store_free(s);
}

/* Job data picks the names: past the cap on remembered absent files, a
 * missing template is still reported and present ones still render. */
static void store_answers_past_its_absent_cap(void **state)
{
    struct tree *t = *state;
    struct nq_template_store *s = nq_template_store_new(t->dir, false);
    struct nq_template_rendered out = { NULL, NULL, NULL };
    struct nq_err err = { "" };
    char id[32], want[512];

    for (int i = 0; i < 2000; i++) {
        snprintf(id, sizeof(id), "nope-%d", i);
        assert_int_equal(nq_template_store_render(s, "acme", id, NULL, &out, &err), -ENOENT);
    }
    snprintf(want, sizeof(want), "template 'nope-1999' not found in %s/acme or %s/default", t->dir,
             t->dir);
    assert_string_equal(nq_err_str(&err), want);
    assert_int_equal(nq_template_store_render(s, "globex", "welcome", NULL, &out, &err), 0);
    assert_string_equal(out.text, "Hi  & co\n-- ");
    nq_template_rendered_done(&out);
    nq_template_store_free(s);
}

static void store_strict_names_the_missing_variable(void **state)
{
    struct tree *t = *state;
    struct nq_template_store *lax = nq_template_store_new(t->dir, false);
    struct nq_template_store *strict = nq_template_store_new(t->dir, true);
    json_t *vars = json_pack("{s:s}", "name", "Ann");
    struct nq_template_rendered out = { NULL, NULL, NULL };
    struct nq_err err = { "" };
    char want[512];

    assert_int_equal(nq_template_store_render(lax, NULL, "strict", vars, &out, &err), 0);
    assert_string_equal(out.text, "Ann ");
    nq_template_rendered_done(&out);
    assert_int_equal(nq_template_store_render(strict, NULL, "strict", vars, &out, &err), -EINVAL);
    snprintf(want, sizeof(want), "%s/default/strict.txt.mustache:1:10: missing variable 'missing'",
             t->dir);
    assert_string_equal(nq_err_str(&err), want);
    assert_null(out.text);
    nq_template_store_free(lax);
    nq_template_store_free(strict);
    json_decref(vars);
}

static void name_check(void **state)
{
    const char *why;

    (void) state;
    assert_int_equal(nq_template_name_check("welcome-v2.en", 13, &why), 0);
    assert_int_equal(nq_template_name_check("a\0b", 3, &why), -EINVAL);
    assert_string_equal(why, "must not contain a NUL byte");
    assert_int_equal(nq_template_name_check(".", 1, &why), -EINVAL);
    assert_int_equal(nq_template_name_check("a/b", 3, &why), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_every_case_passes),
        cmocka_unit_test(html_escaping),
        cmocka_unit_test(values_render_as_text),
        cmocka_unit_test(errors_name_template_line_and_column),
        cmocka_unit_test(missing_variables_empty_unless_strict),
        cmocka_unit_test(recursive_partials_stop_at_the_depth_limit),
        cmocka_unit_test(compiled_once_rendered_many_times),
        cmocka_unit_test(bad_bytes_and_oversized_output_refused),
        cmocka_unit_test_setup_teardown(store_renders_subject_text_and_html, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(store_errors_name_what_failed, tree_setup, tree_teardown),
        cmocka_unit_test_setup_teardown(store_answers_past_its_absent_cap, tree_setup,
                                        tree_teardown),
        cmocka_unit_test_setup_teardown(store_strict_names_the_missing_variable, tree_setup,
                                        tree_teardown),
        cmocka_unit_test(name_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
