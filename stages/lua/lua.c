/*
 * lua: runs a Lua 5.4 function on each record (docs/stages/lua.md).
 *
 * Each worker owns one lua_State, built at init: the script runs once
 * there, then the per-record function is called for every record. Every
 * call into Lua is protected, bounded by an instruction count hook and a
 * capped allocator, so a runaway or greedy script fails the record rather
 * than the process.
 */
#include "lua_conv.h"
#include "record_map.h"

#include <sluice/stage.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_INSTRUCTIONS 10000000
#define DEFAULT_MAX_MEMORY_MB 64
/* The hook runs every this many instructions at most: cheap, and a
 * script's overrun past the limit stays this small. */
#define HOOK_STEP 1000

static const char *const s_keys[] = {"script",           "code",
                                     "function",         "init",
                                     "args",             "max_instructions",
                                     "max_memory_mb",    NULL};

typedef struct lua_cfg {
    const sl_config_t *src_node; /* `script` or `code`, for messages */
    const sl_config_t *fn_node, *init_node, *args;
    char *path;     /* resolved script path (malloc'd), or NULL for code */
    char *source;   /* the script text (malloc'd) or NULL */
    const char *code;
    size_t code_len;
    char chunk[512]; /* Lua's chunk name: "@script as written" or "=code" */
    const char *fn, *init_fn;
    int64_t max_instructions, max_memory_mb;
} lua_cfg_t;

typedef struct slua {
    size_t mem_used, mem_cap; /* the allocator's books */
    uint64_t instr, max_instr;
    lua_State *L;
    int fn_ref;
    slua_order_t order;
} slua_t;

/* What a protected call needs; lives on the caller's stack. */
typedef struct call {
    slua_t *s;
    sl_ctx_t *ctx;
    sl_record_t *rec;
    const msgpack_object *map;
    const lua_cfg_t *cfg;
    const sl_config_t *blame; /* init: the node an error is reported at */
    const char *what;         /* init: the step that failed */
    int in_input; /* process: converting the record for the script */
} call_t;

/* ---- config ---------------------------------------------------------------- */

static void s_cfg_fini(lua_cfg_t *c)
{
    free(c->path);
    free(c->source);
    memset(c, 0, sizeof *c);
}

static int s_read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - n < 4096) {
            cap = cap ? cap * 2 : 8192;
            char *b = realloc(buf, cap);
            if (!b) {
                rc = -ENOMEM;
                break;
            }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f))
                rc = -EIO;
            break;
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int s_positive(const sl_config_t *cfg, const char *key, int64_t dflt,
                      int64_t max, int64_t *out)
{
    int rc = sl_config_get_int(cfg, key, dflt, out);
    if (rc < 0)
        return rc;
    if (*out < 1 || *out > max)
        return sl_config_error(sl_config_get(cfg, key),
                               "'%s' must be between 1 and %lld", key,
                               (long long)max);
    return 0;
}

/* Parses cfg into c and reads the script; reports every problem. */
static int s_cfg_parse(const sl_config_t *cfg, lua_cfg_t *c)
{
    memset(c, 0, sizeof *c);
    int bad = 0;
    const sl_config_t *script = sl_config_get(cfg, "script");
    const sl_config_t *code = sl_config_get(cfg, "code");
    if (script && code) {
        sl_config_error(code, "give either 'script' or 'code', not both");
        return -EINVAL;
    }
    if (!script && !code) {
        sl_config_error(cfg, "one of 'script' (a Lua file) or 'code' "
                             "(inline Lua) is required");
        return -EINVAL;
    }
    if (script) {
        c->src_node = script;
        if (sl_config_get_path(cfg, "script", NULL, &c->path) < 0)
            return -EINVAL;
        snprintf(c->chunk, sizeof c->chunk, "@%s", sl_config_str(script));
        size_t len = 0;
        int rc = s_read_file(c->path, &c->source, &len);
        if (rc < 0) {
            sl_config_error(script, "cannot read script '%s': %s", c->path,
                            strerror(-rc));
            goto fail;
        }
        c->code = c->source;
        c->code_len = len;
    } else {
        c->src_node = code;
        if (sl_config_get_str(cfg, "code", NULL, &c->code) < 0)
            return -EINVAL;
        c->code_len = strlen(c->code);
        snprintf(c->chunk, sizeof c->chunk, "=code");
    }
    c->fn_node = sl_config_get(cfg, "function");
    c->init_node = sl_config_get(cfg, "init");
    bad |= sl_config_get_str(cfg, "function", "process", &c->fn) < 0;
    bad |= sl_config_get_str(cfg, "init", NULL, &c->init_fn) < 0;
    if (c->fn && !c->fn[0])
        bad |= sl_config_error(c->fn_node, "'function' must not be empty") < 0;
    if (c->init_fn && !c->init_fn[0])
        bad |= sl_config_error(c->init_node, "'init' must not be empty") < 0;
    c->args = sl_config_get(cfg, "args");
    if (c->args && sl_config_type(c->args) != SL_CONFIG_MAP)
        bad |= sl_config_error(c->args, "'args' must be a map") < 0;
    if (c->args && !c->init_fn)
        bad |= sl_config_error(c->args,
                               "'args' is given to the 'init' function, "
                               "but there is no 'init'") < 0;
    bad |= s_positive(cfg, "max_instructions", DEFAULT_MAX_INSTRUCTIONS,
                      INT64_MAX / 2, &c->max_instructions) < 0;
    bad |= s_positive(cfg, "max_memory_mb", DEFAULT_MAX_MEMORY_MB, 1 << 20,
                      &c->max_memory_mb) < 0;
    if (bad)
        goto fail;
    return 0;
fail:
    s_cfg_fini(c);
    return -EINVAL;
}

/* ---- the Lua state ------------------------------------------------------------- */

/* Refuses growth past the cap; Lua turns that into a memory error. */
static void *s_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    slua_t *s = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_used + (nsize - old) > s->mem_cap)
        return NULL;
    void *p = realloc(ptr, nsize);
    if (!p)
        return NULL;
    s->mem_used = s->mem_used - old + nsize;
    return p;
}

/* Counts across every coroutine (each has its own hook counter). Past the
 * limit it fires on every instruction, so a script that catches the error
 * with pcall cannot keep going. */
static void s_hook(lua_State *L, lua_Debug *ar)
{
    void *ud;
    lua_getallocf(L, &ud);
    slua_t *s = ud;
    s->instr += (uint64_t)lua_gethookcount(L);
    if (s->instr < s->max_instr)
        return;
    lua_sethook(L, s_hook, LUA_MASKCOUNT, 1);
    lua_getinfo(L, "Sl", ar);
    if (ar->currentline > 0)
        lua_pushfstring(L, "instruction limit (%I) exceeded at %s:%d",
                        (lua_Integer)s->max_instr, ar->short_src,
                        ar->currentline);
    else
        lua_pushfstring(L, "instruction limit (%I) exceeded",
                        (lua_Integer)s->max_instr);
    lua_error(L);
}

static void s_arm(slua_t *s)
{
    s->instr = 0;
    uint64_t step = s->max_instr < HOOK_STEP ? s->max_instr : HOOK_STEP;
    lua_sethook(s->L, s_hook, LUA_MASKCOUNT, (int)step);
}

static void s_disarm(slua_t *s)
{
    lua_sethook(s->L, NULL, 0, 0);
}

/* The standard libraries minus io, package, debug, dofile, loadfile and
 * most of os: a script transforms records; it has no business with files
 * or exit(). */
static int s_open_libs(lua_State *L)
{
    static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                    {LUA_COLIBNAME, luaopen_coroutine},
                                    {LUA_TABLIBNAME, luaopen_table},
                                    {LUA_STRLIBNAME, luaopen_string},
                                    {LUA_MATHLIBNAME, luaopen_math},
                                    {LUA_UTF8LIBNAME, luaopen_utf8},
                                    {NULL, NULL}};
    for (const luaL_Reg *l = libs; l->name; l++) {
        luaL_requiref(L, l->name, l->func, 1);
        lua_pop(L, 1);
    }
    static const char *const os_keep[] = {"time", "clock", "date", "difftime",
                                          NULL};
    luaopen_os(L);
    lua_createtable(L, 0, 4);
    for (const char *const *k = os_keep; *k; k++) {
        lua_getfield(L, -2, *k);
        lua_setfield(L, -2, *k);
    }
    lua_setglobal(L, "os");
    lua_pop(L, 1);
    for (const char *const *g = (const char *const[]){"dofile", "loadfile",
                                                       NULL};
         *g; g++) {
        lua_pushnil(L);
        lua_setglobal(L, *g);
    }
    /* Text only: a crafted binary chunk can crash the VM. */
    if (luaL_dostring(L, "local load0 = load\n"
                         "load = function(chunk, name, _, env)\n"
                         "  return load0(chunk, name, 't', env)\n"
                         "end\n") != LUA_OK)
        return lua_error(L);
    slua_open(L);
    return 0;
}

static const char *s_errmsg(lua_State *L, int status, const slua_t *s,
                            char *buf, size_t len)
{
    if (status == LUA_ERRMEM) {
        snprintf(buf, len, "memory limit (%zu MB) exceeded",
                 s->mem_cap >> 20);
        return buf;
    }
    const char *m = lua_tostring(L, -1);
    if (m)
        return m;
    snprintf(buf, len, "error object is a %s value", luaL_typename(L, -1));
    return buf;
}

/* ---- config to Lua (init's args) ---------------------------------------------- */

static void s_push_config(lua_State *L, const sl_config_t *n, int depth)
{
    if (depth > SLUA_MAX_DEPTH)
        luaL_error(L, "args nested deeper than %d levels", SLUA_MAX_DEPTH);
    luaL_checkstack(L, 4, "args");
    int64_t i;
    double d;
    int b;
    switch (sl_config_type(n)) {
    case SL_CONFIG_NULL:
        lua_getglobal(L, "sluice");
        lua_getfield(L, -1, "null");
        lua_remove(L, -2);
        return;
    case SL_CONFIG_BOOL:
        sl_config_bool(n, &b);
        lua_pushboolean(L, b);
        return;
    case SL_CONFIG_INT:
        if (sl_config_int(n, &i) == 0) {
            lua_pushinteger(L, (lua_Integer)i);
            return;
        }
        break;
    case SL_CONFIG_FLOAT:
        if (sl_config_double(n, &d) == 0) {
            lua_pushnumber(L, (lua_Number)d);
            return;
        }
        break;
    case SL_CONFIG_SEQ: {
        size_t len = sl_config_len(n);
        lua_createtable(L, (int)len, 0);
        luaL_setmetatable(L, "sluice.array");
        for (size_t k = 0; k < len; k++) {
            s_push_config(L, sl_config_at(n, k), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)k + 1);
        }
        return;
    }
    case SL_CONFIG_MAP: {
        size_t len = sl_config_len(n);
        lua_createtable(L, 0, (int)len);
        for (size_t k = 0; k < len; k++) {
            s_push_config(L, sl_config_value_at(n, k), depth + 1);
            lua_setfield(L, -2, sl_config_key_at(n, k));
        }
        return;
    }
    default:
        break;
    }
    lua_pushstring(L, sl_config_str(n));
}

/* ---- init ---------------------------------------------------------------------- */

/* Protected: runs the loaded chunk (on the stack under the call), finds
 * the functions and calls init(args). */
static int s_setup_cb(lua_State *L)
{
    call_t *c = lua_touserdata(L, 1);
    slua_t *s = c->s;
    const lua_cfg_t *cfg = c->cfg;
    lua_pushvalue(L, 2);
    c->blame = cfg->src_node;
    c->what = "running the script";
    s_arm(s);
    lua_call(L, 0, 0);
    s_disarm(s);
    c->blame = cfg->fn_node ? cfg->fn_node : cfg->src_node;
    c->what = NULL;
    if (lua_getglobal(L, cfg->fn) != LUA_TFUNCTION)
        return luaL_error(L, "the script defines no function '%s' (got %s)",
                          cfg->fn, luaL_typename(L, -1));
    s->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!cfg->init_fn)
        return 0;
    c->blame = cfg->init_node;
    if (lua_getglobal(L, cfg->init_fn) != LUA_TFUNCTION)
        return luaL_error(L, "the script defines no function '%s' (got %s)",
                          cfg->init_fn, luaL_typename(L, -1));
    if (cfg->args)
        s_push_config(L, cfg->args, 1);
    else
        lua_newtable(L);
    c->what = "calling init";
    s_arm(s);
    lua_call(L, 1, 0);
    s_disarm(s);
    return 0;
}

static void s_state_close(slua_t *s)
{
    if (s->L)
        lua_close(s->L);
    s->L = NULL;
}

/* A fresh state with the libraries and the chunk compiled on top; reports
 * a compile error at the script's node. */
static int s_state_open(slua_t *s, const lua_cfg_t *cfg)
{
    s->mem_cap = (size_t)cfg->max_memory_mb << 20;
    s->max_instr = (uint64_t)cfg->max_instructions;
    s->fn_ref = LUA_NOREF;
    s->L = lua_newstate(s_alloc, s);
    if (!s->L)
        return sl_config_error(cfg->src_node,
                               "cannot create a Lua state (memory)");
    lua_pushcfunction(s->L, s_open_libs);
    int st = lua_pcall(s->L, 0, 0, 0);
    if (st == LUA_OK)
        st = luaL_loadbufferx(s->L, cfg->code, cfg->code_len, cfg->chunk,
                              "t");
    if (st != LUA_OK) {
        char buf[96];
        sl_config_error(cfg->src_node, "%s",
                        s_errmsg(s->L, st, s, buf, sizeof buf));
        s_state_close(s);
        return -EINVAL;
    }
    return 0;
}

static int lua_validate(const sl_config_t *cfg)
{
    lua_cfg_t c;
    if (s_cfg_parse(cfg, &c) < 0)
        return -EINVAL;
    /* Compiles without running anything. */
    slua_t s = {0};
    int rc = s_state_open(&s, &c);
    s_state_close(&s);
    s_cfg_fini(&c);
    return rc;
}

static void lua_fini(void *state);

static int lua_init(sl_ctx_t *ctx, const sl_config_t *cfg, void **state)
{
    (void)ctx;
    lua_cfg_t c;
    if (s_cfg_parse(cfg, &c) < 0)
        return -EINVAL;
    slua_t *s = calloc(1, sizeof *s);
    int rc = -ENOMEM;
    if (!s)
        goto fail;
    rc = s_state_open(s, &c);
    if (rc < 0)
        goto fail_state;
    call_t call = {.s = s, .cfg = &c};
    lua_State *L = s->L;
    lua_pushcfunction(L, s_setup_cb);
    lua_insert(L, 1); /* under the chunk */
    lua_pushlightuserdata(L, &call);
    lua_insert(L, 2);
    int st = lua_pcall(L, 2, 0, 0);
    if (st != LUA_OK) {
        s_disarm(s);
        char buf[96];
        const char *m = s_errmsg(L, st, s, buf, sizeof buf);
        if (call.what)
            sl_config_error(call.blame, "%s: %s", call.what, m);
        else
            sl_config_error(call.blame, "%s", m);
        rc = -EINVAL;
        goto fail_state;
    }
    lua_settop(L, 0);
    s_cfg_fini(&c);
    *state = s;
    return 0;
fail_state:
    lua_fini(s);
fail:
    s_cfg_fini(&c);
    return rc;
}

/* ---- per record ---------------------------------------------------------------- */

static void s_emit_one(lua_State *L, const slua_env_t *e, call_t *c, int idx)
{
    msgpack_packer *pk = sl_emit_begin(c->ctx);
    if (!pk)
        luaL_error(L, "cannot emit");
    slua_pack(L, e, idx, pk, 1);
    if (sl_emit_commit(c->ctx) < 0)
        luaL_error(L, "cannot emit");
}

#define RET_MSG "process must return nil, a table or a list of tables, got "

/* Protected: record in, function called, result emitted. A list is
 * checked whole before its first record goes out, so a failed record
 * never leaves part of its output behind. */
static int s_process_cb(lua_State *L)
{
    call_t *c = lua_touserdata(L, 1);
    slua_t *s = c->s;
    slua_env_t e;
    slua_env_push(L, &e, &s->order);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->fn_ref);
    c->in_input = 1;
    slua_push(L, &e, c->map, 1);
    c->in_input = 0;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)sl_record_id(c->rec));
    lua_setfield(L, -2, "id");
    lua_pushinteger(L, (lua_Integer)sl_record_attempts(c->rec));
    lua_setfield(L, -2, "attempts");
    lua_pushinteger(L, (lua_Integer)sl_record_priority(c->rec));
    lua_setfield(L, -2, "priority");
    lua_pushinteger(L, (lua_Integer)sl_record_ts(c->rec));
    lua_setfield(L, -2, "ts");
    s_arm(s);
    lua_call(L, 2, 1);
    s_disarm(s);

    int ret = lua_gettop(L);
    int t = lua_type(L, ret);
    if (t == LUA_TNIL)
        return 0;
    if (t != LUA_TTABLE)
        return luaL_error(L, RET_MSG "%s", luaL_typename(L, ret));
    size_t n;
    if (slua_shape(L, &e, ret, &n) == SLUA_MAP) {
        s_emit_one(L, &e, c, ret);
        return 0;
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, ret, (lua_Integer)i);
        if (!lua_istable(L, -1))
            return luaL_error(L, RET_MSG "a list with a %s at index %d",
                              luaL_typename(L, -1), (int)i);
        size_t m;
        if (slua_shape(L, &e, -1, &m) != SLUA_MAP)
            return luaL_error(L, RET_MSG "a list whose item %d is an array",
                              (int)i);
        slua_pack(L, &e, -1, NULL, 1);
        lua_pop(L, 1);
    }
    for (size_t i = 1; i <= n; i++) {
        lua_rawgeti(L, ret, (lua_Integer)i);
        s_emit_one(L, &e, c, -1);
        lua_pop(L, 1);
    }
    return 0;
}

static int lua_process(void *state, sl_ctx_t *ctx, sl_record_t *rec)
{
    slua_t *s = state;
    const msgpack_object *map;
    int map_rc = stage_record_map(ctx, rec, &map);
    if (map_rc < 0)
        return map_rc;
    call_t call = {.s = s, .ctx = ctx, .rec = rec, .map = map};
    lua_State *L = s->L;
    slua_order_reset(&s->order);
    lua_pushcfunction(L, s_process_cb);
    lua_pushlightuserdata(L, &call);
    int st = lua_pcall(L, 1, 0, 0);
    if (st == LUA_OK)
        return 0;
    s_disarm(s);
    sl_emit_abort(ctx);
    char buf[96];
    const char *why = s_errmsg(L, st, s, buf, sizeof buf);
    /* A value the script cannot be given (an integer above 2^63-1, an ext)
     * is in the record: no retry can change it. A script's own error is
     * retried, since a script may depend on more than the record. */
    int rc = call.in_input && st != LUA_ERRMEM
                 ? sl_ctx_fail(ctx, "lua: %s", why)
                 : sl_ctx_error(ctx, "lua: %s", why);
    lua_settop(L, 0);
    return rc;
}

static void lua_fini(void *state)
{
    slua_t *s = state;
    if (!s)
        return;
    s_state_close(s);
    slua_order_fini(&s->order);
    free(s);
}

SL_STAGE_DEFINE(.name = "lua",
                .summary = "runs a Lua function on each record",
                .kind = SL_STAGE_TRANSFORM, .config_keys = s_keys,
                .validate = lua_validate, .init = lua_init,
                .process = lua_process, .fini = lua_fini);
