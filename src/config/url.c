/* SPDX-License-Identifier: MIT */
/*
 * redis.url: redis://[USER[:PASSWORD]@]HOST[:PORT][/DB] (HOST may be [V6]),
 * the same with rediss:// for TLS, and unix://[USER[:PASSWORD]@]/PATH[?db=DB]. USER and PASSWORD
 * are percent-decoded. Problems are described without quoting the URL, which may carry a password.
 */
/* <>, not "": next to this file, "config.h" is config/config.h. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "config/internal.h"

static int hex(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* s[0..n) percent-decoded into *ret; NULL when empty. */
static int decode(const char *s, size_t n, char **ret, const char **problem)
{
    char *out, *o;

    *ret = NULL;
    if (n == 0)
        return 0;
    /* n + 1 is 0 only for n == SIZE_MAX, which no string has. */
    /* NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI) */
    out = o = malloc(n + 1);
    if (!out)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;

        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        hi = i + 2 < n ? hex(s[i + 1]) : -1;
        lo = hi >= 0 ? hex(s[i + 2]) : -1;
        if (lo < 0 || (hi == 0 && lo == 0)) { /* a NUL would cut the string */
            *o = '\0';
            cfg_free_secret(out);
            *problem = "bad percent-encoding in the user name or password";
            return -EINVAL;
        }
        *o++ = (char) (hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    *ret = out;
    return 0;
}

/* USER[:PASSWORD] in s[0..n). */
static int parse_userinfo(const char *s, size_t n, struct cfg_redis_url *u, const char **problem)
{
    const char *colon = memchr(s, ':', n);
    size_t user_len = colon ? (size_t) (colon - s) : n;
    int r = decode(s, user_len, &u->username, problem);

    if (r < 0 || !colon)
        return r;
    return decode(colon + 1, n - user_len - 1, &u->password, problem);
}

/* Digits only, at most max; -1 when not. */
static long number(const char *s, size_t n, long max)
{
    long v = 0;

    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
        if (v > max)
            return -1;
    }
    return v;
}

static int parse_hostport(const char *s, size_t n, struct cfg_redis_url *u, const char **problem)
{
    const char *end = s + n, *host = s, *host_end, *port = NULL;
    long p = 6379;

    if (n > 0 && s[0] == '[') {
        host = s + 1;
        host_end = memchr(host, ']', n - 1);
        if (!host_end || (host_end + 1 < end && host_end[1] != ':')) {
            *problem = "has a bad [IPv6] host";
            return -EINVAL;
        }
        if (host_end + 1 < end)
            port = host_end + 2;
    } else {
        host_end = memchr(s, ':', n);
        if (host_end)
            port = host_end + 1;
        else
            host_end = end;
    }
    if (host_end == host) {
        *problem = "has no host";
        return -EINVAL;
    }
    if (port && (p = number(port, (size_t) (end - port), 65535)) <= 0) {
        *problem = "port must be 1..65535";
        return -EINVAL;
    }
    u->port = (uint16_t) p;
    u->host = strndup(host, (size_t) (host_end - host));
    return u->host ? 0 : -ENOMEM;
}

static int parse_db(const char *s, size_t n, struct cfg_redis_url *u, const char **problem)
{
    if (n == 0)
        return 0;
    u->db = (int) number(s, n, 15);
    if (u->db < 0) {
        *problem = "database must be 0..15";
        return -EINVAL;
    }
    return 0;
}

/* s is what follows "redis://". */
static int parse_tcp(const char *s, struct cfg_redis_url *u, const char **problem)
{
    size_t auth_len = strcspn(s, "/?#");
    const char *auth = s, *at = NULL, *rest = s + auth_len;
    int r = 0;

    for (const char *p = auth; p < rest; p++)
        if (*p == '@')
            at = p;
    if (at)
        r = parse_userinfo(auth, (size_t) (at - auth), u, problem);
    if (r >= 0)
        r = parse_hostport(at ? at + 1 : auth, (size_t) (rest - (at ? at + 1 : auth)), u, problem);
    if (r < 0)
        return r;
    if (strpbrk(rest, "?#")) {
        *problem = "query parameters are not supported";
        return -EINVAL;
    }
    return *rest == '/' ? parse_db(rest + 1, strlen(rest + 1), u, problem) : 0;
}

/* s is what follows "unix://". */
static int parse_unix(const char *s, struct cfg_redis_url *u, const char **problem)
{
    const char *path = strchr(s, '/'), *query, *at = NULL;
    size_t path_len;
    int r = 0;

    for (const char *p = s; path && p < path; p++)
        if (*p == '@')
            at = p;
    if (!path || (path != s && at != path - 1)) {
        *problem = "must be unix:///absolute/path";
        return -EINVAL;
    }
    if (at)
        r = parse_userinfo(s, (size_t) (at - s), u, problem);
    if (r < 0)
        return r;
    query = strchr(path, '?');
    path_len = query ? (size_t) (query - path) : strlen(path);
    if (path_len >= sizeof(((struct sockaddr_un *) NULL)->sun_path)) {
        *problem = "socket path must be shorter than 108 bytes";
        return -EINVAL;
    }
    if (query && strncmp(query, "?db=", 4) != 0) {
        *problem = "the only query parameter supported is ?db=N";
        return -EINVAL;
    }
    if (query && (r = parse_db(query + 4, strlen(query + 4), u, problem)) < 0)
        return r;
    u->socket = strndup(path, path_len);
    return u->socket ? 0 : -ENOMEM;
}

int cfg_redis_url_parse(const char *url, struct cfg_redis_url *ret, const char **ret_problem)
{
    struct cfg_redis_url u = { .db = -1 };
    const char *problem = NULL;
    int r;

    if (strncmp(url, "redis://", 8) == 0) {
        r = parse_tcp(url + 8, &u, &problem);
    } else if (strncmp(url, "rediss://", 9) == 0) {
        u.tls = true;
        r = parse_tcp(url + 9, &u, &problem);
    } else if (strncmp(url, "unix://", 7) == 0) {
        r = parse_unix(url + 7, &u, &problem);
    } else {
        problem = "must start with redis://, rediss:// or unix://";
        r = -EINVAL;
    }
    if (r < 0) {
        cfg_redis_url_done(&u);
        if (r == -EINVAL)
            *ret_problem = problem;
        return r;
    }
    *ret = u;
    return 0;
}

void cfg_redis_url_done(struct cfg_redis_url *u)
{
    free(u->host);
    free(u->socket);
    free(u->username);
    cfg_free_secret(u->password);
    *u = (struct cfg_redis_url){ .db = -1 };
}
