/* SPDX-License-Identifier: MIT */
/*
 * The file provider (see file.h): spool directory setup at start, and one
 * atomic file per delivery.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "common/cleanup.h"
#include "providers/file.h"
#include "providers/mime.h"

#define SPOOL_DIR_MODE 0750
#define SPOOL_FILE_MODE 0640
#define TMP_PREFIX ".nq-"
#define TMP_SUFFIX ".tmp"
#define TMP_STALE_S 3600
#define MESSAGE_ID_MAX (NQ_DELIVERY_STEM_MAX + 300)

struct file_provider {
    struct nq_provider base;
    struct event_base *ev;
    char *dir;
    int dirfd;
    dev_t dir_dev; /* what dirfd is, to see when dir names another one */
    ino_t dir_ino;
    unsigned long tmp_seq;
    struct nq_send *pending; /* sends whose write has not run yet */
};

struct nq_send {
    struct file_provider *fp;
    struct event *ev;
    const struct nq_msg *msg;
    const struct nq_delivery *d;
    nq_send_done_fn done;
    void *userdata;
    struct nq_send *prev, *next;
};

/* Why a spool write failed: the step, the path it was on, the errno. */
struct write_err {
    const char *step;
    char path[PATH_MAX];
    int r;
};

int nq_file_spool_name(const struct nq_delivery *d, enum nq_msg_type type, char *buf, size_t size)
{
    char stem[NQ_DELIVERY_STEM_MAX + 1];
    int r, n;

    r = nq_delivery_stem(d, stem, sizeof(stem));
    if (r < 0)
        return r;
    n = snprintf(buf, size, "%s.%s", stem, type == NQ_MSG_EMAIL ? "eml" : "json");
    return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

/* ---- start: the spool directory ------------------------------------------- */

/* mkdir -p with SPOOL_DIR_MODE; on failure *ret_failed names the directory
 * that could not be made. */
static int mkdir_parents(const char *path, char **ret_failed)
{
    nq_autofree char *p = strdup(path);

    if (!p)
        return -ENOMEM;
    for (char *s = p + 1;; s++) {
        bool end = *s == '\0';

        if (*s != '/' && !end)
            continue;
        *s = '\0';
        if (mkdir(p, SPOOL_DIR_MODE) < 0 && errno != EEXIST) {
            int r = -errno;
            *ret_failed = NQ_TAKE_PTR(p);
            return r;
        }
        if (end)
            return 0;
        *s = '/';
        while (s[1] == '/')
            s++;
    }
}

static bool is_stale_tmp(int dirfd, const char *name, time_t now)
{
    size_t n = strlen(name);
    struct stat st;

    if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) != 0 || n < strlen(TMP_SUFFIX) ||
        strcmp(name + n - strlen(TMP_SUFFIX), TMP_SUFFIX) != 0)
        return false;
    return fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
           st.st_mtime + TMP_STALE_S < now;
}

/* Best effort: a temp file that cannot be removed only wastes space. */
static void sweep_stale_tmp(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    time_t now = time(NULL);
    DIR *dir;
    struct dirent *de;

    if (fd < 0)
        return;
    dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        return;
    }
    while ((de = readdir(dir)))
        if (is_stale_tmp(dirfd, de->d_name, now))
            (void) unlinkat(dirfd, de->d_name, 0);
    closedir(dir);
}

/* Makes path (and its parents) if missing and opens it; who starts the
 * messages ("provider file" at start, "file" in a send's reason). */
static int open_spool_dir(const char *who, const char *path, int *ret_fd, struct stat *ret_st,
                          struct nq_err *err)
{
    nq_autofree char *failed = NULL;
    nq_autoclose int fd = -1;
    int r;

    if (!path || !*path)
        return nq_err_set(err, -EINVAL, "%s: spool_dir is not set", who);
    r = mkdir_parents(path, &failed);
    if (r == -ENOMEM)
        return nq_err_set(err, r, "out of memory");
    if (r < 0 && strcmp(failed, path) == 0)
        return nq_err_set(err, r, "%s: spool_dir %s: %s", who, path, strerror(-r));
    if (r < 0)
        return nq_err_set(err, r, "%s: spool_dir %s: cannot create %s: %s", who, path, failed,
                          strerror(-r));
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return nq_err_set(err, -errno, "%s: spool_dir %s: %s", who, path, strerror(errno));
    if (faccessat(fd, ".", W_OK | X_OK, AT_EACCESS) < 0)
        return nq_err_set(err, -errno, "%s: spool_dir %s: not writable: %s", who, path,
                          strerror(errno));
    if (fstat(fd, ret_st) < 0)
        return nq_err_set(err, -errno, "%s: spool_dir %s: %s", who, path, strerror(errno));
    /* cppcheck-suppress unreadVariable ; NQ_TAKE_FD leaves -1 for the cleanup to see */
    *ret_fd = NQ_TAKE_FD(fd);
    return 0;
}

static int file_make(const struct nq_provider_env *env, struct nq_provider **ret,
                     struct nq_err *err)
{
    struct file_provider *fp = calloc(1, sizeof(*fp));
    struct stat st = { 0 }; /* set: the analyzer cannot tell that -errno < 0 */
    int r;

    if (!fp)
        return nq_err_set(err, -ENOMEM, "out of memory");
    fp->base.ops = &nq_provider_file;
    fp->ev = env->base;
    fp->dirfd = -1;
    r = open_spool_dir("provider file", env->cfg->spool_dir, &fp->dirfd, &st, err);
    if (r < 0)
        goto fail;
    fp->dir_dev = st.st_dev;
    fp->dir_ino = st.st_ino;
    fp->dir = strdup(env->cfg->spool_dir);
    if (!fp->dir) {
        r = nq_err_set(err, -ENOMEM, "out of memory");
        goto fail;
    }
    sweep_stale_tmp(fp->dirfd);
    *ret = &fp->base;
    return 0;
fail:
    if (fp->dirfd >= 0)
        close(fp->dirfd);
    free(fp);
    return r;
}

static void file_free(struct nq_provider *p)
{
    struct file_provider *fp = (struct file_provider *) p;

    /* The contract forbids sends in flight here; cancelling keeps a
     * violation from leaving a timer that points at freed memory. */
    while (fp->pending)
        nq_provider_cancel(p, fp->pending);
    close(fp->dirfd);
    free(fp->dir);
    free(fp);
}

/* ---- one delivery --------------------------------------------------------- */

static void iso_time(char *buf, size_t size)
{
    struct timeval tv;
    struct tm tm;

    size_t n;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int) (tv.tv_usec / 1000));
}

/* json_object_set_new that drops NULL values; a string that is not valid
 * UTF-8 (job ids come from Redis as bytes) is left out rather than failing. */
static void set_str(json_t *o, const char *key, const char *value)
{
    if (value)
        json_object_set_new(o, key, json_string(value));
}

static json_t *kvs_json(const struct nq_kv *v, size_t n)
{
    json_t *o = json_object();

    for (size_t i = 0; o && i < n; i++)
        set_str(o, v[i].name, v[i].value);
    return o;
}

static json_t *strings_json(char *const *v, size_t n)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

static json_t *message_json(const struct nq_msg *m, const struct nq_delivery *d,
                            const char *message_id)
{
    json_t *o = json_object();
    char now[64];

    if (!o)
        return NULL;
    iso_time(now, sizeof(now));
    set_str(o, "channel", nq_msg_type_name(m->type));
    set_str(o, "queue", d->queue);
    set_str(o, "jobId", d->job_id);
    set_str(o, "messageId", message_id);
    set_str(o, "writtenAt", now);
    set_str(o, "tenantId", m->tenant_id);
    set_str(o, "notificationId", m->notification_id);
    if (m->type == NQ_MSG_SMS) {
        set_str(o, "to", m->sms.to);
        set_str(o, "from", m->sms.from);
        set_str(o, "body", m->sms.body);
    } else {
        json_object_set_new(o, "tokens", strings_json(m->push.tokens, m->push.n_tokens));
        set_str(o, "platform", m->push.platform);
        set_str(o, "title", m->push.title);
        set_str(o, "body", m->push.body);
        json_object_set_new(o, "data", kvs_json(m->push.data, m->push.n_data));
        if (m->push.android)
            json_object_set_new(o, "android", json_loads(m->push.android, 0, NULL));
        if (m->push.apns)
            json_object_set_new(o, "apns", json_loads(m->push.apns, 0, NULL));
        if (m->push.webpush)
            json_object_set_new(o, "webpush", json_loads(m->push.webpush, 0, NULL));
    }
    return o;
}

/* Writes the content to f; -ENOMEM, or 0 (write errors show in ferror). */
static int write_content(FILE *f, const struct nq_msg *m, const struct nq_delivery *d,
                         const char *message_id)
{
    json_t *j;
    int r;

    if (m->type == NQ_MSG_EMAIL) {
        struct nq_mime_env env = {
            .message_id = message_id, .date = time(NULL), .queue = d->queue, .job_id = d->job_id
        };
        nq_mime_write(f, m, &env);
        return 0;
    }
    j = message_json(m, d, message_id);
    if (!j)
        return -ENOMEM;
    r = json_dumpf(j, f, JSON_INDENT(2)) < 0 ? -ENOMEM : 0;
    json_decref(j);
    if (r == 0)
        fputc('\n', f);
    return r;
}

static int fail_at(struct write_err *we, const char *step, const char *dir, const char *name, int r)
{
    we->step = step;
    we->r = r;
    snprintf(we->path, sizeof(we->path), "%s%s%s", dir, name ? "/" : "", name ? name : "");
    return r;
}

/* Creates a fresh temp file; its name goes to tmp. */
static int open_tmp(struct file_provider *fp, char *tmp, size_t size)
{
    for (int tries = 0; tries < 100; tries++) {
        int fd;

        snprintf(tmp, size, TMP_PREFIX "%ld-%lu" TMP_SUFFIX, (long) getpid(), fp->tmp_seq++);
        fd = openat(fp->dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, SPOOL_FILE_MODE);
        if (fd >= 0 || errno != EEXIST)
            return fd < 0 ? -errno : fd;
    }
    return -EEXIST;
}

/* Writes, fsyncs and closes the temp file; closes fd in every case. */
static int fill_tmp(int fd, const struct nq_msg *m, const struct nq_delivery *d,
                    const char *message_id, const char **ret_step)
{
    FILE *f = fdopen(fd, "w");
    int r;

    *ret_step = "write";
    if (!f) {
        r = -errno;
        close(fd);
        return r;
    }
    r = write_content(f, m, d, message_id);
    if (r == 0 && (fflush(f) != 0 || ferror(f)))
        r = errno ? -errno : -EIO;
    if (r == 0 && fsync(fd) < 0) {
        *ret_step = "fsync";
        r = -errno;
    }
    if (fclose(f) != 0 && r == 0)
        r = -errno;
    return r;
}

/* Makes fp->dirfd the directory fp->dir names now: the one it held may have
 * been moved away, removed, or replaced by a new one. 0, or a negative errno
 * with reason set. */
static int spool_dir_resolve(struct file_provider *fp, char *reason, size_t size)
{
    struct nq_err err = { "" };
    struct stat st;
    int fd = -1, r; /* set: the analyzer cannot tell that -errno < 0 */

    if (stat(fp->dir, &st) == 0 && st.st_dev == fp->dir_dev && st.st_ino == fp->dir_ino)
        return 0;
    r = open_spool_dir("file", fp->dir, &fd, &st, &err);
    if (r < 0) {
        snprintf(reason, size, "%s", nq_err_str(&err));
        return r;
    }
    close(fp->dirfd);
    fp->dirfd = fd;
    fp->dir_dev = st.st_dev;
    fp->dir_ino = st.st_ino;
    return 0;
}

/* Whether the file at dir/name is the one that was written (tmp's st). */
static bool written_where_named(const struct file_provider *fp, const char *name,
                                const struct stat *tmp)
{
    char path[PATH_MAX];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", fp->dir, name);
    return stat(path, &st) == 0 && st.st_dev == tmp->st_dev && st.st_ino == tmp->st_ino;
}

static int spool_write(struct file_provider *fp, const struct nq_msg *m,
                       const struct nq_delivery *d, const char *name, const char *message_id,
                       struct write_err *we)
{
    char tmp[64];
    const char *step;
    struct stat st;
    int fd, r;

    fd = open_tmp(fp, tmp, sizeof(tmp));
    if (fd < 0)
        return fail_at(we, "create", fp->dir, tmp, fd);
    errno = 0;
    r = fill_tmp(fd, m, d, message_id, &step);
    if (r == 0 && fstatat(fp->dirfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        step = "stat";
        r = -errno;
    }
    if (r != 0) {
        (void) unlinkat(fp->dirfd, tmp, 0);
        return fail_at(we, step, fp->dir, tmp, r);
    }
    if (renameat(fp->dirfd, tmp, fp->dirfd, name) < 0) {
        r = -errno;
        (void) unlinkat(fp->dirfd, tmp, 0);
        return fail_at(we, "rename to", fp->dir, name, r);
    }
    /* Without this the rename itself may not survive a power cut. */
    if (fsync(fp->dirfd) < 0)
        return fail_at(we, "fsync", fp->dir, NULL, -errno);
    /* The directory moved during the write: the file is not at the path we
     * would report. The retry writes it where spool_dir names now. */
    if (!written_where_named(fp, name, &st))
        return fail_at(we, "moved", fp->dir, name, -ESTALE);
    return 0;
}

static void pending_unlink(struct nq_send *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        s->fp->pending = s->next;
    if (s->next)
        s->next->prev = s->prev;
}

static void send_free(struct nq_send *s)
{
    pending_unlink(s);
    event_free(s->ev);
    free(s);
}

static void report(struct file_provider *fp, const struct nq_msg *m, const struct nq_delivery *d,
                   nq_send_done_fn done, void *userdata)
{
    char name[NQ_DELIVERY_STEM_MAX + 16], message_id[MESSAGE_ID_MAX], reason[PATH_MAX + 128];
    char path[PATH_MAX];
    struct nq_send_result res = { .status = NQ_SEND_RETRY, .reason = reason };
    struct write_err we = { 0 };
    json_t *details = NULL;
    int r;

    reason[0] = '\0';
    r = nq_file_spool_name(d, m->type, name, sizeof(name));
    if (r >= 0)
        r = m->type == NQ_MSG_EMAIL ? nq_delivery_message_id(d, message_id, sizeof(message_id))
                                    : nq_delivery_stem(d, message_id, sizeof(message_id));
    if (r < 0)
        fail_at(&we, "name", fp->dir, NULL, r);
    else if ((r = spool_dir_resolve(fp, reason, sizeof(reason))) >= 0)
        r = spool_write(fp, m, d, name, message_id, &we);
    snprintf(path, sizeof(path), "%s/%s", fp->dir, name);
    if (r >= 0) {
        details = json_pack("{s:s}", "path", path);
        if (details) {
            res = (struct nq_send_result){ .status = NQ_SEND_SENT,
                                           .message_id = message_id,
                                           .details = details };
        } else {
            fail_at(&we, "report", fp->dir, name, -ENOMEM);
        }
    }
    if (res.status != NQ_SEND_SENT && we.r == -ESTALE)
        snprintf(reason, sizeof(reason),
                 "file: spool_dir %s was moved or replaced while %s was written; writing it again",
                 fp->dir, name);
    else if (res.status != NQ_SEND_SENT && !reason[0])
        snprintf(reason, sizeof(reason), "file: %s %s: %s", we.step, we.path, strerror(-we.r));
    done(&res, userdata);
    json_decref(details);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct nq_send *s = arg;
    struct file_provider *fp = s->fp;
    const struct nq_msg *m = s->msg;
    const struct nq_delivery *d = s->d;
    nq_send_done_fn done = s->done;
    void *userdata = s->userdata;

    (void) fd;
    (void) what;
    /* Freed first: done may cancel nothing of ours, but it may free the
     * caller's whole call, and s must not outlive it. */
    send_free(s);
    report(fp, m, d, done, userdata);
}

static int file_send(struct nq_provider *p, const struct nq_msg *msg, const struct nq_delivery *d,
                     nq_send_done_fn done, void *userdata, struct nq_send **ret_send)
{
    static const struct timeval now = { 0, 0 };
    struct file_provider *fp = (struct file_provider *) p;
    struct nq_send *s = calloc(1, sizeof(*s));

    if (!s)
        return -ENOMEM;
    *s = (struct nq_send){
        .fp = fp, .msg = msg, .d = d, .done = done, .userdata = userdata, .next = fp->pending
    };
    s->ev = evtimer_new(fp->ev, on_write, s);
    if (!s->ev || evtimer_add(s->ev, &now) < 0) {
        if (s->ev)
            event_free(s->ev);
        free(s);
        return -ENOMEM;
    }
    if (fp->pending)
        fp->pending->prev = s;
    fp->pending = s;
    *ret_send = s;
    return 0;
}

static void file_cancel(struct nq_provider *p, struct nq_send *s)
{
    (void) p;
    send_free(s);
}

const struct nq_provider_ops nq_provider_file = {
    .kind = NQ_PROVIDER_FILE,
    .name = "file",
    .types = 1u << NQ_MSG_EMAIL | 1u << NQ_MSG_SMS | 1u << NQ_MSG_PUSH,
    .make = file_make,
    .free = file_free,
    .send = file_send,
    .cancel = file_cancel,
};
