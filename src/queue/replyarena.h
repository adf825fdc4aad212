/* SPDX-License-Identifier: MIT */
/*
 * hiredis reply objects allocated from one arena per reply. hiredis makes
 * two mallocs per element (the redisReply and a copy of its bytes) and
 * frees them one by one: for a work call that returns 50 jobs of ~24
 * fields, ~2,400 mallocs and frees, a third of a busy worker's CPU. These
 * functions build the same redisReply trees, so every reader of a reply is
 * unchanged, in a few growing blocks owned by the root reply, freed at once
 * when hiredis frees the root.
 *
 * hiredis (0.14 and later) calls freeObject only on root replies, and
 * creates children only while their root is alive: the functions rely on
 * both. A reply made with them must be freed by them, never with
 * freeReplyObject(). Install on a context before its first command:
 * ctx->reader->fn = &nq_reply_arena_fns.
 */
#ifndef NQ_QUEUE_REPLYARENA_H
#define NQ_QUEUE_REPLYARENA_H

#include <hiredis/read.h>

extern redisReplyObjectFunctions nq_reply_arena_fns;

#endif
