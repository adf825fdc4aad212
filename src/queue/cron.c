/* SPDX-License-Identifier: MIT */
/*
 * Cron next times, matching cron-parser 5.10.3 + luxon 3.7.2 as bullmq 6.7.0
 * calls them (see cron.h). Three parts:
 *
 * 1. Time zones. We read TZif files ourselves (RFC 8536, with the POSIX TZ
 *    footer for instants past the table) rather than switch $TZ around
 *    localtime_r/mktime: no process-global state, no tzset() per call, and
 *    all luxon needs from a zone is "UTC offset at instant t" anyway. Cost:
 *    one open+read of a file of at most a few KiB per computation.
 *
 * 2. Patterns, parsed with cron-parser's quirks kept, because a pattern it
 *    accepts must give the same times here and one it rejects must fail here
 *    too: names are replaced textually by any three letters ("JANFEB" is
 *    month 12), `a-b-c` is `a-b`, bounds are read as JavaScript's parseInt
 *    reads them ("1-5L" is 1-5 plus L), a day-of-week range ending on 7 also
 *    yields 0 when the step lands on 7, duplicates are errors ("0,7" in day of
 *    week), a day of month that a single month never has is an error unless
 *    the day of week is restricted.
 *
 * 3. The search. cron-parser does not compute "the first matching local time
 *    after t": it walks from t in steps (next month, day, hour, minute,
 *    second) on a luxon DateTime, and its DST behaviour is a property of that
 *    walk: luxon resolves a local time from a guess offset (the current one),
 *    so a time set inside a gap moves forward by the gap and a time set inside
 *    an overlap stays on the side it came from; a step of an hour that skips
 *    wall-clock hours remembers the skipped ones so a scheduled skipped hour
 *    fires at the landing hour; a step that repeats a wall-clock hour skips
 *    the repeat (both only when the hour field is not all 24 hours); on a day
 *    whose UTC offset changes, hours advance one at a time instead of being
 *    set. The walk gives up after 10000 steps: a pattern that never matches
 *    (a weekday "1#1.5") or whose next match is too many steps away has no
 *    next time, and bullmq then schedules nothing.
 *    We reproduce the walk's rules, step for step, on our own model of a
 *    zoned time (struct moment), which is what makes the results equal to
 *    the millisecond, DST days included.
 *
 * Deliberately not reproduced: `H` (random in bullmq's use); Unicode
 * whitespace between fields (ASCII only here); zones that ICU knows but
 * tzdata has no file for, except ICU's three-letter legacy ids (SystemV/...
 * fail); zone data differences between Node's bundled ICU and Debian's
 * tzdata; luxon's fractional-minute offsets before 1900 (we use whole
 * seconds); exotic $TZ values for the process zone (POSIX rule strings, paths:
 * UTC here, as ICU mostly does).
 */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/err.h"
#include "queue/cron.h"

#define ZONEINFO_DIR "/usr/share/zoneinfo"
#define LOCALTIME_FILE "/etc/localtime"
#define TZIF_MAX_BYTES ((off_t) 1024 * 1024)
#define TZ_NAME_MAX 255
#define CRON_MAX_LEN 1024 /* cron-parser's limit on a pattern */
#define WALK_LIMIT 10000  /* cron-parser's loop limit */
#define JS_MAX_DATE_MS 8640000000000000LL

/* ---- calendar ---------------------------------------------------------- */

struct civil {
    int64_t y;
    int mo, d, h, mi, s, ms;
    int wday; /* 0 = Sunday */
};

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;

    if (a % b != 0 && ((a < 0) != (b < 0)))
        q--;
    return q;
}

static int64_t floor_mod(int64_t a, int64_t b)
{
    return a - floor_div(a, b) * b;
}

static bool is_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int mo)
{
    static const int dim[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    return mo == 2 && is_leap(y) ? 29 : dim[mo - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's method). */
static int64_t days_from_civil(int64_t y, int mo, int d)
{
    y -= mo <= 2;
    int64_t era = floor_div(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *mo, int *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;

    *d = (int) (doy - (153 * mp + 2) / 5 + 1);
    *mo = (int) (mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*mo <= 2);
}

/* Milliseconds of a wall-clock reading taken as UTC, overflowing months and
 * days into the next ones as JavaScript's Date.UTC does. */
static int64_t civil_to_ms(const struct civil *c)
{
    int64_t y = c->y + floor_div(c->mo - 1, 12);
    int mo = (int) floor_mod(c->mo - 1, 12) + 1;
    int64_t days = days_from_civil(y, mo, 1) + c->d - 1;

    return ((days * 24 + c->h) * 60 + c->mi) * 60000 + (int64_t) c->s * 1000 + c->ms;
}

static void ms_to_civil(int64_t ms, struct civil *c)
{
    int64_t days = floor_div(ms, 86400000);
    int64_t rem = ms - days * 86400000;

    civil_from_days(days, &c->y, &c->mo, &c->d);
    c->h = (int) (rem / 3600000);
    c->mi = (int) (rem / 60000 % 60);
    c->s = (int) (rem / 1000 % 60);
    c->ms = (int) (rem % 1000);
    c->wday = (int) floor_mod(days + 4, 7);
}

/* ---- time zones -------------------------------------------------------- */

/* One transition rule of a POSIX TZ string: Jn, n or Mm.w.d, then a time. */
struct tz_rule {
    char kind; /* 'J' (1..365, no Feb 29), 'D' (0..365), 'M' */
    int n, m, w, d;
    int32_t secs;
};

struct posix_tz {
    int32_t std_off, dst_off; /* seconds east of UTC */
    bool has_dst;
    struct tz_rule start, end;
};

struct zone {
    int64_t *at;   /* transition instants, seconds, ascending */
    uint8_t *type; /* local time type from each transition on */
    size_t n;
    int32_t utoff[256];
    size_t ntypes;
    bool has_tail; /* the TZif footer, for instants past the last transition */
    struct posix_tz tail;
};

static void zone_done(struct zone *z)
{
    free(z->at);
    free(z->type);
    *z = (struct zone){ 0 };
}

static void zone_fixed(struct zone *z, int32_t off)
{
    *z = (struct zone){ .ntypes = 1 };
    z->utoff[0] = off;
}

/* Local midnight (as seconds of a UTC reading) of the rule's day in year y,
 * plus the rule's time of day. */
static int64_t rule_local_secs(const struct tz_rule *r, int64_t y)
{
    int64_t days;

    if (r->kind == 'M') {
        int first = (int) floor_mod(days_from_civil(y, r->m, 1) + 4, 7);
        int day = 1 + (r->d - first + 7) % 7 + (r->w - 1) * 7;

        while (day > days_in_month(y, r->m))
            day -= 7;
        days = days_from_civil(y, r->m, day);
    } else {
        int yday = r->kind == 'J' ? r->n - 1 + (is_leap(y) && r->n >= 60) : r->n;

        days = days_from_civil(y, 1, 1) + yday;
    }
    return days * 86400 + r->secs;
}

static int32_t posix_offset(const struct posix_tz *p, int64_t t)
{
    int64_t y;
    int mo, d;

    if (!p->has_dst)
        return p->std_off;
    civil_from_days(floor_div(t + p->std_off, 86400), &y, &mo, &d);
    int64_t start = rule_local_secs(&p->start, y) - p->std_off;
    int64_t end = rule_local_secs(&p->end, y) - p->dst_off;
    bool dst = start < end ? t >= start && t < end : !(t >= end && t < start);

    return dst ? p->dst_off : p->std_off;
}

/* Seconds east of UTC at ms, as luxon's zone.offset(ms) (which looks at the
 * whole second). */
static int32_t zone_offset(const struct zone *z, int64_t ms)
{
    int64_t t = floor_div(ms, 1000);

    if (z->n == 0 || t < z->at[0])
        return z->n == 0 && z->has_tail ? posix_offset(&z->tail, t) : z->utoff[0];
    if (t >= z->at[z->n - 1] && z->has_tail)
        return posix_offset(&z->tail, t);

    size_t lo = 0, hi = z->n; /* at[lo] <= t < at[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->at[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return z->utoff[z->type[lo]];
}

/* [+-]h[h[h]][:mm[:ss]] into seconds; NULL when malformed. */
static const char *posix_hms(const char *s, int max_hours, int32_t *ret)
{
    int sign = 1, h = 0, m = 0, sec = 0, nd = 0;

    if (*s == '+' || *s == '-')
        sign = *s++ == '-' ? -1 : 1;
    while (isdigit((unsigned char) *s) && nd < 3) {
        h = h * 10 + (*s++ - '0');
        nd++;
    }
    if (nd == 0 || h > max_hours)
        return NULL;
    for (int part = 0; part < 2 && *s == ':'; part++) {
        if (!isdigit((unsigned char) s[1]) || !isdigit((unsigned char) s[2]))
            return NULL;
        *(part == 0 ? &m : &sec) = (s[1] - '0') * 10 + (s[2] - '0');
        s += 3;
    }
    *ret = sign * (h * 3600 + m * 60 + sec);
    return s;
}

static const char *posix_name(const char *s)
{
    const char *p = s;

    if (*s == '<') {
        p = strchr(s, '>');
        return p ? p + 1 : NULL;
    }
    while (isalpha((unsigned char) *p))
        p++;
    return p - s >= 3 ? p : NULL;
}

static const char *posix_num(const char *s, int *ret)
{
    char *end;
    long v;

    if (!isdigit((unsigned char) *s))
        return NULL;
    v = strtol(s, &end, 10);
    if (v > 400)
        return NULL;
    *ret = (int) v;
    return end;
}

static const char *posix_rule(const char *s, struct tz_rule *r)
{
    *r = (struct tz_rule){ .secs = 7200 };
    if (*s == 'M') {
        r->kind = 'M';
        if (!(s = posix_num(s + 1, &r->m)) || *s != '.' || !(s = posix_num(s + 1, &r->w)) ||
            *s != '.' || !(s = posix_num(s + 1, &r->d)))
            return NULL;
        if (r->m < 1 || r->m > 12 || r->w < 1 || r->w > 5 || r->d > 6)
            return NULL;
    } else {
        r->kind = *s == 'J' ? 'J' : 'D';
        if (!(s = posix_num(s + (*s == 'J'), &r->n)) || r->n > 365 || (r->kind == 'J' && r->n < 1))
            return NULL;
    }
    if (*s == '/')
        s = posix_hms(s + 1, 167, &r->secs);
    return s;
}

/* A TZif footer such as "CET-1CEST,M3.5.0,M10.5.0/3"; POSIX offsets count
 * west, ours east. */
static int posix_parse(const char *s, struct posix_tz *p)
{
    int32_t off;

    *p = (struct posix_tz){ 0 };
    if (!(s = posix_name(s)) || !(s = posix_hms(s, 24, &off)))
        return -EINVAL;
    p->std_off = p->dst_off = -off;
    if (!*s)
        return 0;
    if (!(s = posix_name(s)))
        return -EINVAL;
    p->has_dst = true;
    p->dst_off = p->std_off + 3600;
    if (*s && *s != ',') {
        if (!(s = posix_hms(s, 24, &off)))
            return -EINVAL;
        p->dst_off = -off;
    }
    if (!*s) /* no rule: the US one, as glibc assumes */
        s = ",M3.2.0,M11.1.0";
    if (*s != ',' || !(s = posix_rule(s + 1, &p->start)) || *s != ',' ||
        !(s = posix_rule(s + 1, &p->end)) || *s)
        return -EINVAL;
    return 0;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t) ((uint64_t) be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    uint32_t isut, isstd, leap, time, type, chars;
};

static struct tzif_counts tzif_header(const unsigned char *p)
{
    return (struct tzif_counts){ be32(p + 20), be32(p + 24), be32(p + 28),
                                 be32(p + 32), be32(p + 36), be32(p + 40) };
}

static uint64_t tzif_block_size(const struct tzif_counts *c, unsigned tsize)
{
    return (uint64_t) c->time * (tsize + 1) + (uint64_t) c->type * 6 + c->chars +
           (uint64_t) c->leap * (tsize + 4) + c->isstd + c->isut;
}

static int tzif_footer(const unsigned char *p, const unsigned char *end, struct zone *z)
{
    char buf[128];
    const unsigned char *nl;

    if (p >= end || *p != '\n')
        return 0;
    nl = memchr(p + 1, '\n', (size_t) (end - p - 1));
    if (!nl || nl == p + 1)
        return 0;
    if ((size_t) (nl - p - 1) >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, p + 1, (size_t) (nl - p - 1));
    buf[nl - p - 1] = '\0';
    z->has_tail = true;
    return posix_parse(buf, &z->tail);
}

/* Fills z from a TZif file image (version 1 data, or the 64-bit block of
 * version 2+ and its footer). */
static int tzif_parse(const unsigned char *buf, size_t len, struct zone *z)
{
    const unsigned char *p = buf, *end = buf + len;
    unsigned tsize = 4;

    if (len < 44 || memcmp(buf, "TZif", 4) != 0)
        return -EINVAL;
    struct tzif_counts c = tzif_header(p);
    if (buf[4] >= '2') {
        uint64_t skip = 44 + tzif_block_size(&c, 4);
        if (skip + 44 > len || memcmp(buf + skip, "TZif", 4) != 0)
            return -EINVAL;
        p = buf + skip;
        c = tzif_header(p);
        tsize = 8;
    }
    p += 44;
    if (c.type == 0 || c.type > 256 || tzif_block_size(&c, tsize) > (uint64_t) (end - p))
        return -EINVAL;
    *z = (struct zone){ .n = c.time, .ntypes = c.type };
    if (c.time > 0) {
        z->at = calloc(c.time, sizeof(*z->at));
        z->type = calloc(c.time, 1);
        if (!z->at || !z->type)
            return -ENOMEM;
    }
    for (uint32_t i = 0; i < c.time; i++, p += tsize)
        z->at[i] = tsize == 8 ? be64(p) : (int32_t) be32(p);
    for (uint32_t i = 0; i < c.time; i++, p++) {
        if (*p >= c.type)
            return -EINVAL;
        z->type[i] = *p;
    }
    for (uint32_t i = 0; i < c.type; i++, p += 6)
        z->utoff[i] = (int32_t) be32(p);
    p += c.chars + (uint64_t) c.leap * (tsize + 4) + c.isstd + c.isut;
    return tsize == 8 ? tzif_footer(p, end, z) : 0;
}

/* The whole of a regular file of at most TZIF_MAX_BYTES. */
static int read_all(int fd, unsigned char **ret, size_t *ret_len)
{
    nq_autofree unsigned char *buf = NULL;
    struct stat st;
    size_t len = 0;

    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    if (!S_ISREG(st.st_mode) || st.st_size > TZIF_MAX_BYTES)
        return -EINVAL;
    buf = malloc((size_t) st.st_size + 1);
    if (!buf)
        return -ENOMEM;
    while (len < (size_t) st.st_size) {
        ssize_t r = read(fd, buf + len, (size_t) st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        len += (size_t) r;
    }
    *ret = NQ_TAKE_PTR(buf);
    *ret_len = len;
    return 0;
}

static int zone_from_fd(int fd, struct zone *z)
{
    nq_autofree unsigned char *buf = NULL;
    size_t len = 0;
    int r = read_all(fd, &buf, &len);

    if (r < 0)
        return r;
    r = tzif_parse(buf, len, z);
    if (r < 0)
        zone_done(z);
    return r;
}

/* openat() of one path component, falling back to a letter-case-blind match
 * because ICU (and so bullmq) takes "europe/berlin" for "Europe/Berlin". */
static int open_component(int dirfd, const char *name, bool nocase)
{
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);

    if (fd >= 0 || errno != ENOENT || !nocase)
        return fd >= 0 ? fd : -errno;

    int dup_fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
        return -errno;
    DIR *d = fdopendir(dup_fd);
    if (!d) {
        (void) close(dup_fd);
        return -errno;
    }
    fd = -ENOENT;
    for (struct dirent *e; (e = readdir(d));) {
        if (strcasecmp(e->d_name, name) == 0) {
            fd = openat(dirfd, e->d_name, O_RDONLY | O_CLOEXEC);
            fd = fd >= 0 ? fd : -errno;
            break;
        }
    }
    (void) closedir(d);
    return fd;
}

/* A name ICU would accept and that stays inside the zoneinfo directory:
 * letters, digits, "._+-", components neither empty nor "." / "..". */
static bool zone_name_ok(const char *name)
{
    static const char *const not_zones[] = { "Factory", "localtime", "posixrules" };
    size_t len = strlen(name);

    if (len == 0 || len > TZ_NAME_MAX || name[0] == '/' || name[len - 1] == '/')
        return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char) *p) && !strchr("._+-/", *p))
            return false;
    if (strstr(name, "//") || strncasecmp(name, "posix/", 6) == 0 ||
        strncasecmp(name, "right/", 6) == 0)
        return false;
    for (const char *c = name; c; c = strchr(c, '/') ? strchr(c, '/') + 1 : NULL)
        if (c[0] == '.' && (c[1] == '/' || !c[1] || (c[1] == '.' && (c[2] == '/' || !c[2]))))
            return false;
    for (size_t i = 0; i < NQ_ELEMENTSOF(not_zones); i++)
        if (strcasecmp(name, not_zones[i]) == 0)
            return false;
    return true;
}

static int zone_load_named(const char *name, bool nocase, struct zone *z)
{
    char path[TZ_NAME_MAX + 1];
    nq_autoclose int dirfd = -1;
    int r;

    if (!zone_name_ok(name))
        return -ENOENT;
    (void) snprintf(path, sizeof(path), "%s", name);
    dirfd = open(ZONEINFO_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dirfd < 0)
        return -errno;
    for (char *comp = path, *slash;; comp = slash + 1) {
        slash = strchr(comp, '/');
        if (slash)
            *slash = '\0';
        r = open_component(dirfd, comp, nocase);
        if (r < 0)
            return r;
        (void) close(dirfd);
        dirfd = r;
        if (!slash)
            break;
    }
    r = zone_from_fd(dirfd, z);
    return r == -EISDIR ? -ENOENT : r;
}

/* ICU's legacy ids that tzdata has no file for, and their ICU zones. */
static const struct {
    const char *id, *zone;
} icu_legacy[] = {
    { "ACT", "Australia/Darwin" },
    { "AET", "Australia/Sydney" },
    { "AGT", "America/Argentina/Buenos_Aires" },
    { "ART", "Africa/Cairo" },
    { "AST", "America/Anchorage" },
    { "BET", "America/Sao_Paulo" },
    { "BST", "Asia/Dhaka" },
    { "CAT", "Africa/Maputo" },
    { "CNT", "America/St_Johns" },
    { "CST", "America/Chicago" },
    { "CTT", "Asia/Shanghai" },
    { "EAT", "Africa/Nairobi" },
    { "ECT", "Europe/Paris" },
    { "IET", "America/Indiana/Indianapolis" },
    { "IST", "Asia/Kolkata" },
    { "JST", "Asia/Tokyo" },
    { "MIT", "Pacific/Apia" },
    { "NET", "Asia/Yerevan" },
    { "NST", "Pacific/Auckland" },
    { "PLT", "Asia/Karachi" },
    { "PNT", "America/Phoenix" },
    { "PRT", "America/Puerto_Rico" },
    { "PST", "America/Los_Angeles" },
    { "SST", "Pacific/Guadalcanal" },
    { "VST", "Asia/Ho_Chi_Minh" },
};

/* luxon's "UTC", "UTC+5", "utc-03:30" (the sign also applies to minutes). */
static bool parse_utc_offset(const char *s, int32_t *ret)
{
    int h = 0, m = 0, sign;

    if (strncasecmp(s, "utc", 3) != 0)
        return false;
    s += 3;
    if (!*s) {
        *ret = 0;
        return true;
    }
    if (*s != '+' && *s != '-')
        return false;
    sign = *s++ == '-' ? -1 : 1;
    if (!isdigit((unsigned char) s[0]))
        return false;
    h = *s++ - '0';
    if (isdigit((unsigned char) *s))
        h = h * 10 + (*s++ - '0');
    if (*s == ':') {
        if (!isdigit((unsigned char) s[1]) || !isdigit((unsigned char) s[2]))
            return false;
        m = (s[1] - '0') * 10 + (s[2] - '0');
        s += 3;
    }
    if (*s)
        return false;
    *ret = sign * (h * 60 + m) * 60;
    return true;
}

/* The process's zone as Node's ICU finds it: $TZ (a zone name, exact case,
 * a leading ':' ignored) or /etc/localtime; anything else is UTC. */
static int zone_load_local(struct zone *z)
{
    const char *tz = getenv("TZ");
    int r;

    if (tz) {
        tz += *tz == ':';
        r = zone_load_named(tz, false, z);
    } else {
        nq_autoclose int fd = open(LOCALTIME_FILE, O_RDONLY | O_CLOEXEC);
        r = fd < 0 ? -errno : zone_from_fd(fd, z);
    }
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        zone_fixed(z, 0);
    return 0;
}

/* tz as luxon's normalizeZone() reads it; -EINVAL for a zone luxon would call
 * invalid. */
static int zone_load(const char *tz, struct zone *z, struct nq_err *err)
{
    int32_t off;
    int r;

    if (!tz || strcasecmp(tz, "local") == 0 || strcasecmp(tz, "system") == 0 ||
        strcasecmp(tz, "default") == 0)
        return zone_load_local(z);
    if (strcasecmp(tz, "gmt") == 0) {
        zone_fixed(z, 0);
        return 0;
    }
    if (parse_utc_offset(tz, &off)) {
        zone_fixed(z, off);
        return 0;
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(icu_legacy); i++)
        if (strcasecmp(tz, icu_legacy[i].id) == 0) {
            tz = icu_legacy[i].zone;
            break;
        }
    r = zone_load_named(tz, true, z);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return nq_err_set(err, -EINVAL, "unknown time zone '%s'", tz);
    return 0;
}

/* ---- patterns ---------------------------------------------------------- */

struct nq_cron {
    uint64_t sec, min;
    uint32_t hour, dom;    /* dom: bits 1..31 */
    uint16_t month;        /* bits 1..12 */
    uint8_t dow;           /* bits 0..7: a range may keep 7, which never matches */
    uint8_t dow_last;      /* weekdays the "last <weekday>" forms name */
    bool dom_any, dow_any; /* written as * or ? */
    bool dom_last;         /* L in day of month: also the month's last day */
    bool dow_has_l;        /* L in day of week: "last <weekday>" forms apply */
    double nth;            /* d#n: n; 0 = none (cron-parser compares n as a number) */
    int hour_count;
};

enum { F_SEC, F_MIN, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const struct field_def {
    const char *name;
    int min, max;
    bool names, last;
} field_defs[F_COUNT] = {
    [F_SEC] = { "second", 0, 59, false, false }, [F_MIN] = { "minute", 0, 59, false, false },
    [F_HOUR] = { "hour", 0, 23, false, false },  [F_DOM] = { "day of month", 1, 31, false, true },
    [F_MONTH] = { "month", 1, 12, true, false }, [F_DOW] = { "day of week", 0, 7, true, true },
};

/* One field while it is parsed. */
struct field {
    const struct field_def *def;
    uint64_t bits;      /* numeric values */
    uint64_t lforms[7]; /* the L forms seen ("L", "dL", "ddL"), to find repeats */
    uint8_t last_days;  /* day of week: weekdays of its dL forms */
    const char *pattern;
    struct nq_err *err;
};

static int field_error(const struct field *f, const char *what)
{
    return nq_err_set(f->err, -EINVAL, "cron pattern '%s': %s field: %s", f->pattern, f->def->name,
                      what);
}

/* JavaScript's parseInt(s, 10) on our restricted alphabet: an optional sign,
 * then digits up to the first non-digit; none = NaN (false). Saturates. */
static bool js_parse_int(const char *s, const char *end, long *ret)
{
    long v = 0, sign = 1;
    bool any = false;

    if (s < end && (*s == '-' || *s == '+'))
        sign = *s++ == '-' ? -1 : 1;
    for (; s < end && *s >= '0' && *s <= '9'; s++, any = true)
        v = v > 100000 ? v : v * 10 + (*s - '0');
    *ret = sign * v;
    return any;
}

/* JavaScript's Number(s) for the n of d#n: a decimal literal or 0x/0o/0b
 * integer, "" = 0; NaN and infinities are false. */
static bool js_number(const char *s, double *ret)
{
    static const char *const prefixes[] = { "0x", "0X", "0o", "0O", "0b", "0B" };
    static const int bases[] = { 16, 16, 8, 8, 2, 2 };
    char *end;

    if (!*s) {
        *ret = 0;
        return true;
    }
    for (size_t i = 0; i < NQ_ELEMENTSOF(prefixes); i++) {
        if (strncmp(s, prefixes[i], 2) == 0 && s[2]) {
            unsigned long long v = strtoull(s + 2, &end, bases[i]);
            *ret = (double) v;
            return !*end && isalnum((unsigned char) s[2]);
        }
    }
    if (strspn(s, "0123456789.eE+-") != strlen(s))
        return false;
    *ret = strtod(s, &end);
    return !*end && (isdigit((unsigned char) *s) || *s == '.' || *s == '+' || *s == '-');
}

static int field_add(struct field *f, long v)
{
    if (f->bits & (UINT64_C(1) << v))
        return field_error(f, "duplicate value");
    f->bits |= UINT64_C(1) << v;
    return 0;
}

/* a-b or a-b/step (pieces after the second '-' are ignored, as cron-parser
 * ignores them); a day-of-week range ending on 7 also yields 0 when the step
 * lands on it. */
static int field_range(struct field *f, const char *s, const char *end, long step, bool has_step)
{
    const char *dash = memchr(s, '-', (size_t) (end - s));
    const char *dash2 = memchr(dash + 1, '-', (size_t) (end - dash - 1));
    long a, b;
    uint64_t set = 0;

    if (!js_parse_int(s, dash, &a) || !js_parse_int(dash + 1, dash2 ? dash2 : end, &b) ||
        a < f->def->min || b > f->def->max)
        return field_error(f, "range out of bounds");
    if (a > b)
        return field_error(f, "range goes backwards");
    if (!has_step || step <= 0)
        return field_error(f, "step must be a positive number");
    if (f->def == &field_defs[F_DOW] && b % 7 == 0 && (b - a) % step == 0)
        set |= 1;
    for (long i = a; i <= b; i += step)
        set |= UINT64_C(1) << i;
    if (f->bits & set)
        return field_error(f, "duplicate value");
    f->bits |= set;
    return 0;
}

/* "L", "dL", "ddL" in day of month or week. */
static int field_lform(struct field *f, const char *s, const char *end)
{
    size_t len = (size_t) (end - s);
    unsigned key = 0;

    if (len > 3 || end[-1] != 'L' || strspn(s, "0123456789") != len - 1)
        return field_error(f, "L must be alone or follow one or two digits");
    if (f->def == &field_defs[F_DOW] && len == 1)
        return field_error(f, "L needs a weekday before it");
    /* s[0..len - 1) are digits (the strspn above), which the analyzer does
     * not follow into the buffer field_parse filled. */
    for (const char *p = s; p < end - 1; p++)
        /* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult) */
        key = key * 10 + (unsigned) (*p - '0');
    key += (unsigned) len * 100;
    if (f->lforms[key / 64] & (UINT64_C(1) << (key % 64)))
        return field_error(f, "duplicate value");
    f->lforms[key / 64] |= UINT64_C(1) << (key % 64);
    if (len > 1)
        f->last_days |= (uint8_t) (1u << ((s[0] - '0') % 7));
    return 0;
}

static int field_single(struct field *f, const char *s, const char *end)
{
    long v;

    if (memchr(s, 'L', (size_t) (end - s)))
        return field_lform(f, s, end);
    (void) js_parse_int(s, end, &v); /* only digits can be left here */
    if (v < f->def->min || v > f->def->max)
        return field_error(f, "value out of bounds");
    return field_add(f, f->def == &field_defs[F_DOW] ? v % 7 : v);
}

static int field_atom(struct field *f, const char *s, const char *end)
{
    const char *slash = memchr(s, '/', (size_t) (end - s));
    char buf[CRON_MAX_LEN * 5 + 8];
    long step;

    if (s == end)
        return field_error(f, "empty list item");
    if (!slash)
        return memchr(s, '-', (size_t) (end - s)) ? field_range(f, s, end, 1, true)
                                                  : field_single(f, s, end);
    if (memchr(slash + 1, '/', (size_t) (end - slash - 1)))
        return field_error(f, "more than one '/'");
    bool has_step = js_parse_int(slash + 1, end, &step);
    if (memchr(s, '-', (size_t) (slash - s)))
        return field_range(f, s, slash, step, has_step);
    /* "a/step" is "a-max/step" */
    int n = snprintf(buf, sizeof(buf), "%.*s-%d", (int) (slash - s), s, f->def->max);
    return field_range(f, buf, buf + n, step, has_step);
}

/* Month and weekday names: any three letters in a row are a name, replaced
 * by its number (JAN..DEC = 1..12, SUN..SAT = 0..6, in either field). */
static int replace_names(struct field *f, const char *in, char *out)
{
    static const char *const names[] = { "jan", "feb", "mar", "apr", "may", "jun", "jul",
                                         "aug", "sep", "oct", "nov", "dec", "sun", "mon",
                                         "tue", "wed", "thu", "fri", "sat" };

    while (*in) {
        if (!isalpha((unsigned char) in[0]) || !isalpha((unsigned char) in[1]) ||
            !isalpha((unsigned char) in[2])) {
            *out++ = *in++;
            continue;
        }
        size_t i = 0;
        while (i < NQ_ELEMENTSOF(names) && strncasecmp(in, names[i], 3) != 0)
            i++;
        if (i == NQ_ELEMENTSOF(names))
            return field_error(f, "unknown name");
        out += sprintf(out, "%zu", i < 12 ? i + 1 : i - 12);
        in += 3;
    }
    *out = '\0';
    return 0;
}

/* '*' and '?' become "min-max" in place of the character. */
static void expand_wildcards(const struct field_def *def, const char *in, char *out)
{
    for (; *in; in++) {
        if (*in == '*' || *in == '?')
            out += sprintf(out, "%d-%d", def->min, def->max);
        else
            *out++ = *in;
    }
    *out = '\0';
}

/* Parses raw[0..len). */
static int field_parse(struct field *f, const char *raw, size_t len)
{
    nq_autofree char *text = strndup(raw, len);
    nq_autofree char *named = malloc(len + 1);
    nq_autofree char *expanded = malloc(len * 5 + 1);
    const char *allowed = f->def->last ? "0123456789,-/*?L" : "0123456789,-/*?";
    int r;

    if (!text || !named || !expanded)
        return -ENOMEM;
    if (f->def->names) {
        r = replace_names(f, text, named);
        if (r < 0)
            return r;
    } else {
        strcpy(named, text);
    }
    if (strchr(named, 'H'))
        return field_error(f, "H (hashed values) is not supported");
    if (!*named || strspn(named, allowed) != strlen(named))
        return field_error(f, "invalid character");
    expand_wildcards(f->def, named, expanded);
    for (const char *s = expanded;;) {
        const char *comma = strchr(s, ',');
        const char *end = comma ? comma : s + strlen(s);
        r = field_atom(f, s, end);
        if (r < 0)
            return r;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

/* d#n in day of week: reads n (no list, range or step allowed with it) and
 * the length of the weekday part before it. */
static int split_nth(struct field *f, const char *raw, double *nth, size_t *ret_len)
{
    const char *hash = strchr(raw, '#');

    *nth = 0;
    *ret_len = hash ? (size_t) (hash - raw) : strlen(raw);
    if (!hash)
        return 0;
    if (strpbrk(raw, ",-/"))
        return field_error(f, "# cannot be used with a list, range or step");
    if (strchr(hash + 1, '#') || !js_number(hash + 1, nth) || *nth < 1 || *nth > 5)
        return field_error(f, "# must be followed by 1..5");
    return 0;
}

static const struct {
    const char *name, *pattern;
} predefined[] = {
    { "@yearly", "0 0 0 1 1 *" },     { "@annually", "0 0 0 1 1 *" },
    { "@monthly", "0 0 0 1 * *" },    { "@weekly", "0 0 0 * * 0" },
    { "@daily", "0 0 0 * * *" },      { "@hourly", "0 0 * * * *" },
    { "@minutely", "0 * * * * *" },   { "@secondly", "* * * * * *" },
    { "@weekdays", "0 0 0 * * 1-5" }, { "@weekends", "0 0 0 * * 0,6" },
};

/* Splits the pattern into six fields, missing leading ones defaulted
 * ("0 * * * * *" right-aligned), into copy (which the fields point into). */
static int split_fields(const char *pattern, char *copy, const char *raw[F_COUNT],
                        struct nq_err *err)
{
    static const char *const defaults[F_COUNT] = { "0", "*", "*", "*", "*", "*" };
    static const char ws[] = " \t\n\v\f\r";
    char *tok[F_COUNT + 1];
    int n = 0;

    for (char *p = copy + strspn(copy, ws); *p && n <= F_COUNT; p += strspn(p, ws)) {
        tok[n++] = p;
        p += strcspn(p, ws);
        if (*p)
            *p++ = '\0';
    }
    if (n > F_COUNT)
        return nq_err_set(err, -EINVAL, "cron pattern '%s': more than 6 fields", pattern);
    if (n == 0) /* all blanks: one empty field */
        tok[n++] = copy + strlen(copy);
    for (int i = 0; i < F_COUNT; i++)
        raw[i] = i < F_COUNT - n ? defaults[i] : tok[i - (F_COUNT - n)];
    return 0;
}

/* cron-parser rejects a day of month that a single month never has, unless
 * L or a restricted day of week can still match. */
static int check_month_days(const struct nq_cron *c, const char *pattern, struct nq_err *err)
{
    int month = __builtin_ctz(c->month);

    if (__builtin_popcount(c->month) != 1 || c->dom_last || !c->dow_any)
        return 0;
    if (__builtin_ctz(c->dom) <= (month == 2 ? 29 : days_in_month(2001, month)))
        return 0;
    return nq_err_set(err, -EINVAL, "cron pattern '%s': month %d never has day %d", pattern, month,
                      __builtin_ctz(c->dom));
}

static int cron_build(const char *pattern, const char *raw[F_COUNT], struct nq_cron *c,
                      struct nq_err *err)
{
    struct field f[F_COUNT];
    size_t dow_len;
    int r;

    for (int i = 0; i < F_COUNT; i++)
        f[i] = (struct field){ .def = &field_defs[i], .pattern = pattern, .err = err };
    c->dom_any = strcmp(raw[F_DOM], "*") == 0 || strcmp(raw[F_DOM], "?") == 0;
    c->dow_any = strcmp(raw[F_DOW], "*") == 0 || strcmp(raw[F_DOW], "?") == 0;
    c->dom_last = strchr(raw[F_DOM], 'L') != NULL;
    c->dow_has_l = strchr(raw[F_DOW], 'L') != NULL;
    r = split_nth(&f[F_DOW], raw[F_DOW], &c->nth, &dow_len);
    for (int i = 0; r >= 0 && i < F_COUNT; i++)
        r = field_parse(&f[i], raw[i], i == F_DOW ? dow_len : strlen(raw[i]));
    if (r < 0)
        return r;
    c->sec = f[F_SEC].bits;
    c->min = f[F_MIN].bits;
    c->hour = (uint32_t) f[F_HOUR].bits;
    c->dom = (uint32_t) f[F_DOM].bits;
    c->month = (uint16_t) f[F_MONTH].bits;
    c->dow = (uint8_t) f[F_DOW].bits;
    c->dow_last = f[F_DOW].last_days;
    for (int d = 0; d <= 7; d++)
        if (c->dow & (1u << d))
            c->dow_last |= (uint8_t) (1u << (d % 7));
    c->hour_count = __builtin_popcount(c->hour);
    return check_month_days(c, pattern, err);
}

int nq_cron_parse(const char *pattern, struct nq_cron **ret, struct nq_err *err)
{
    nq_autofree struct nq_cron *c = NULL;
    nq_autofree char *copy = NULL;
    const char *raw[F_COUNT];
    const char *expr = *pattern ? pattern : "0 * * * * *";
    int r;

    if (strlen(pattern) > CRON_MAX_LEN)
        return nq_err_set(err, -EINVAL, "cron pattern too long (over %d characters)", CRON_MAX_LEN);
    for (size_t i = 0; i < NQ_ELEMENTSOF(predefined); i++)
        if (strcmp(pattern, predefined[i].name) == 0)
            expr = predefined[i].pattern;
    c = calloc(1, sizeof(*c));
    copy = strdup(expr);
    if (!c || !copy)
        return -ENOMEM;
    r = split_fields(pattern, copy, raw, err);
    if (r < 0)
        return r;
    r = cron_build(pattern, raw, c, err);
    if (r < 0)
        return r;
    *ret = NQ_TAKE_PTR(c);
    return 0;
}

struct nq_cron *nq_cron_free(struct nq_cron *c)
{
    free(c);
    return NULL;
}

/* ---- the walk ---------------------------------------------------------- */

/* A luxon DateTime: an instant, the zone's offset there, and the wall clock
 * it shows. Every change goes through luxon's two ways to make one. */
struct moment {
    const struct zone *z;
    int64_t ts;
    int32_t off;
    struct civil c;
};

static void moment_at(struct moment *m, int64_t ts)
{
    m->ts = ts;
    m->off = zone_offset(m->z, ts);
    ms_to_civil(ts + (int64_t) m->off * 1000, &m->c);
}

/* luxon's fixOffset: the instant showing wall clock `local`, trying the
 * current offset first, so an overlap keeps its side and a gap time moves
 * forward by the gap. */
static void moment_local(struct moment *m, const struct civil *want)
{
    int64_t local = civil_to_ms(want);
    int64_t utc = local - (int64_t) m->off * 1000;
    int32_t o2 = zone_offset(m->z, utc);

    if (o2 != m->off) {
        utc -= (int64_t) (o2 - m->off) * 1000;
        int32_t o3 = zone_offset(m->z, utc);
        if (o3 != o2)
            utc = local - (int64_t) (o2 < o3 ? o2 : o3) * 1000;
    }
    moment_at(m, utc);
}

enum unit { U_MONTH, U_DAY, U_HOUR, U_MINUTE, U_SECOND };

/* luxon's startOf(unit). */
static void moment_start_of(struct moment *m, enum unit u)
{
    struct civil c = m->c;

    c.ms = 0;
    if (u <= U_MINUTE)
        c.s = 0;
    if (u <= U_HOUR)
        c.mi = 0;
    if (u <= U_DAY)
        c.h = 0;
    if (u == U_MONTH)
        c.d = 1;
    moment_local(m, &c);
}

/* luxon's plus({ days: 1 }) and plus({ months: 1 }): calendar arithmetic on
 * the wall clock (a month on the 31st lands on the next month's last day). */
static void moment_plus_calendar(struct moment *m, enum unit u)
{
    struct civil c = m->c;

    if (u == U_MONTH) {
        c.mo++;
        int next_dim = days_in_month(c.y + (c.mo > 12), c.mo > 12 ? 1 : c.mo);
        c.d = c.d < next_dim ? c.d : next_dim;
    } else {
        c.d++;
    }
    moment_local(m, &c);
}

enum clock_field { SET_HOUR, SET_MINUTE, SET_SECOND, SET_MS };

/* luxon's set({ hour | minute | second | millisecond: v }). */
static void moment_set(struct moment *m, enum clock_field f, int v)
{
    struct civil c = m->c;

    switch (f) {
    case SET_HOUR:
        c.h = v;
        break;
    case SET_MINUTE:
        c.mi = v;
        break;
    case SET_SECOND:
        c.s = v;
        break;
    case SET_MS:
        c.ms = v;
        break;
    }
    moment_local(m, &c);
}

/* cron-parser's iteration state: where it is, and what its hour steps noticed
 * about DST (hours skipped by a spring-forward step; an hour repeated by a
 * fall-back step). */
struct walk {
    const struct nq_cron *cron;
    struct moment m;
    int dst_start, dst_landing; /* first skipped hour, hour landed on; -1 */
    int dst_end;                /* repeated hour; -1 */
    int64_t day_key;            /* the day dst_day was last asked about */
    bool dst_day;
};

/* One step forward of the given unit, to the start of the next unit. Hour,
 * minute and second steps record DST effects unless all 24 hours match. */
static void walk_step(struct walk *w, enum unit u)
{
    struct moment *m = &w->m;
    int prev_hour = m->c.h;
    int32_t prev_off = m->off;

    if (u == U_MONTH || u == U_DAY) {
        moment_plus_calendar(m, u);
        moment_start_of(m, u);
        return;
    }
    moment_at(m, m->ts + (u == U_HOUR ? 3600000 : u == U_MINUTE ? 60000 : 1000));
    if (u != U_SECOND)
        moment_start_of(m, u);

    int advance = (m->c.h - prev_hour + 24) % 24;
    if (w->cron->hour_count == 24)
        return;
    if (m->off > prev_off && advance >= 2) {
        w->dst_start = (prev_hour + 1) % 24;
        w->dst_landing = m->c.h;
    } else if (advance == 0 && m->c.mi == 0 && m->c.s == 0) {
        w->dst_end = m->c.h;
    }
}

/* Whether the UTC offset at the start of today differs from the one at its
 * last millisecond; remembered per day, as cron-parser does. */
static bool walk_dst_day(struct walk *w)
{
    int64_t key = (w->m.c.y * 100 + w->m.c.mo) * 100 + w->m.c.d;

    if (key != w->day_key) {
        struct moment a = w->m, b = w->m;

        moment_start_of(&a, U_DAY);
        moment_plus_calendar(&b, U_DAY);
        moment_start_of(&b, U_DAY);
        moment_at(&b, b.ts - 1);
        w->day_key = key;
        w->dst_day = a.off != b.off;
    }
    return w->dst_day;
}

static int lowest(uint64_t bits)
{
    return __builtin_ctzll(bits);
}

/* The smallest value above v, or -1. */
static int next_above(uint64_t bits, int v)
{
    uint64_t above = v >= 63 ? 0 : bits & ~((UINT64_C(2) << v) - 1);

    return above ? __builtin_ctzll(above) : -1;
}

static bool day_matches(const struct nq_cron *c, const struct civil *t)
{
    int dim = days_in_month(t->y, t->mo);
    int week = (t->d + 6) / 7; /* the how-manyth of its weekday in the month */
    bool dom = (c->dom >> t->d & 1) || (c->dom_last && t->d == dim);
    bool dow = ((c->dow >> t->wday & 1) && (c->nth <= 0 || (double) week == c->nth)) ||
               (c->dow_has_l && t->d > dim - 7 && (c->dow_last >> t->wday & 1));

    if (!c->dom_any && !c->dow_any)
        return dom || dow;
    return c->dow_any ? dom : dow;
}

/* Resets minutes and seconds to the first allowed. */
static void walk_first_minute(struct walk *w)
{
    moment_set(&w->m, SET_MINUTE, lowest(w->cron->min));
    moment_set(&w->m, SET_SECOND, lowest(w->cron->sec));
}

/* true when the hour matches; otherwise moves on and returns false. */
static bool walk_hour(struct walk *w)
{
    const struct nq_cron *c = w->cron;
    int h = w->m.c.h;

    if (w->dst_start >= 0 && w->dst_landing == h)
        for (int k = w->dst_start; k != h; k = (k + 1) % 24)
            if (c->hour >> k & 1)
                return true; /* a scheduled hour was skipped: run at landing */
    if (w->dst_end == h) {   /* the repeat of an hour already walked */
        w->dst_end = -1;
        walk_step(w, U_HOUR);
        return false;
    }
    if (c->hour >> h & 1)
        return true;
    w->dst_start = w->dst_landing = -1;

    int next = next_above(c->hour, h);
    if (next < 0) {
        walk_step(w, U_DAY);
        return false;
    }
    if (walk_dst_day(w)) {
        for (int i = 0; i < next - h && w->m.c.h < next; i++)
            walk_step(w, U_HOUR);
    } else {
        moment_set(&w->m, SET_HOUR, next);
    }
    walk_first_minute(w);
    return false;
}

static void walk_minute(struct walk *w)
{
    int next = next_above(w->cron->min, w->m.c.mi);

    if (next >= 0) {
        moment_set(&w->m, SET_MINUTE, next);
        moment_set(&w->m, SET_SECOND, lowest(w->cron->sec));
        return;
    }
    walk_step(w, U_HOUR);
    walk_first_minute(w);
}

static void walk_second(struct walk *w)
{
    int next = next_above(w->cron->sec, w->m.c.s);

    if (next >= 0) {
        moment_set(&w->m, SET_SECOND, next);
        return;
    }
    walk_step(w, U_MINUTE);
    moment_set(&w->m, SET_SECOND, lowest(w->cron->sec));
}

/* cron-parser's next(): the first match strictly after from (in whole
 * seconds), inside [lo, hi]; -ENOENT past hi or past the step limit. */
static int walk_next(const struct nq_cron *c, const struct zone *z, int64_t from, int64_t lo,
                     int64_t hi, int64_t *ret)
{
    struct walk w = {
        .cron = c, .m.z = z, .dst_start = -1, .dst_landing = -1, .dst_end = -1, .day_key = -1
    };

    moment_at(&w.m, from);
    if (w.m.c.ms > 0) {
        moment_set(&w.m, SET_MS, 0);
        walk_step(&w, U_SECOND);
    }
    for (int steps = 1; steps < WALK_LIMIT; steps++) {
        const struct civil *t = &w.m.c;

        if (w.m.ts < lo || w.m.ts > hi)
            return -ENOENT;
        if (!(c->month >> t->mo & 1))
            walk_step(&w, U_MONTH);
        else if (!day_matches(c, t))
            walk_step(&w, U_DAY);
        else if (!walk_hour(&w))
            continue;
        else if (!(c->min >> t->mi & 1))
            walk_minute(&w);
        else if (!(c->sec >> t->s & 1))
            walk_second(&w);
        else if (w.m.ts == from)
            walk_step(&w, U_SECOND);
        else {
            *ret = w.m.ts;
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- API --------------------------------------------------------------- */

static int next_in_zone(const struct nq_cron *c, const char *tz, int64_t from, int64_t lo,
                        int64_t hi, uint64_t *ret_ms, struct nq_err *err)
{
    struct zone z = { 0 };
    int64_t t;
    int r;

    if (from < -JS_MAX_DATE_MS || from > JS_MAX_DATE_MS)
        return nq_err_set(err, -EINVAL, "time %" PRId64 " ms is out of range", from);
    r = zone_load(tz, &z, err);
    if (r < 0)
        return r;
    r = walk_next(c, &z, from, lo, hi, &t);
    zone_done(&z);
    if (r < 0)
        return nq_err_set(err, r, "no next time for this cron pattern");
    if (t < 0)
        return nq_err_set(err, -ENOENT, "next cron time is before 1970");
    *ret_ms = (uint64_t) t;
    return 0;
}

int nq_cron_next(const struct nq_cron *c, const char *tz, uint64_t after_ms, uint64_t *ret_ms,
                 struct nq_err *err)
{
    if (after_ms > (uint64_t) JS_MAX_DATE_MS)
        return nq_err_set(err, -EINVAL, "time %" PRIu64 " ms is out of range", after_ms);
    return next_in_zone(c, tz, (int64_t) after_ms, INT64_MIN, INT64_MAX, ret_ms, err);
}

int nq_cron_scheduler_next(const struct nq_cron_sched *s, uint64_t now_ms, uint64_t *ret_ms,
                           struct nq_err *err)
{
    NQ_CLEANUP(nq_cron_freep) struct nq_cron *c = NULL;
    uint64_t now = s->prev_millis > now_ms ? s->prev_millis : now_ms;
    int64_t from, lo = s->start_date_ms ? s->start_date_ms : INT64_MIN;
    int64_t hi = s->end_date_ms ? s->end_date_ms : INT64_MAX;
    uint64_t next;
    int r;

    if (now > (uint64_t) JS_MAX_DATE_MS)
        return nq_err_set(err, -EINVAL, "time %" PRIu64 " ms is out of range", now);
    r = nq_cron_parse(s->pattern, &c, err);
    if (r < 0)
        return r;
    /* bullmq starts from the later of now and startDate; cron-parser then
     * clamps that into [startDate, endDate]. */
    from = s->start_date_ms > (int64_t) now ? s->start_date_ms : (int64_t) now;
    if (from > hi)
        from = hi;
    r = next_in_zone(c, s->tz, from, lo, hi, &next, err);
    if (r < 0)
        return r;
    *ret_ms = next < now ? now : next;
    return 0;
}
