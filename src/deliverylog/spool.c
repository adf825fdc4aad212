/* SPDX-License-Identifier: MIT */
/*
 * The spool: events the database has not confirmed yet, in order. In memory
 * a queue of lines; on disk the same lines, one JSON object each, appended
 * with one write(2) per loop iteration (dl_spool_write; a worker killed
 * with SIGKILL loses at most the events of the iteration it died in) and
 * fsync'd by the writer every flush interval (a power loss loses at most
 * that). The file is emptied when everything in it was confirmed, and
 * rewritten with only the waiting lines when confirmed ones pile up in it
 * (a spool that never empties under steady load must not grow forever).
 *
 * Each worker holds its own file under flock(2). At start a worker adopts
 * every file of its queue that nobody holds (its owner died or left): the
 * lines go into its own spool ahead of its own events, then the file goes.
 * A torn last line (a crash mid-write) or a line that is not JSON is
 * skipped with a warning: it cannot be replayed anyway.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "deliverylog/internal.h"

/* Rewrite the file once this many confirmed lines sit in it. */
#define SPOOL_REWRITE_ACKED 20000

static int write_all(int fd, const char *buf, size_t len)
{
    while (len) {
        ssize_t n = write(fd, buf, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        buf += n;
        len -= (size_t) n;
    }
    return 0;
}

static int write_line(int fd, const char *line)
{
    size_t len = strlen(line);
    nq_autofree char *buf = malloc(len + 1);

    if (!buf)
        return -ENOMEM;
    /* NOLINTNEXTLINE(bugprone-not-null-terminated-result): ends in '\n' for write(2), not NUL */
    memcpy(buf, line, len);
    buf[len] = '\n';
    return write_all(fd, buf, len + 1);
}

static int grow(struct dl_spool *s)
{
    char **l;
    size_t cap;

    if (s->head + s->n < s->cap)
        return 0;
    if (s->head > 0) { /* room at the front: slide down */
        memmove(s->lines, s->lines + s->head, s->n * sizeof(*s->lines));
        s->head = 0;
        if (s->n < s->cap)
            return 0;
    }
    cap = s->cap ? s->cap * 2 : 256;
    l = reallocarray(s->lines, cap, sizeof(*l));
    if (!l)
        return -ENOMEM;
    s->lines = l;
    s->cap = cap;
    return 0;
}

/* Appends line to memory only; frees it when there is no room. */
static int remember_take(struct dl_spool *s, char *line)
{
    if (grow(s) < 0) {
        free(line);
        return -ENOMEM;
    }
    s->lines[s->head + s->n++] = line;
    return 0;
}

#define SPOOL_OUT_MAX ((size_t) 64 * 1024)

int dl_spool_write(struct dl_spool *s)
{
    int r;

    if (s->out_len == 0)
        return 0;
    r = write_all(s->fd, s->out, s->out_len);
    s->out_len = 0;
    s->dirty = true;
    return r;
}

bool dl_spool_unwritten(const struct dl_spool *s)
{
    return s->out_len > 0;
}

static int queue_out(struct dl_spool *s, const char *line)
{
    size_t len = strlen(line);

    if (s->out_len + len + 1 > s->out_cap) {
        size_t cap = s->out_cap ? s->out_cap : 4096;
        char *b;

        while (cap < s->out_len + len + 1)
            cap *= 2;
        b = realloc(s->out, cap);
        if (!b)
            return -ENOMEM;
        s->out = b;
        s->out_cap = cap;
    }
    memcpy(s->out + s->out_len, line, len);
    s->out[s->out_len + len] = '\n';
    s->out_len += len + 1;
    return s->out_len >= SPOOL_OUT_MAX ? dl_spool_write(s) : 0;
}

int dl_spool_push_take(struct dl_spool *s, char *line)
{
    int r = queue_out(s, line);

    if (remember_take(s, line) < 0)
        return -ENOMEM;
    return r;
}

const char *dl_spool_peek(const struct dl_spool *s, size_t i)
{
    return s->lines[s->head + i];
}

void dl_spool_sync(struct dl_spool *s)
{
    int r;

    if (s->fd < 0)
        return;
    r = dl_spool_write(s);
    if (r < 0)
        nq_log_errno(LOG_ERR, r, "delivery log: writing %s: %m", s->path);
    if (!s->dirty)
        return;
    if (fsync(s->fd) < 0)
        nq_log(LOG_ERR, "delivery log: fsync %s: %m", s->path);
    s->dirty = false;
}

/* A new file holding the waiting lines, locked, renamed over ours. */
static int rewrite(struct dl_spool *s)
{
    size_t len = strlen(s->path) + 5;
    nq_autofree char *tmp = malloc(len);
    int fd, r = 0;

    if (!tmp)
        return -ENOMEM;
    (void) snprintf(tmp, len, "%s.tmp", s->path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0)
        r = -errno;
    for (size_t i = 0; r == 0 && i < s->n; i++)
        r = write_line(fd, dl_spool_peek(s, i));
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && rename(tmp, s->path) < 0)
        r = -errno;
    if (r < 0) {
        (void) unlink(tmp);
        (void) close(fd);
        return r;
    }
    (void) close(s->fd);
    s->fd = fd;
    s->dirty = false;
    s->out_len = 0; /* every waiting line is in the new file */
    return 0;
}

void dl_spool_ack(struct dl_spool *s, size_t n)
{
    int r;

    for (size_t i = 0; i < n; i++)
        free(s->lines[s->head + i]);
    s->head += n;
    s->n -= n;
    s->acked += n;
    if (s->n == 0) {
        s->head = 0;
        s->out_len = 0; /* confirmed before they were even written */
        if (ftruncate(s->fd, 0) < 0)
            nq_log(LOG_ERR, "delivery log: emptying %s: %m", s->path);
        s->acked = 0;
        return;
    }
    if (s->acked < SPOOL_REWRITE_ACKED)
        return;
    r = rewrite(s);
    if (r < 0)
        nq_log_errno(LOG_ERR, r, "delivery log: rewriting %s: %m", s->path);
    else
        s->acked = 0;
}

/* Reads an orphan's lines into our spool (memory and file). 0 or a
 * negative errno. */
static int adopt_lines(struct dl_spool *s, FILE *f, const char *name)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned skipped = 0, taken = 0;
    int r = 0;

    while (r == 0 && (len = getline(&line, &cap, f)) > 0) {
        json_t *probe;

        if (line[len - 1] != '\n' || !(probe = json_loads(line, 0, NULL))) {
            skipped++;
            continue;
        }
        json_decref(probe);
        line[len - 1] = '\0';
        r = dl_spool_push_take(s, line);
        line = NULL;
        cap = 0;
        taken++;
    }
    free(line);
    if (taken || skipped)
        nq_log(skipped ? LOG_WARNING : LOG_NOTICE, "delivery log: took over %u event%s from %s%s",
               taken, taken == 1 ? "" : "s", name,
               skipped ? " (skipped a torn or malformed line)" : "");
    return r;
}

/* Adopts name (in s->dir) if nobody holds it. */
static int adopt(struct dl_spool *s, int dirfd, const char *name)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    struct stat st;
    FILE *f;
    int r;

    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        r = errno == EWOULDBLOCK ? 0 : -errno;
        (void) close(fd);
        return r; /* a live worker's */
    }
    if (fstat(fd, &st) < 0 || st.st_nlink == 0) {
        (void) close(fd); /* a sibling took it over while we opened it */
        return 0;
    }
    f = fdopen(fd, "r");
    if (!f) {
        (void) close(fd);
        return -ENOMEM;
    }
    r = adopt_lines(s, f, name);
    /* Ours are on disk before theirs go: a crash now replays twice, which
     * is harmless, rather than never. */
    if (r == 0)
        r = dl_spool_write(s);
    if (r == 0 && fsync(s->fd) < 0)
        r = -errno;
    if (r == 0 && unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
        r = -errno;
    (void) fclose(f);
    return r;
}

/* <queue>.<slot>.<pid>.spool of our queue (not of a queue whose name
 * merely starts with ours and a dot). Ours is not named yet. */
static bool adoptable(const struct dl_spool *s, const char *name)
{
    const char *p = name + strlen(s->prefix);
    int fields = 0;

    if (strncmp(name, s->prefix, strlen(s->prefix)) != 0)
        return false;
    while (fields < 2 && *p >= '0' && *p <= '9') {
        while (*p >= '0' && *p <= '9')
            p++;
        if (*p++ != '.')
            return false;
        fields++;
    }
    return fields == 2 && strcmp(p, "spool") == 0;
}

static int adopt_orphans(struct dl_spool *s)
{
    DIR *d = opendir(s->dir);
    struct dirent *de;
    int r = 0;

    if (!d)
        return -errno;
    while (r == 0 && (de = readdir(d)))
        if (adoptable(s, de->d_name))
            r = adopt(s, dirfd(d), de->d_name);
    (void) closedir(d);
    return r;
}

int dl_spool_open(struct dl_spool *s, const char *state_dir, const char *queue, unsigned slot,
                  struct nq_err *err)
{
    nq_autofree char *tmp = NULL;
    int r;

    *s = (struct dl_spool){ .fd = -1 };
    if (asprintf(&s->dir, "%s/deliverylog", state_dir) < 0 ||
        asprintf(&s->prefix, "%s.", queue) < 0 ||
        asprintf(&s->path, "%s/%s.%u.%ld.spool", s->dir, queue, slot, (long) getpid()) < 0)
        return nq_err_set(err, -ENOMEM, "out of memory");
    /* state_dir too: the packages make it, a test or a first run may not. */
    if ((mkdir(state_dir, 0750) < 0 && errno != EEXIST) ||
        (mkdir(s->dir, 0750) < 0 && errno != EEXIST))
        return nq_err_set(err, -errno, "delivery log: spool directory %s: %s", s->dir,
                          strerror(errno));
    /* Locked under a name nobody adopts, then named: a sibling starting at
     * the same time cannot take our file for an orphan. A file with our
     * final name is a dead process's that had our pid: adopted as any. */
    if (asprintf(&tmp, "%s.new", s->path) < 0)
        return nq_err_set(err, -ENOMEM, "out of memory");
    s->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (s->fd < 0)
        return nq_err_set(err, -errno, "delivery log: spool %s: %s", tmp, strerror(errno));
    if (flock(s->fd, LOCK_EX | LOCK_NB) < 0)
        return nq_err_set(err, -errno, "delivery log: locking %s: %s", tmp, strerror(errno));
    r = adopt_orphans(s);
    if (r < 0)
        return nq_err_set(err, r, "delivery log: taking over spools in %s: %s", s->dir,
                          strerror(-r));
    if (rename(tmp, s->path) < 0)
        return nq_err_set(err, -errno, "delivery log: naming %s: %s", s->path, strerror(errno));
    return 0;
}

void dl_spool_close(struct dl_spool *s)
{
    dl_spool_sync(s);
    if (s->fd >= 0) {
        /* Nothing waiting: leave no file for a successor to look at. */
        if (s->n == 0)
            (void) unlink(s->path);
        (void) close(s->fd);
    }
    for (size_t i = 0; i < s->n; i++)
        free(s->lines[s->head + i]);
    free(s->lines);
    free(s->out);
    free(s->dir);
    free(s->path);
    free(s->prefix);
    *s = (struct dl_spool){ .fd = -1 };
}
