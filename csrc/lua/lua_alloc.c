/* A cache of freed large blocks in front of the Lua state's allocator:
 * automatic while large messages arrive, or set by hand with
 * ws.keep_large_blocks.
 *
 * LuaJIT's allocator maps every block of 128 KiB or more with mmap and
 * unmaps it when freed, so each large message string is fresh pages that
 * fault in as the payload is copied into them (~256 faults per MiB).
 * PUC Lua's malloc (glibc) trims the top of its heap when the collector
 * frees a batch of large strings and grows it again for the next ones, so
 * there too large messages fault (Lua 5.1 at 1 MiB: 29-44 faults per
 * message; 5.4 at 4 MiB: 4 to 450 from one run to the next).  The
 * cache keeps a few such blocks when Lua frees them and hands one back for
 * the next large allocation it can hold.  Every block still comes from and
 * goes back to the state's own allocator (which reads its own block header
 * on free and realloc), so nothing is mixed; the cache only delays frees.
 *
 * Automatic mode (every Lua): the first message of 128 KiB or more
 * installs it.  It may keep up to 64
 * blocks, AUTO_CEILING bytes in all: LuaJIT's collector paces itself by
 * allocations, not bytes, so with large strings it frees them in batches
 * of tens of MiB (1 MiB echoes: 15-28 MiB; 4 MiB echoes: ~60 MiB), and a
 * cache smaller than a batch misses most of it.  The cache does not raise
 * the process's peak: every block in it was in the Lua heap a moment
 * before and leaves it only to go back there or to the system.  What it
 * keeps is measured against use: once per window (1 s, checked at a large
 * message) the bytes that stayed kept all through the window go back.
 * After a whole window without a large message a timer on the loop that
 * delivered the last one gives everything back and the cache goes dormant
 * (passing everything through) until the next one: an idle loop wakes
 * once for it.  An explicit ws.keep_large_blocks(bytes) or (false)
 * replaces the automatic mode for good. */
/* glibc declares madvise only outside strict POSIX. */
#if defined(__linux__) && !defined(_DEFAULT_SOURCE)
#define _DEFAULT_SOURCE
#endif
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "io/loop.h"
#include "lua_alloc.h"
#include "lua_compat.h"
#include "lua_core.h"
#include "lua_loop.h"

#define CACHE_SLOTS    64 /* ws.keep_large_blocks(bytes) uses the first 16 */
#define MANUAL_SLOTS   16
#define AUTO_CEILING   ((size_t)128 * 1024 * 1024)
#define AUTO_WINDOW_NS ((uint64_t)1000000000)

typedef enum { MODE_AUTO, MODE_ON, MODE_OFF } cache_mode;

typedef struct block_cache {
    lua_Alloc f; /* the allocator underneath, which does all the work */
    void *ud;
    size_t min;   /* blocks at least this large are kept when freed */
    size_t limit; /* at most this many bytes kept */
    size_t kept;
    bool installed; /* somewhere in the state's allocator chain */
    cache_mode mode;
    int slots; /* how many of slot[] are used */
    /* Automatic mode: the fewest bytes kept at any moment of this window
     * (blocks nothing needed all along, given back at its end). */
    size_t low;
    bool active;         /* a large message arrived in the last two windows */
    uint64_t window_end; /* loop time: the current window ends */
    ws_lua_loop *ll;     /* the loop the timer runs on (a reference), or NULL */
    ws_timer timer;
    /* Strings made in place (ws_lua_push_block): where Lua puts a string's
     * bytes in the block it allocates for it (`head` bytes in; 0: not
     * learnt, no strings made in place); the block is `head` bytes more
     * than the string and its NUL rounded up to `align` (block_size). */
    size_t head, align;
    unsigned probes;   /* attempts to learn them */
    void *probe;       /* while learning: the block of the string */
    size_t probe_size; /* and its size */
    size_t probe_len;  /* the string's length (0: not learning) */
    void *armed;       /* the next allocation, when of armed_size, is this block */
    size_t armed_size;
    bool served;            /* it was */
    size_t out;             /* blocks of the store neither back nor taken */
    bool clobbers;          /* the string's last word is cleared before the copy (LuaJIT) */
    bool dead;              /* the state let go of it: freed once out is 0 */
    unsigned long in_place; /* strings made in place so far */
    struct {
        void *p;
        size_t size; /* what Lua last asked for: the block holds at least this */
    } slot[CACHE_SLOTS];
} block_cache;

static const char cache_key = 'k'; /* registry: the userdata owning the cache */

/* The kept block that best fits n bytes (at most twice n), or -1. */
static int find_fit(const block_cache *c, size_t n)
{
    int best = -1;
    for (int i = 0; i < c->slots; i++) {
        size_t s = c->slot[i].size;
        if (c->slot[i].p && s >= n && s / 2 <= n && (best < 0 || s < c->slot[best].size))
            best = i;
    }
    return best;
}

static bool keep(block_cache *c, void *p, size_t size)
{
    if (c->kept + size > c->limit)
        return false;
    for (int i = 0; i < c->slots; i++) {
        if (!c->slot[i].p) {
            c->slot[i].p = p;
            c->slot[i].size = size;
            c->kept += size;
            return true;
        }
    }
    return false;
}

/* Give blocks back until at most `bytes` are kept. */
static void drop_to(block_cache *c, size_t bytes)
{
    for (int i = 0; i < CACHE_SLOTS && c->kept > bytes; i++) {
        if (c->slot[i].p) {
            c->f(c->ud, c->slot[i].p, c->slot[i].size, 0);
            c->kept -= c->slot[i].size;
            c->slot[i].p = NULL;
        }
    }
}

/* With ws.advise_huge_pages(true), blocks Lua gets fresh from the
 * allocator underneath are advised to use huge pages over every whole
 * huge page inside them: a multi-MiB message then faults in a few huge
 * pages instead of hundreds of small ones, and copying it in and out of
 * the kernel walks a few TLB entries.  Off by default: with the kernel's
 * usual `defrag` setting a fault in an advised range may stall for
 * compaction, and glibc reuses a freed heap range (advice and all) for
 * anything.  One switch for the process (its Lua states share the
 * kernel's memory), set before serving. */
static uintptr_t huge_page; /* its size; 0: the advice is off */

/* The kernel's huge page for anonymous memory: 2 MiB on x86-64 and on
 * arm64 with 4 KiB pages, 32 or 512 MiB with 16 or 64 KiB pages (where
 * advising 2 MiB would only split mappings).  2 MiB when it does not say. */
static uintptr_t kernel_huge_page(void)
{
    uintptr_t size = (uintptr_t)2 << 20;
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", "r");
    if (f) {
        unsigned long v;
        if (fscanf(f, "%lu", &v) == 1 && v >= 65536 && (v & (v - 1)) == 0)
            size = (uintptr_t)v;
        fclose(f);
    }
    return size;
}

static void advise_huge(void *p, size_t n, uintptr_t page)
{
#ifdef MADV_HUGEPAGE
    uintptr_t from = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t to = ((uintptr_t)p + n) & ~(page - 1);
    if (to > from)
        (void)madvise((void *)from, to - from, MADV_HUGEPAGE);
#else
    (void)p;
    (void)n;
    (void)page;
#endif
}

static void *cached_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    block_cache *c = ud;
    if (c->armed && !ptr && nsize) { /* only the next allocation, and only its size */
        void *p = nsize == c->armed_size ? c->armed : NULL;
        c->armed = NULL;
        if (p) {
            c->served = true;
            return p;
        }
    }
    if (c->probe_len && !ptr && nsize > c->probe_len && nsize - c->probe_len <= 256) {
        void *p = c->f(c->ud, ptr, osize, nsize);
        c->probe = p;
        c->probe_size = nsize;
        return p;
    }
    if (!ptr && nsize >= c->min) { /* osize is a type tag here (5.4) */
        int i = find_fit(c, nsize);
        if (i >= 0) {
            void *p = c->slot[i].p;
            c->kept -= c->slot[i].size;
            c->slot[i].p = NULL;
            if (c->kept < c->low)
                c->low = c->kept;
            return p;
        }
    } else if (ptr && nsize == 0 && osize >= c->min && keep(c, ptr, osize)) {
        return NULL;
    }
    void *p = c->f(c->ud, ptr, osize, nsize);
    if (!p && nsize && c->kept) { /* out of memory: what is kept goes first */
        drop_to(c, 0);
        c->low = 0;
        p = c->f(c->ud, ptr, osize, nsize);
    }
    uintptr_t page = huge_page; /* (read once) */
    if (page && p && !ptr && nsize >= page && c->mode != MODE_OFF)
        advise_huge(p, nsize, page);
    return p;
}

/* Automatic mode with no large message for a while: everything back. */
static void go_dormant(block_cache *c)
{
    c->active = false;
    c->limit = 0;
    drop_to(c, 0);
}

/* No large message for at least AUTO_WINDOW_NS (see ws_lua_large_message). */
static void idle_cb(ws_loop *loop, ws_timer *t, void *ud)
{
    (void)loop;
    (void)t;
    go_dormant(ud);
}

/* Stop the idle timer and let go of its loop.  A loop already closed is
 * not touched.  (In a forked child stopping it only edits the child's copy
 * of the parent's timer heap: the timerfd is armed at the end of a step.) */
static void unbind(block_cache *c)
{
    if (!c->ll)
        return;
    if (ws_lua_loop_get(c->ll))
        ws_timer_stop(&c->timer);
    else /* forget it: its heap is gone */
        ws_timer_init(&c->timer, idle_cb, c);
    ws_lua_loop_unref(c->ll);
    c->ll = NULL;
}

/* Put the allocator underneath back when ours is still the state's: one
 * installed later on top of ours cannot be unwound, so then the cache stays
 * in the chain, empty, passing everything through. */
static void uninstall(lua_State *L, block_cache *c)
{
    void *cur_ud;
    unbind(c);
    c->active = false;
    c->limit = 0;
    drop_to(c, 0);
    if (c->installed && lua_getallocf(L, &cur_ud) == cached_alloc && cur_ud == c) {
        lua_setallocf(L, c->f, c->ud);
        c->installed = false;
    }
}

static void install(lua_State *L, block_cache *c)
{
    if (!c->installed) {
        c->f = lua_getallocf(L, &c->ud);
        lua_setallocf(L, cached_alloc, c);
        c->installed = true;
    }
}

/* ---- strings made where the payload arrived ----------------------------
 *
 * A large message's payload is received into a block of the state's
 * allocator laid out as Lua lays out a string of that length (the store
 * below, csrc/core/buf.h ws_payload_store).  To make the string, the
 * cache is armed with that block: the allocation lua_pushlstring makes
 * for the string is served with it, so the copy Lua then makes copies the
 * payload onto itself (glibc's memcpy returns at once when source and
 * destination are the same).  No Lua API makes a string without a copy;
 * this removes the copy that costs most at 1 MiB and more (a pass over
 * memory per message, and the second buffer). */

#if defined(__SANITIZE_ADDRESS__) || defined(WS_NO_IN_PLACE_STRINGS)
#define IN_PLACE 0 /* ASan and valgrind report the copy onto itself */
#else
#define IN_PLACE 1
#endif

/* What a block of the store keeps in its first bytes (where Lua writes
 * its string header once the block is the string's): where to give it
 * back when it is not taken.  The cache counts its blocks out and outlives
 * the state's collection of it until they are back (a connection's session
 * may be freed after it while the state closes). */
typedef struct block_tag {
    block_cache *c;
    size_t size;
} block_tag;

/* The size of the block Lua allocates for a string of n bytes, or 0 when
 * too large. */
static size_t block_size(const block_cache *c, size_t n)
{
    if (n > SIZE_MAX - c->head - 2 * c->align)
        return 0;
    return c->head + (n + 1 + c->align - 1) / c->align * c->align;
}

/* lua_pushlstring in a protected call, so that what is set around it ends
 * however it returns.  (pointer, length) -> the string. */
static int push_protected(lua_State *L)
{
    const char *p = lua_touserdata(L, 1);
    size_t len = (size_t)lua_tonumber(L, 2);
    lua_pushlstring(L, p, len);
    return 1;
}

/* Push the string of len bytes at payload, which sits in block (of size
 * bytes) where Lua would put it, with the next allocation (if of that
 * size) served by block.  The caller pushed push_protected.  1: made in
 * place; 0: a copy, the block not taken (Lua allocated something else
 * first, e.g. a call frame, or LuaJIT and 5.1 found an equal string);
 * -1: the block went to another allocation (a finalizer run by the
 * collector allocated first) and the string is a copy of what is there
 * now; -2: out of memory, the error on the stack, the block not taken. */
static int push_in_place(lua_State *L, block_cache *c, const unsigned char *payload, size_t len,
                         void *block, size_t size)
{
    /* The same call first, unarmed, for an empty string: it takes the call
     * frame the armed call then reuses (the collector gives unused frames
     * back, and taking one while armed would spend the arming). */
    lua_pushvalue(L, -1);
    lua_pushlightuserdata(L, (void *)"");
    lua_pushnumber(L, 0);
    if (lua_pcall(L, 2, 1, 0) != 0) {
        lua_remove(L, -2);
        return -2;
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, (void *)payload);
    lua_pushnumber(L, (lua_Number)len);
    c->armed = block;
    c->armed_size = size;
    c->served = false;
    int r = lua_pcall(L, 2, 1, 0);
    bool taken = c->served;
    c->armed = NULL;
    if (r != 0)
        return taken ? -1 : -2;
    if (!taken)
        return 0;
    if (lua_tostring(L, -1) != (const char *)payload)
        return -1;
    c->in_place++;
    return 1;
}

/* Learn head and align from strings of 8 lengths (unique, so no interned
 * string is found instead) made through the cache: the header must be the
 * same size in each and leave room for a block_tag, and one rounding (1,
 * 2, 4, 8 or 16: LuaJIT rounds to 4, PUC Lua not at all) must give every
 * block size.  Then a string made in place for each length must hold the
 * same bytes; only LuaJIT spoils some: it clears the last word of the
 * block before it copies the bytes in, which for a length that is not a
 * multiple of the rounding is the payload's end (`clobbers`: those
 * lengths are copied).  A few tries at most. */
static void learn_layout(lua_State *L, block_cache *c)
{
    char probe[320];
    size_t head = 0, size[8];
    bool clobbers = false;
    if (c->head || c->probes >= 3 || !lua_checkstack(L, 4))
        return;
    c->probes++;
    for (size_t i = 0; i < 8; i++) {
        size_t len = 300 + i;
        memset(probe, 'p', len);
        snprintf(probe, 64, "lua-ws layout %p %u %zu", (void *)c, c->probes, len);
        lua_pushcfunction(L, push_protected);
        lua_pushlightuserdata(L, probe);
        lua_pushnumber(L, (lua_Number)len);
        c->probe = NULL;
        c->probe_len = len;
        int r = lua_pcall(L, 2, 1, 0);
        c->probe_len = 0;
        const char *s = r == 0 ? lua_tostring(L, -1) : NULL;
        const char *b = c->probe;
        size_t h = s && b && s > b && s < b + c->probe_size ? (size_t)(s - b) : 0;
        lua_pop(L, 1);
        if (h < sizeof(block_tag) || (head && h != head))
            return;
        head = h;
        size[i] = c->probe_size;
    }
    block_cache fit = {.head = head};
    for (fit.align = 1; fit.align <= 16; fit.align *= 2) {
        size_t i = 0;
        while (i < 8 && block_size(&fit, 300 + i) == size[i])
            i++;
        if (i == 8)
            break;
    }
    if (fit.align > 16)
        return;
    for (size_t len = 300, tries = 0; IN_PLACE && len < 308; len++) {
        lua_pushcfunction(L, push_protected); /* (before the block: it may raise) */
        unsigned char *b = c->f(c->ud, NULL, LUA_TSTRING, block_size(&fit, len));
        if (!b) {
            lua_pop(L, 1);
            return;
        }
        memset(probe, 'q', len);
        snprintf(probe, 64, "lua-ws in place %p %u %zu %zu", (void *)c, c->probes, len, tries);
        memcpy(b + head, probe, len);
        int r = push_in_place(L, c, b + head, len, b, block_size(&fit, len));
        if (r <= 0) {
            if (r != -1)
                c->f(c->ud, b, block_size(&fit, len), 0);
            lua_pop(L, 1);               /* the string (a copy), or the error */
            if (r == 0 && tries++ < 8) { /* (a call frame, most likely): again */
                len--;
                continue;
            }
            return;
        }
        c->in_place--; /* (not a message) */
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        bool same = n == len && memcmp(s, probe, len) == 0 && s[len] == '\0';
        lua_pop(L, 1);
        if (!same && len % fit.align == 0)
            return;
        clobbers |= !same;
    }
    c->clobbers = clobbers;
    c->align = fit.align;
    c->head = head;
}

/* ws_payload_store.get: ud points at the loop's running thread (NULL
 * outside step and run: no block then). */
static void *store_get(void *ud, size_t n, unsigned char **payload)
{
    lua_State *L = *(lua_State *const *)ud;
    void *aud;
    if (!L || lua_getallocf(L, &aud) != cached_alloc)
        return NULL;
    block_cache *c = aud;
    block_tag t = {c, c->head ? block_size(c, n) : 0};
    if (!t.size || (c->clobbers && n % c->align))
        return NULL; /* (no string made in place: the copy from `in` costs the same) */
    unsigned char *b = cached_alloc(c, NULL, LUA_TSTRING, t.size);
    if (!b)
        return NULL;
    memcpy(b, &t, sizeof t);
    c->out++;
    *payload = b + c->head;
    return b;
}

static void store_put(void *block)
{
    block_tag t;
    memcpy(&t, block, sizeof t);
    block_cache *c = t.c;
    c->out--;
    if (!c->dead) {
        cached_alloc(c, block, t.size, 0); /* kept for the next one, or freed */
        return;
    }
    c->f(c->ud, block, t.size, 0);
    if (!c->out)
        free(c);
}

void ws_lua_payload_store_init(ws_payload_store *st, lua_State *const *running)
{
    st->get = store_get;
    st->put = store_put;
    st->ud = (void *)running;
    st->min = WS_LUA_LARGE_BLOCK;
}

int ws_lua_push_block(lua_State *L, const unsigned char *payload, size_t len, void *block)
{
    void *aud;
    block_cache *c = lua_getallocf(L, &aud) == cached_alloc ? aud : NULL;
    if (!IN_PLACE || !c || !c->head || payload != (unsigned char *)block + c->head ||
        (c->clobbers && len % c->align)) {
        lua_pushlstring(L, (const char *)payload, len);
        return 0;
    }
    lua_pushcfunction(L, push_protected); /* (may raise: nothing armed yet) */
    int r = push_in_place(L, c, payload, len, block, block_size(c, len));
    if (r == 1 || r == -1)
        c->out--; /* Lua's now */
    if (r == -2)
        lua_error(L); /* (the block is still the session's) */
    return r;
}

/* The userdata holds a pointer: the cache itself is malloc'd, so that if
 * it cannot leave the chain it outlives the state's collection of it. */
static int cache_gc(lua_State *L)
{
    block_cache **cp = lua_touserdata(L, 1);
    if (*cp) {
        uninstall(L, *cp);
        if (!(*cp)->installed && (*cp)->out)
            (*cp)->dead = true; /* freed when its last block is back */
        else if (!(*cp)->installed)
            free(*cp);
        *cp = NULL;
    }
    return 0;
}

/* Push registry[cache_key]: the userdata, or nil. */
static void push_entry(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&cache_key);
    lua_rawget(L, LUA_REGISTRYINDEX);
}

/* The cache of this state, made (not installed) if need be; NULL when out
 * of memory.  Leaves the stack as it was. */
static block_cache *make_cache(lua_State *L)
{
    push_entry(L);
    block_cache **cp = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!cp) {
        cp = lua_newuserdata(L, sizeof *cp);
        *cp = NULL;
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, cache_gc);
        lua_setfield(L, -2, "__gc");
        lua_setmetatable(L, -2);
        lua_pushlightuserdata(L, (void *)&cache_key);
        lua_pushvalue(L, -2);
        lua_rawset(L, LUA_REGISTRYINDEX);
        lua_pop(L, 1);
    }
    if (!*cp && (*cp = calloc(1, sizeof **cp)) != NULL)
        ws_timer_init(&(*cp)->timer, idle_cb, *cp);
    return *cp;
}

void ws_lua_large_message(lua_State *L, ws_lua_loop *ll)
{
    push_entry(L);
    block_cache **cp = lua_touserdata(L, -1);
    lua_pop(L, 1);
    block_cache *c = cp ? *cp : NULL;
    if (cp && (!c || c->mode != MODE_AUTO))
        return; /* the application chose */
    if (!c) {
        if (!(c = make_cache(L)))
            return; /* out of memory: messages work without it */
        c->mode = MODE_AUTO;
        c->min = WS_LUA_LARGE_BLOCK;
        c->slots = CACHE_SLOTS;
        install(L, c);
    }
    learn_layout(L, c);
    ws_loop *loop = ll ? ws_lua_loop_get(ll) : NULL;
    if (!loop)
        return;
    if (c->ll != ll) {
        unbind(c);
        ws_lua_loop_ref(ll);
        c->ll = ll;
    }
    /* Once per window, at a message: what stayed kept all through the
     * window was not needed and goes back, and the timer moves to two
     * windows from now.  So it fires only after a whole window without a
     * large message (between one and two after the last one), once, and
     * moving it costs the loop a timerfd update once per window at most. */
    uint64_t now = ws_loop_now(loop);
    if (c->active && ws_timer_active(&c->timer) && now < c->window_end)
        return;
    if (c->active)
        drop_to(c, c->kept - c->low);
    c->active = true;
    c->limit = AUTO_CEILING;
    c->low = c->kept;
    c->window_end = now + AUTO_WINDOW_NS;
    if (ws_timer_start(loop, &c->timer, 2 * AUTO_WINDOW_NS, 0) < 0) {
        go_dormant(c); /* nothing would give the blocks back */
        return;
    }
    ws_timer_unref(&c->timer); /* it keeps no loop running */
}

/***
 * Entry points of ws.core.
 * @module ws.core
 */

/***
 * The same as `ws.keep_large_blocks`.
 * @function keep_large_blocks
 * @tparam[opt] integer|false bytes how much freed memory may be kept; none: only report
 * @tparam[opt=131072] integer min the smallest block kept
 * @treturn integer the bytes of freed blocks held now
 * @treturn string "auto", "on", "off" or "none"
 * @treturn integer the bytes that may be held now
 * @treturn integer the message strings made where their payload arrived, so far
 */
static int l_keep_large_blocks(lua_State *L)
{
    size_t limit = 0;
    bool query = lua_isnoneornil(L, 1);
    if (query) {
        luaL_argcheck(L, lua_isnone(L, 2), 1, "a byte count or false expected");
    } else if (lua_type(L, 1) == LUA_TBOOLEAN) {
        luaL_argcheck(L, !lua_toboolean(L, 1), 1, "a byte count or false expected");
    } else {
        lua_Number n = luaL_checknumber(L, 1);
        luaL_argcheck(L, n >= 0 && n <= (lua_Number)((size_t)1 << 40), 1, "bytes out of range");
        limit = (size_t)n;
    }
    lua_Number m = luaL_optnumber(L, 2, 131072);
    luaL_argcheck(L, m >= 4096 && m <= (lua_Number)((size_t)1 << 40), 2,
                  "min out of range (4096 or more)");
    block_cache *c;
    if (query) {
        push_entry(L);
        block_cache **cp = lua_touserdata(L, -1);
        c = cp ? *cp : NULL;
    } else if (!(c = make_cache(L))) {
        return luaL_error(L, "ws.keep_large_blocks: out of memory");
    } else if (limit == 0) {
        c->mode = MODE_OFF;
        uninstall(L, c);
    } else {
        if (c->mode != MODE_ON || c->kept > limit)
            drop_to(c, 0);
        unbind(c);
        c->mode = MODE_ON;
        c->active = false;
        c->slots = MANUAL_SLOTS;
        install(L, c);
        learn_layout(L, c);
        c->min = (size_t)m;
        c->limit = limit;
    }
    static const char *const names[] = {"auto", "on", "off"};
    ws_pushsize(L, c ? c->kept : 0);
    lua_pushstring(L, c ? names[c->mode] : "none");
    ws_pushsize(L, c ? c->limit : 0);
    ws_pushsize(L, c ? c->in_place : 0);
    return 4;
}

/***
 * The same as `ws.advise_huge_pages`.
 * @function advise_huge_pages
 * @tparam[opt] bool on advise huge pages for large blocks; none: only report
 * @treturn bool whether they are advised now
 */
static int l_advise_huge_pages(lua_State *L)
{
    if (!lua_isnone(L, 1)) {
        luaL_checktype(L, 1, LUA_TBOOLEAN);
        huge_page = lua_toboolean(L, 1) ? (huge_page ? huge_page : kernel_huge_page()) : 0;
    }
    lua_pushboolean(L, huge_page != 0);
    return 1;
}

void ws_lua_open_alloc(lua_State *L)
{
    lua_pushcfunction(L, l_advise_huge_pages);
    lua_setfield(L, -2, "advise_huge_pages");
    lua_pushcfunction(L, l_keep_large_blocks);
    lua_setfield(L, -2, "keep_large_blocks");
}
