/* SPDX-License-Identifier: MIT */
/*
 * Our Lua scripts (the .lua files of src/queue/lua, each prefixed with lua/common.lua),
 * embedded at build time. Their SHA1 is computed here, so an EVALSHA can be
 * sent without waiting for a SCRIPT LOAD reply; on NOSCRIPT the caller sends
 * SCRIPT LOAD and the same EVALSHA again, pipelined.
 * Every script takes KEYS[1] = "<base>meta" and ARGV[1] = the base key.
 */
#ifndef NQ_QUEUE_SCRIPTS_H
#define NQ_QUEUE_SCRIPTS_H

enum nq_script {
    NQ_SCRIPT_ADD,
    NQ_SCRIPT_WORK,
    NQ_SCRIPT_EXTEND,
    NQ_SCRIPT_STALLED,
    NQ_SCRIPT_RECOVER,
    NQ_SCRIPT_PAUSE,
    NQ_SCRIPT_REMOVE,
    NQ_SCRIPT_RETRY,
    NQ_SCRIPT_PROMOTE,
    NQ_SCRIPT_CLEAN,
    NQ_SCRIPT_PROGRESS,
    NQ_SCRIPT_STATE,
    NQ_SCRIPT_COUNTS,
    NQ_SCRIPT_SCHEDULER,
    NQ_SCRIPT_FANOUT,
    NQ_SCRIPT_PUBLISH,
    NQ_SCRIPT__COUNT,
};

/* "work", "add", ...: the file name without .lua. */
const char *nq_script_name(enum nq_script s);
/* The full source sent with SCRIPT LOAD. Static storage. */
const char *nq_script_source(enum nq_script s);
/* 40 lowercase hex digits of SHA1(source), as EVALSHA wants. Static storage. */
const char *nq_script_sha(enum nq_script s);

#endif
