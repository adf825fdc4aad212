/* SPDX-License-Identifier: MIT */
/*
 * The child's first steps after the master's fork() (see proc.h for the list
 * and why), until the entry function starts. The end of the story is
 * _exit(), never exit(): the master's atexit handlers and stdio buffers are
 * not the child's.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "config/config.h"
#include "proc/proc.h"

extern char **environ;

static struct {
    char *start;
    size_t size;
    char **env; /* our copy of the environment, for as long as the process lives */
} title;

void nq_proctitle_init(int argc, char **argv)
{
    char *end;
    size_t n = 0;
    char **env;

    if (argc < 1 || !argv[0])
        return;
    end = argv[0] + strlen(argv[0]) + 1;
    for (int i = 1; i < argc; i++)
        if (argv[i] == end)
            end = argv[i] + strlen(argv[i]) + 1;
    /* The environment usually follows argv: take it over as nginx does, so a
     * short command line still leaves room for "notifyqd: worker email/1". */
    while (environ[n])
        n++;
    env = calloc(n + 1, sizeof(*env));
    for (size_t i = 0; env && i < n; i++) {
        env[i] = strdup(environ[i]);
        if (!env[i])
            env = NULL; /* out of memory at start: a title within argv only */
    }
    if (env) {
        for (size_t i = 0; i < n; i++)
            if (environ[i] == end)
                end = environ[i] + strlen(environ[i]) + 1;
        environ = title.env = env;
    }
    title.start = argv[0];
    title.size = (size_t) (end - argv[0]);
}

uint64_t nq_proc_cpu_ms(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (uint64_t) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 +
           (uint64_t) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
}

/* A child without a queue is the http child: "notifyqd: http". */
static void set_title(const char *queue, unsigned slot)
{
    char comm[16];

    if (title.start && title.size > 1) {
        memset(title.start, 0, title.size);
        if (queue)
            (void) snprintf(title.start, title.size, "notifyqd: worker %s/%u", queue, slot);
        else
            (void) snprintf(title.start, title.size, "notifyqd: http");
    }
    if (queue)
        (void) snprintf(comm, sizeof(comm), "nq-%s/%u", queue, slot);
    else
        (void) snprintf(comm, sizeof(comm), "nq-http");
    (void) prctl(PR_SET_NAME, comm);
}

/* libsystemd keeps the socket it sends journal records on in a static and
 * reuses it after fork; closing it would let the fd number be reused by a
 * worker's own socket and its logs be written there. It is our only
 * AF_UNIX datagram socket (sd_notify closes its own, channels are
 * SOCK_SEQPACKET). */
static int is_journal_socket(int fd)
{
    int domain = 0, type = 0;
    socklen_t len = sizeof(int);

    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
        return 0;
    len = sizeof(int);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return 0;
    return domain == AF_UNIX && type == SOCK_DGRAM;
}

/* Everything the master holds (control listener and connections, the other
 * children's channel ends, this child's master end) goes: if worker B kept
 * A's master end, A would never see EOF when the master dies. */
static void close_inherited_fds(int keep)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;

    if (!d) {
        /* No /proc: close by range; keep stays open, the journal socket goes. */
        (void) close_range(3, (unsigned) keep - 1, 0);
        (void) close_range((unsigned) keep + 1, ~0U, 0);
        return;
    }
    while ((de = readdir(d))) {
        char *e;
        long fd = strtol(de->d_name, &e, 10);

        if (*e || e == de->d_name || fd < 3 || fd == keep || fd == dirfd(d))
            continue;
        if (!is_journal_socket((int) fd))
            (void) close((int) fd);
    }
    (void) closedir(d);
}

static void reset_signals(void)
{
    struct sigaction sa = { .sa_handler = SIG_DFL };

    (void) sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void) sigaction(sig, &sa, NULL); /* fails harmlessly for glibc's reserved ones */
    sa.sa_handler = SIG_IGN;
    (void) sigaction(SIGPIPE, &sa, NULL);
}

static void reseed(void)
{
    unsigned seed;

    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t) sizeof(seed))
        seed = (unsigned) getpid() ^ (unsigned) time(NULL);
    srandom(seed);
    srand48((long) seed);
}

static void child_enter(struct event_base *master_base, const struct nq_child_ctx *ctx)
{
    if (ctx->queue)
        nq_log_set_context("worker", ctx->queue->name, (int) ctx->slot);
    else
        nq_log_set_context("http", NULL, -1);
    /* event_reinit swaps the inherited epoll instance for a fresh one before
     * anything is deleted, so freeing the base cannot edit the master's
     * interest list (pitfall 8). Should it fail, the base is left alone and
     * its fds are closed below like the rest: closing our copies of them
     * leaves the master's epoll set as it is. */
    if (event_reinit(master_base) == 0)
        event_base_free(master_base);
    else
        nq_log(LOG_WARNING, "event_reinit of the master's event base failed, abandoning it");
    reset_signals();
    close_inherited_fds(ctx->fd);

    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != ctx->master_pid)
        (void) raise(SIGTERM); /* stays pending until the child unblocks: it drains */
    (void) unsetenv("NOTIFY_SOCKET");
    reseed();
    set_title(ctx->queue ? ctx->queue->name : NULL, ctx->slot);
}

void nq_child_run(struct event_base *master_base, const struct nq_child_ctx *ctx,
                  nq_child_main_fn child_main)
{
    int r;

    child_enter(master_base, ctx);
    r = child_main(ctx);
    (void) fflush(NULL);
    _exit(r);
}

int nq_token_prefix(char *buf, size_t size, const char *hostname, pid_t pid, uint64_t incarnation)
{
    int n =
        snprintf(buf, size, "%s:%ld:%llx:", hostname, (long) pid, (unsigned long long) incarnation);

    return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

void nq_child_unblock_signals(const struct nq_child_ctx *ctx)
{
    (void) sigprocmask(SIG_SETMASK, &ctx->sigmask, NULL);
}
