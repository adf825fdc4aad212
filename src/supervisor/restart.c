/* SPDX-License-Identifier: MIT */
#include "config.h"

#include "supervisor/restart.h"

uint64_t nq_restart_next(struct nq_restart *r, uint64_t uptime_ms, uint64_t min_uptime_ms,
                         int exit_code, enum nq_restart_reason *ret_reason)
{
    bool quick = uptime_ms < min_uptime_ms;
    enum nq_restart_reason reason;

    if (quick)
        r->quick_exits++;
    else
        nq_restart_stable(r);

    if (exit_code == NQ_EXIT_CONFIG) {
        reason = NQ_RESTART_CONFIG;
        r->delay_ms = NQ_RESTART_MAX_DELAY_MS;
    } else if (quick) {
        reason = NQ_RESTART_QUICK;
        r->delay_ms = r->delay_ms == 0 ? NQ_RESTART_FIRST_DELAY_MS : r->delay_ms * 2;
        if (r->delay_ms > NQ_RESTART_MAX_DELAY_MS)
            r->delay_ms = NQ_RESTART_MAX_DELAY_MS;
    } else {
        reason = NQ_RESTART_STABLE;
    }
    if (ret_reason)
        *ret_reason = reason;
    return r->delay_ms;
}

void nq_restart_stable(struct nq_restart *r)
{
    r->delay_ms = 0;
    r->quick_exits = 0;
}

bool nq_restart_crash_looping(const struct nq_restart *r)
{
    return r->quick_exits >= NQ_RESTART_CRASH_LOOP;
}
