/* SPDX-License-Identifier: MIT */
/* The file provider: spool names, the spool directory at start (and its
 * errors), atomic writes (no temp file left, a retry overwrites, hostile job
 * ids stay inside), cancel, and the content: RFC 5322 / MIME for email
 * (decoded back and compared), JSON for sms and push. */
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

#include <event2/event.h>
#include <jansson.h>

#include "providers/file.h"
#include "providers/mime.h"
#include "providers/provider.h"

/* ---- helpers ---------------------------------------------------------------- */

/* The timestamp of the jobs send_one delivers, as their names show it. */
#define TS 1765000000000ULL
#define TS_S "1765000000000"

struct fixture {
    char dir[64];    /* a fresh temp dir */
    char spool[128]; /* dir/spool, made by the provider */
    struct event_base *base;
    struct nq_provider_cfg cfg;
    struct nq_provider *p;
};

struct capture {
    int calls;
    enum nq_send_status status;
    char message_id[512];
    char reason[1024];
    char path[1024];
};

static void rm_rf(const char *path)
{
    char cmd[256];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    strcpy(f->dir, "/tmp/nq-test-file-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->spool, sizeof(f->spool), "%s/spool", f->dir);
    f->base = event_base_new();
    assert_non_null(f->base);
    f->cfg = (struct nq_provider_cfg){ .kind = NQ_PROVIDER_FILE, .spool_dir = f->spool };
    umask(022);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;

    nq_provider_free(f->p);
    event_base_free(f->base);
    rm_rf(f->dir);
    free(f);
    return 0;
}

static int make(struct fixture *f, enum nq_msg_type type, struct nq_err *err)
{
    struct nq_provider_env env = { .base = f->base, .queue = "q", .cfg = &f->cfg, .type = type };

    return nq_provider_new(&env, &f->p, err);
}

static void on_done(const struct nq_send_result *res, void *userdata)
{
    struct capture *c = userdata;
    const char *path = json_string_value(json_object_get(res->details, "path"));

    c->calls++;
    c->status = res->status;
    snprintf(c->message_id, sizeof(c->message_id), "%s", res->message_id ? res->message_id : "");
    snprintf(c->reason, sizeof(c->reason), "%s", res->reason ? res->reason : "");
    snprintf(c->path, sizeof(c->path), "%s", path ? path : "");
}

/* Sends m as delivery (queue, id, ts) and runs the loop until it is reported. */
static struct capture send_at(struct fixture *f, const struct nq_msg *m, const char *queue,
                              const char *id, uint64_t ts)
{
    struct nq_delivery d = { .queue = queue, .job_id = id, .timestamp = ts, .attempt = 1 };
    struct capture c = { 0 };
    struct nq_send *s = NULL;

    assert_int_equal(nq_provider_send(f->p, m, &d, on_done, &c, &s), 0);
    assert_non_null(s);
    assert_int_equal(c.calls, 0);                      /* never from inside send */
    assert_int_equal(event_base_dispatch(f->base), 1); /* 1: no events left */
    assert_int_equal(c.calls, 1);
    return c;
}

static struct capture send_one(struct fixture *f, const struct nq_msg *m, const char *queue,
                               const char *id)
{
    return send_at(f, m, queue, id, TS);
}

static char *slurp(const char *path)
{
    FILE *fp = fopen(path, "rb");
    char *buf;
    long n;

    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    rewind(fp);
    buf = malloc((size_t) n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t) n, fp), (size_t) n);
    buf[n] = '\0';
    fclose(fp);
    return buf;
}

/* The names in dir, sorted, joined by ' ' (hidden ones too). */
static char *listing(const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    char *out = calloc(1, 4096);

    assert_true(n >= 0);
    assert_non_null(out);
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
            if (*out)
                strcat(out, " ");
            strcat(out, names[i]->d_name);
        }
        free(names[i]);
    }
    free(names);
    return out;
}

static void email_msg(struct nq_msg *m, const char *subject, const char *text, const char *html)
{
    nq_msg_init(m, NQ_MSG_EMAIL);
    m->email.from.addr = strdup("app@example.com");
    m->email.from.name = strdup("App");
    m->email.to = calloc(2, sizeof(*m->email.to));
    m->email.to[0].addr = strdup("bob@example.org");
    m->email.to[1].addr = strdup("eve@example.org");
    m->email.to[1].name = strdup("Ève \"E\" Durand");
    m->email.n_to = 2;
    m->email.subject = subject ? strdup(subject) : NULL;
    m->email.text = text ? strdup(text) : NULL;
    m->email.html = html ? strdup(html) : NULL;
    m->tenant_id = strdup("t1");
}

static void sms_msg(struct nq_msg *m, const char *body)
{
    nq_msg_init(m, NQ_MSG_SMS);
    m->sms.to = strdup("+15551234567");
    m->sms.body = strdup(body);
    m->notification_id = strdup("n-9");
}

/* ---- MIME decoding, to compare what was written with what was meant ---------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Decodes quoted-printable; CRLF hard breaks become "\n". Fails the test on
 * a line over 76 characters or a bare LF. */
static char *qp_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    size_t col = 0;

    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\r') {
            assert_true(i + 1 < n && s[i + 1] == '\n');
            assert_true(col <= 76);
            i++;
            *o++ = '\n';
            col = 0;
        } else if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r') {
            assert_true(col + 1 <= 76);
            i += 2;
            col = 0;
        } else if (s[i] == '=') {
            assert_true(i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0);
            *o++ = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
            col += 3;
        } else {
            assert_true(s[i] != '\n');
            assert_true((unsigned char) s[i] < 0x80);
            *o++ = s[i];
            col++;
        }
    }
    *o = '\0';
    /* The writer ends a body with a line break. */
    assert_true(o > out && o[-1] == '\n');
    o[-1] = '\0';
    return out;
}

static int b64val(char c)
{
    const char *tab = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *p = c ? strchr(tab, c) : NULL;
    return p ? (int) (p - tab) : -1;
}

/* Decodes an unfolded header value made of "=?UTF-8?B?...?=" words. */
static char *words_decode(const char *v)
{
    char *out = calloc(1, strlen(v) + 1), *o = out;

    assert_non_null(out);
    while (*v) {
        const char *end;
        unsigned bits = 0, acc = 0;

        while (*v == ' ')
            v++;
        assert_int_equal(strncmp(v, "=?UTF-8?B?", 10), 0);
        v += 10;
        end = strstr(v, "?=");
        assert_non_null(end);
        for (; v < end; v++) {
            if (*v == '=')
                continue;
            assert_true(b64val(*v) >= 0);
            acc = acc << 6 | (unsigned) b64val(*v);
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                *o++ = (char) (acc >> bits & 0xff);
            }
        }
        v = end + 2;
    }
    return out;
}

/* The unfolded value of header name in a message; NULL when absent. */
static char *header(const char *msg, const char *name)
{
    const char *end = strstr(msg, "\r\n\r\n");
    size_t nl = strlen(name);
    char *out;

    assert_non_null(end);
    for (const char *p = msg; p < end; p = strstr(p, "\r\n") + 2) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1, *o;
            out = calloc(1, (size_t) (end - v) + 1);
            assert_non_null(out);
            while (*v == ' ')
                v++;
            for (o = v; o < end; o++) {
                if (o[0] == '\r' && (o[2] == ' ' || o[2] == '\t')) {
                    o++;
                    continue;
                }
                if (o[0] == '\r')
                    break;
                out[strlen(out)] = *o;
            }
            return out;
        }
    }
    return NULL;
}

/* ---- names --------------------------------------------------------------- */

static void spool_names_are_encoded_and_injective(void **state)
{
    static const struct {
        const char *queue, *id;
        uint64_t ts;
        enum nq_msg_type type;
        const char *want;
    } cases[] = {
        { "email", "42", TS, NQ_MSG_EMAIL, "email.42." TS_S ".eml" },
        { "email", "42", TS + 1, NQ_MSG_EMAIL, "email.42.1765000000001.eml" },
        { "sms", "sms-n1_x", 7, NQ_MSG_SMS, "sms.sms-n1_x.7.json" },
        { "sms", "a:b/c", 0, NQ_MSG_SMS, "sms.a%3Ab%2Fc.0.json" },
        { "push", "../../etc/passwd", 1, NQ_MSG_PUSH,
          "push.%2E%2E%2F%2E%2E%2Fetc%2Fpasswd.1.json" },
        { "push", "a.b", 1, NQ_MSG_PUSH, "push.a%2Eb.1.json" },
        { "push", "100%", 1, NQ_MSG_PUSH, "push.100%25.1.json" },
        { "q", "", 1, NQ_MSG_SMS, "q.%00.1.json" },
        { "q", "\xc3\xa9\n", UINT64_MAX, NQ_MSG_EMAIL, "q.%C3%A9%0A.18446744073709551615.eml" },
    };
    char buf[NQ_DELIVERY_STEM_MAX + 16];

    (void) state;
    for (size_t i = 0; i < NQ_ELEMENTSOF(cases); i++) {
        struct nq_delivery d = { .queue = cases[i].queue,
                                 .job_id = cases[i].id,
                                 .timestamp = cases[i].ts };
        int n = nq_file_spool_name(&d, cases[i].type, buf, sizeof(buf));
        assert_int_equal(n, (int) strlen(cases[i].want));
        assert_string_equal(buf, cases[i].want);
    }
}

static void long_ids_are_cut_with_a_hash(void **state)
{
    char id1[400], id2[400], a[NQ_DELIVERY_STEM_MAX + 16], b[NQ_DELIVERY_STEM_MAX + 16];
    struct nq_delivery d1 = { .queue = "q", .job_id = id1, .timestamp = TS },
                       d2 = { .queue = "q", .job_id = id2, .timestamp = TS };

    (void) state;
    memset(id1, ':', sizeof(id1) - 1); /* 3 bytes each once encoded */
    id1[sizeof(id1) - 1] = '\0';
    memcpy(id2, id1, sizeof(id1));
    id2[398] = ';'; /* differs only past the cut */
    assert_true(nq_file_spool_name(&d1, NQ_MSG_SMS, a, sizeof(a)) > 0);
    assert_true(nq_file_spool_name(&d2, NQ_MSG_SMS, b, sizeof(b)) > 0);
    /* The head leaves room for "~", the hash and ".<timestamp>" (14), and
     * stops before a %XX that would not fit: 2 + 55 * 3 bytes. */
    assert_int_equal(strlen(a), 167 + 17 + 14 + strlen(".json"));
    assert_int_equal(a[167], '~');
    assert_string_equal(a + 184, "." TS_S ".json");
    assert_int_equal(strncmp(a, "q.%3A%3A", 8), 0);
    assert_string_not_equal(a, b);
    assert_int_equal(strncmp(a, b, 168), 0);
    /* A stem of exactly the limit is kept whole. */
    memset(id1, 'x', NQ_DELIVERY_STEM_MAX - 2 - 14);
    id1[NQ_DELIVERY_STEM_MAX - 2 - 14] = '\0';
    assert_int_equal(nq_file_spool_name(&d1, NQ_MSG_SMS, a, sizeof(a)), NQ_DELIVERY_STEM_MAX + 5);
    assert_null(strchr(a, '~'));
    /* One byte more and it is cut, timestamp kept. */
    /* cppcheck-suppress redundantAssignment ; d1 reads it */
    id1[NQ_DELIVERY_STEM_MAX - 2 - 14] = 'x';
    id1[NQ_DELIVERY_STEM_MAX - 1 - 14] = '\0';
    assert_int_equal(nq_file_spool_name(&d1, NQ_MSG_SMS, a, sizeof(a)), NQ_DELIVERY_STEM_MAX + 5);
    assert_non_null(strchr(a, '~'));
    assert_string_equal(a + NQ_DELIVERY_STEM_MAX - 14, "." TS_S ".json");
    assert_int_equal(nq_file_spool_name(&d1, NQ_MSG_SMS, a, 10), -ENOBUFS);
}

static void message_id_is_stable_and_atom_safe(void **state)
{
    struct nq_delivery d = { .queue = "email", .job_id = "email-n1:x", .timestamp = TS };
    char a[512], b[512];

    (void) state;
    assert_true(nq_delivery_message_id(&d, a, sizeof(a)) > 0);
    d.attempt = 3;
    assert_true(nq_delivery_message_id(&d, b, sizeof(b)) > 0);
    assert_string_equal(a, b);
    assert_int_equal(strncmp(a, "<email.email-n1%3Ax." TS_S "@", 34), 0);
    /* The same id on a job added later is another message. */
    d.timestamp = TS + 1000;
    assert_true(nq_delivery_message_id(&d, b, sizeof(b)) > 0);
    assert_string_not_equal(a, b);
    assert_int_equal(a[strlen(a) - 1], '>');
    assert_null(strpbrk(a + 1, "<:/ \"()[]\\,;"));
}

/* ---- the spool directory at start -------------------------------------------- */

static void start_makes_the_spool_dir_0750(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct stat st;
    char deep[256];

    snprintf(deep, sizeof(deep), "%s/a/b/spool", f->dir);
    f->cfg.spool_dir = deep;
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), 0);
    assert_string_equal(nq_provider_name(f->p), "file");
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0750);
    snprintf(deep, sizeof(deep), "%s/a", f->dir);
    assert_int_equal(stat(deep, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);
}

static void start_keeps_an_existing_dir(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct stat st;

    assert_int_equal(mkdir(f->spool, 0700), 0);
    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    assert_int_equal(stat(f->spool, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0700); /* the operator's choice stands */
}

static void start_errors_name_the_path_and_cause(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    char file[128], under[192], want[512];
    int fd;

    snprintf(file, sizeof(file), "%s/plainfile", f->dir);
    fd = open(file, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);

    snprintf(under, sizeof(under), "%s/sub/spool", file);
    f->cfg.spool_dir = under;
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), -ENOTDIR);
    assert_null(f->p);
    snprintf(want, sizeof(want),
             "provider file: spool_dir %s: cannot create %s/sub: Not a directory", under, file);
    assert_string_equal(nq_err_str(&err), want);

    f->cfg.spool_dir = file;
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), -ENOTDIR);
    snprintf(want, sizeof(want), "provider file: spool_dir %s: Not a directory", file);
    assert_string_equal(nq_err_str(&err), want);

    f->cfg.spool_dir = NULL;
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), -EINVAL);
    assert_string_equal(nq_err_str(&err), "provider file: spool_dir is not set");

    f->cfg.kind = NQ_PROVIDER_NONE;
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), -EOPNOTSUPP);
    assert_string_equal(nq_err_str(&err), "queue q: no provider configured");
}

static void start_sweeps_only_stale_temp_files(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
    char path[256];
    char *ls;
    int fd;

    assert_int_equal(mkdir(f->spool, 0750), 0);
    static const char *const names[] = { ".nq-1-0.tmp", ".nq-2-0.tmp", ".nq-keep", "x.tmp" };
    for (size_t i = 0; i < NQ_ELEMENTSOF(names); i++) {
        snprintf(path, sizeof(path), "%s/%s", f->spool, names[i]);
        fd = open(path, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        close(fd);
        if (i != 1) /* .nq-2-0.tmp is fresh: a sibling may be writing it */
            assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
    }
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), 0);
    ls = listing(f->spool);
    assert_string_equal(ls, ".nq-2-0.tmp .nq-keep x.tmp");
    free(ls);
}

/* ---- writes ---------------------------------------------------------------------- */

static void email_is_spooled_as_mime_alternative(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    const char *text = "Hello Bob,\nyour code is a=b.\n\ttabbed line \nlast";
    const char *html = "<p>Hello <b>Bob</b></p>";
    const char *subject = "Bienvenue \xc3\xa0 notifyq \xe2\x80\x94 un sujet assez long pour "
                          "\xc3\xaatre coup\xc3\xa9 en plusieurs mots encod\xc3\xa9s";
    struct nq_msg m;
    struct capture c;
    char want_path[256], *msg, *v, *dec, *ls, boundary[64], *part, *end;

    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), 0);
    email_msg(&m, subject, text, html);
    c = send_one(f, &m, "email", "job:1");
    nq_msg_done(&m);

    assert_int_equal(c.status, NQ_SEND_SENT);
    snprintf(want_path, sizeof(want_path), "%s/email.job%%3A1." TS_S ".eml", f->spool);
    assert_string_equal(c.path, want_path);
    assert_int_equal(strncmp(c.message_id, "<email.job%3A1." TS_S "@", 29), 0);
    ls = listing(f->spool);
    assert_string_equal(ls, "email.job%3A1." TS_S ".eml");
    free(ls);

    msg = slurp(c.path);
    /* Every line ends in CRLF; every header line is short and 7-bit. */
    for (const char *p = msg; *p; p++) {
        assert_true((unsigned char) *p < 0x80);
        if (*p == '\n')
            assert_int_equal(p[-1], '\r');
    }
    v = header(msg, "From");
    assert_string_equal(v, "App <app@example.com>");
    free(v);
    v = header(msg, "To");
    assert_int_equal(strncmp(v, "bob@example.org, =?UTF-8?B?", 27), 0);
    end = strstr(v, " <eve@example.org>");
    assert_non_null(end);
    assert_string_equal(end, " <eve@example.org>");
    *end = '\0';
    dec = words_decode(strchr(v, ',') + 2);
    assert_string_equal(dec, "\xc3\x88ve \"E\" Durand");
    free(dec);
    free(v);
    v = header(msg, "Subject");
    dec = words_decode(v);
    assert_string_equal(dec, subject);
    free(dec);
    free(v);
    v = header(msg, "Message-ID");
    assert_string_equal(v, c.message_id);
    free(v);
    v = header(msg, "X-Notifyq-Job-Id");
    assert_string_equal(v, "job:1");
    free(v);
    v = header(msg, "X-Notifyq-Tenant-Id");
    assert_string_equal(v, "t1");
    free(v);
    v = header(msg, "Date");
    assert_non_null(v);
    free(v);
    v = header(msg, "MIME-Version");
    assert_string_equal(v, "1.0");
    free(v);

    v = header(msg, "Content-Type");
    assert_int_equal(sscanf(v, "multipart/alternative; boundary=\"%63[^\"]\"", boundary), 1);
    free(v);
    assert_int_equal(strncmp(boundary, "=_", 2), 0);

    /* Part 1: text/plain, decoding back to the text (LF for CRLF). */
    part = strstr(msg, "\r\n--");
    assert_non_null(part);
    part = strstr(part, "Content-Type: text/plain; charset=utf-8\r\n"
                        "Content-Transfer-Encoding: quoted-printable\r\n\r\n");
    assert_non_null(part);
    part = strstr(part, "\r\n\r\n") + 4;
    end = strstr(part, "--=_");
    assert_non_null(end);
    dec = qp_decode(part, (size_t) (end - part));
    assert_string_equal(dec, text);
    free(dec);
    assert_non_null(strstr(part, "a=3Db."));
    assert_non_null(strstr(part, "line=20\r\n")); /* trailing space encoded */

    part = strstr(end, "Content-Type: text/html; charset=utf-8\r\n");
    assert_non_null(part);
    part = strstr(part, "\r\n\r\n") + 4;
    end = strstr(part, "--=_");
    dec = qp_decode(part, (size_t) (end - part));
    assert_string_equal(dec, html);
    free(dec);
    assert_string_equal(end + 2 + strlen(boundary), "--\r\n");
    free(msg);
}

static void single_parts_and_long_lines(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    char text[400], *msg, *v, *body, *dec;
    struct nq_msg m;
    struct capture c;

    for (size_t i = 0; i < sizeof(text) - 1; i++)
        text[i] = (char) ('a' + i % 26);
    memcpy(text + 100, "\xc3\xa9=", 3);
    text[sizeof(text) - 1] = '\0';
    assert_int_equal(make(f, NQ_MSG_EMAIL, &err), 0);

    email_msg(&m, "Plain subject", text, NULL);
    c = send_one(f, &m, "email", "7");
    nq_msg_done(&m);
    assert_int_equal(c.status, NQ_SEND_SENT);
    msg = slurp(c.path);
    v = header(msg, "Subject");
    assert_string_equal(v, "Plain subject");
    free(v);
    v = header(msg, "Content-Type");
    assert_string_equal(v, "text/plain; charset=utf-8");
    free(v);
    assert_null(strstr(msg, "multipart"));
    body = strstr(msg, "\r\n\r\n") + 4;
    dec = qp_decode(body, strlen(body)); /* checks every line is <= 76 */
    assert_string_equal(dec, text);
    free(dec);
    free(msg);

    email_msg(&m, NULL, NULL, "<p>only html</p>");
    c = send_one(f, &m, "email", "8");
    nq_msg_done(&m);
    msg = slurp(c.path);
    v = header(msg, "Content-Type");
    assert_string_equal(v, "text/html; charset=utf-8");
    free(v);
    assert_null(header(msg, "Subject"));
    free(msg);
}

static void a_retry_overwrites_its_file(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_msg m;
    struct capture c1, c2;
    char *ls;
    json_t *j;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    sms_msg(&m, "first");
    c1 = send_one(f, &m, "sms", "sms-n1");
    nq_msg_done(&m);
    sms_msg(&m, "second");
    c2 = send_one(f, &m, "sms", "sms-n1");
    nq_msg_done(&m);
    assert_string_equal(c1.path, c2.path);
    assert_string_equal(c1.message_id, c2.message_id);
    ls = listing(f->spool);
    assert_string_equal(ls, "sms.sms-n1." TS_S ".json");
    free(ls);
    j = json_load_file(c2.path, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "second");
    json_decref(j);
}

/* A job id used again (the first job removed, or Redis emptied and ids
 * restarted) is another delivery: its file goes beside the first one's. */
static void a_reused_job_id_keeps_both_messages(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_msg m;
    struct capture c1, c2;
    char *ls;
    json_t *j;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    sms_msg(&m, "first");
    c1 = send_at(f, &m, "sms", "welcome-42", TS);
    nq_msg_done(&m);
    sms_msg(&m, "second");
    c2 = send_at(f, &m, "sms", "welcome-42", TS + 5);
    nq_msg_done(&m);
    assert_int_equal(c1.status, NQ_SEND_SENT);
    assert_int_equal(c2.status, NQ_SEND_SENT);
    assert_string_not_equal(c1.path, c2.path);
    assert_string_not_equal(c1.message_id, c2.message_id);
    ls = listing(f->spool);
    assert_string_equal(ls, "sms.welcome-42.1765000000000.json sms.welcome-42.1765000000005.json");
    free(ls);
    j = json_load_file(c1.path, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "first");
    json_decref(j);
    j = json_load_file(c2.path, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "body")), "second");
    json_decref(j);
}

/* Sends one sms as job id and checks it is at the path reported, under the
 * spool dir the config names. */
static void send_lands_where_reported(struct fixture *f, const char *id)
{
    struct nq_msg m;
    struct capture c;
    char want[256];
    json_t *j;

    sms_msg(&m, id);
    c = send_one(f, &m, "sms", id);
    nq_msg_done(&m);
    assert_int_equal(c.status, NQ_SEND_SENT);
    snprintf(want, sizeof(want), "%s/sms.%s." TS_S ".json", f->spool, id);
    assert_string_equal(c.path, want);
    j = json_load_file(c.path, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "body")), id);
    json_decref(j);
}

static void a_moved_spool_dir_is_followed(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    char old[256], *ls;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    send_lands_where_reported(f, "1");
    /* mv spool spool.old; mkdir spool */
    snprintf(old, sizeof(old), "%s.old", f->spool);
    assert_int_equal(rename(f->spool, old), 0);
    assert_int_equal(mkdir(f->spool, 0750), 0);
    send_lands_where_reported(f, "2");
    ls = listing(old);
    assert_string_equal(ls, "sms.1." TS_S ".json");
    free(ls);
    ls = listing(f->spool);
    assert_string_equal(ls, "sms.2." TS_S ".json");
    free(ls);
}

static void a_removed_spool_dir_is_made_again(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_msg m;
    struct capture c;
    char want[512];
    struct stat st;
    int fd;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    send_lands_where_reported(f, "1");
    rm_rf(f->spool);
    send_lands_where_reported(f, "2");
    assert_int_equal(stat(f->spool, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0750);

    /* Replaced by a plain file: retryable, and the reason names it... */
    rm_rf(f->spool);
    fd = open(f->spool, O_WRONLY | O_CREAT, 0600);
    assert_true(fd >= 0);
    close(fd);
    sms_msg(&m, "x");
    c = send_one(f, &m, "sms", "3");
    nq_msg_done(&m);
    assert_int_equal(c.status, NQ_SEND_RETRY);
    snprintf(want, sizeof(want), "file: spool_dir %s: Not a directory", f->spool);
    assert_string_equal(c.reason, want);
    /* ...until the directory is back, without a restart. */
    assert_int_equal(unlink(f->spool), 0);
    assert_int_equal(mkdir(f->spool, 0700), 0);
    send_lands_where_reported(f, "3");
}

static void hostile_ids_stay_inside_the_spool_dir(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    static const char *const ids[] = { "../escape", "/etc/x", "a/b:c", "..", "." };
    struct nq_msg m;
    char *ls;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    for (size_t i = 0; i < NQ_ELEMENTSOF(ids); i++) {
        sms_msg(&m, "x");
        struct capture c = send_one(f, &m, "sms", ids[i]);
        nq_msg_done(&m);
        assert_int_equal(c.status, NQ_SEND_SENT);
        assert_int_equal(strncmp(c.path, f->spool, strlen(f->spool)), 0);
        assert_null(strchr(c.path + strlen(f->spool) + 1, '/'));
    }
    ls = listing(f->spool);
    assert_string_equal(ls, "sms.%2E%2E%2Fescape." TS_S ".json sms.%2E%2E." TS_S ".json "
                            "sms.%2E." TS_S ".json sms.%2Fetc%2Fx." TS_S ".json "
                            "sms.a%2Fb%3Ac." TS_S ".json");
    free(ls);
    ls = listing(f->dir);
    assert_string_equal(ls, "spool"); /* nothing beside it */
    free(ls);
}

static void sms_and_push_are_json_documents(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_msg m;
    struct capture c;
    json_t *j, *tokens;
    char *raw;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    sms_msg(&m, "Your code is 123456");
    m.sms.from = strdup("ACME");
    c = send_one(f, &m, "sms", "41");
    nq_msg_done(&m);
    assert_string_equal(c.message_id, "sms.41." TS_S);
    j = json_load_file(c.path, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "channel")), "sms");
    assert_string_equal(json_string_value(json_object_get(j, "queue")), "sms");
    assert_string_equal(json_string_value(json_object_get(j, "jobId")), "41");
    assert_string_equal(json_string_value(json_object_get(j, "messageId")), "sms.41." TS_S);
    assert_string_equal(json_string_value(json_object_get(j, "to")), "+15551234567");
    assert_string_equal(json_string_value(json_object_get(j, "from")), "ACME");
    assert_string_equal(json_string_value(json_object_get(j, "body")), "Your code is 123456");
    assert_string_equal(json_string_value(json_object_get(j, "notificationId")), "n-9");
    assert_null(json_object_get(j, "tenantId"));
    assert_non_null(json_string_value(json_object_get(j, "writtenAt")));
    json_decref(j);
    raw = slurp(c.path);
    assert_int_equal(raw[strlen(raw) - 1], '\n');
    assert_non_null(strstr(raw, "\n  \"to\": \"+15551234567\"")); /* indented for people */
    free(raw);
    nq_provider_free(f->p);

    assert_int_equal(make(f, NQ_MSG_PUSH, &err), 0);
    nq_msg_init(&m, NQ_MSG_PUSH);
    m.push.tokens = calloc(2, sizeof(char *));
    m.push.tokens[0] = strdup("tokA");
    m.push.tokens[1] = strdup("tokB");
    m.push.n_tokens = 2;
    m.push.title = strdup("New Appointment");
    m.push.data = calloc(1, sizeof(*m.push.data));
    m.push.data[0] = (struct nq_kv){ strdup("appointmentId"), strdup("17") };
    m.push.n_data = 1;
    c = send_one(f, &m, "push", "p1");
    nq_msg_done(&m);
    j = json_load_file(c.path, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "channel")), "push");
    tokens = json_object_get(j, "tokens");
    assert_int_equal(json_array_size(tokens), 2);
    assert_string_equal(json_string_value(json_array_get(tokens, 1)), "tokB");
    assert_string_equal(json_string_value(json_object_get(j, "title")), "New Appointment");
    assert_null(json_object_get(j, "body"));
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "data"), "appointmentId")), "17");
    json_decref(j);
}

static void a_cancelled_send_writes_nothing(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_delivery d = { .queue = "sms", .job_id = "1" };
    struct capture c = { 0 };
    struct nq_send *s1 = NULL, *s2 = NULL;
    struct nq_msg m;
    char *ls;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    sms_msg(&m, "x");
    assert_int_equal(nq_provider_send(f->p, &m, &d, on_done, &c, &s1), 0);
    assert_int_equal(nq_provider_send(f->p, &m, &d, on_done, &c, &s2), 0);
    nq_provider_cancel(f->p, s1);
    nq_provider_cancel(f->p, s2);
    assert_int_equal(event_base_dispatch(f->base), 1);
    assert_int_equal(c.calls, 0);
    ls = listing(f->spool);
    assert_string_equal(ls, "");
    free(ls);
    /* Freeing with a send in flight drops it too (no timer left behind). */
    assert_int_equal(nq_provider_send(f->p, &m, &d, on_done, &c, &s1), 0);
    f->p = nq_provider_free(f->p);
    assert_int_equal(event_base_dispatch(f->base), 1);
    assert_int_equal(c.calls, 0);
    nq_msg_done(&m);
}

static void a_failed_write_is_retryable_and_leaves_no_temp(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };
    struct nq_msg m;
    struct capture c;
    char blocker[256], want[512], *ls;

    assert_int_equal(make(f, NQ_MSG_SMS, &err), 0);
    /* A directory where the file must go: the rename fails. */
    snprintf(blocker, sizeof(blocker), "%s/sms.7." TS_S ".json", f->spool);
    assert_int_equal(mkdir(blocker, 0700), 0);
    sms_msg(&m, "x");
    c = send_one(f, &m, "sms", "7");
    nq_msg_done(&m);
    assert_int_equal(c.status, NQ_SEND_RETRY);
    snprintf(want, sizeof(want), "file: rename to %s: Is a directory", blocker);
    assert_string_equal(c.reason, want);
    assert_string_equal(c.path, "");
    ls = listing(f->spool);
    assert_string_equal(ls, "sms.7." TS_S ".json");
    free(ls);
}

static void a_provider_refuses_what_it_cannot_carry(void **state)
{
    struct fixture *f = *state;
    struct nq_err err = { { 0 } };

    /* The file provider carries all three; the check lives in the
     * dispatcher, so probe it with a type outside the provider's set. */
    struct nq_provider_env env = {
        .base = f->base, .queue = "q", .cfg = &f->cfg, .type = (enum nq_msg_type) 5
    };
    assert_int_equal(nq_provider_new(&env, &f->p, &err), -EINVAL);
    assert_null(f->p);
    assert_string_equal(nq_err_str(&err), "provider file: cannot send ? messages");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spool_names_are_encoded_and_injective),
        cmocka_unit_test(long_ids_are_cut_with_a_hash),
        cmocka_unit_test(message_id_is_stable_and_atom_safe),
        cmocka_unit_test_setup_teardown(start_makes_the_spool_dir_0750, setup, teardown),
        cmocka_unit_test_setup_teardown(start_keeps_an_existing_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(start_errors_name_the_path_and_cause, setup, teardown),
        cmocka_unit_test_setup_teardown(start_sweeps_only_stale_temp_files, setup, teardown),
        cmocka_unit_test_setup_teardown(email_is_spooled_as_mime_alternative, setup, teardown),
        cmocka_unit_test_setup_teardown(single_parts_and_long_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(a_retry_overwrites_its_file, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reused_job_id_keeps_both_messages, setup, teardown),
        cmocka_unit_test_setup_teardown(a_moved_spool_dir_is_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(a_removed_spool_dir_is_made_again, setup, teardown),
        cmocka_unit_test_setup_teardown(hostile_ids_stay_inside_the_spool_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(sms_and_push_are_json_documents, setup, teardown),
        cmocka_unit_test_setup_teardown(a_cancelled_send_writes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(a_failed_write_is_retryable_and_leaves_no_temp, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(a_provider_refuses_what_it_cannot_carry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
