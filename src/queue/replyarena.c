/* SPDX-License-Identifier: MIT */
#include "config.h"

#include <hiredis/hiredis.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "queue/replyarena.h"

/* The first block; each next one is twice the last, up to the cap, so a
 * reply of 100 KiB takes five blocks. */
#define ARENA_FIRST 4096
#define ARENA_BLOCK_MAX (1u << 20)

struct block {
    struct block *next;
    size_t used, size;
    alignas(max_align_t) char data[];
};

/* A root reply: the redisReply first, so the pointer hiredis holds is both. */
struct root {
    redisReply reply;
    struct block *blocks; /* newest first */
};

static struct root *root_of(const redisReadTask *task)
{
    while (task->parent)
        task = task->parent;
    return task->obj;
}

static void *arena_alloc(struct root *root, size_t n)
{
    struct block *b = root->blocks;
    size_t size;

    n = (n + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    if (b && b->size - b->used >= n) {
        void *p = b->data + b->used;

        b->used += n;
        return p;
    }
    size = b ? b->size * 2 : ARENA_FIRST;
    if (size > ARENA_BLOCK_MAX)
        size = ARENA_BLOCK_MAX;
    if (size < n)
        size = n;
    b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->next = root->blocks;
    b->used = n;
    b->size = size;
    root->blocks = b;
    return b->data;
}

/* A new reply of type t in its root's arena, linked into its parent; the
 * root itself is its own allocation (it owns the arena). */
static redisReply *reply_new(const redisReadTask *task, int t)
{
    redisReply *r;

    if (!task->parent) {
        struct root *root = calloc(1, sizeof(*root));

        if (!root)
            return NULL;
        root->reply.type = t;
        return &root->reply;
    }
    r = arena_alloc(root_of(task), sizeof(*r));
    if (!r)
        return NULL;
    memset(r, 0, sizeof(*r));
    r->type = t;
    ((redisReply *) task->parent->obj)->element[task->idx] = r;
    return r;
}

static void *create_string(const redisReadTask *task, char *str, size_t len)
{
    redisReply *r;
    char *buf;

    if (!task->parent) {
        /* A root string ("OK", an error) needs no arena: its bytes follow it. */
        struct root *root = calloc(1, sizeof(*root) + len + 1);

        if (!root)
            return NULL;
        r = &root->reply;
        r->type = task->type;
        buf = (char *) (root + 1);
    } else {
        if (!(r = reply_new(task, task->type)) || !(buf = arena_alloc(root_of(task), len + 1)))
            return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->str = buf;
    r->len = len;
    return r;
}

static void *create_array(const redisReadTask *task, int elements)
{
    redisReply *r = reply_new(task, REDIS_REPLY_ARRAY);
    struct root *root;

    if (!r)
        return NULL;
    if (elements > 0) {
        root = task->parent ? root_of(task) : (struct root *) r;
        r->element = arena_alloc(root, (size_t) elements * sizeof(redisReply *));
        if (!r->element) {
            if (!task->parent)
                free(r);
            return NULL;
        }
        memset(r->element, 0, (size_t) elements * sizeof(redisReply *));
    }
    r->elements = (size_t) elements;
    return r;
}

static void *create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = reply_new(task, REDIS_REPLY_INTEGER);

    if (r)
        r->integer = value;
    return r;
}

static void *create_nil(const redisReadTask *task)
{
    return reply_new(task, REDIS_REPLY_NIL);
}

static void free_root(void *reply)
{
    struct root *root = reply;
    struct block *b, *next;

    if (!root)
        return;
    for (b = root->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
    free(root);
}

redisReplyObjectFunctions nq_reply_arena_fns = {
    .createString = create_string,
    .createArray = create_array,
    .createInteger = create_integer,
    .createNil = create_nil,
    .freeObject = free_root,
};
