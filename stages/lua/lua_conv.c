/*
 * msgpack <-> Lua. Maps and arrays from the input carry a marker
 * metatable so that they go back out as what they came in as (an empty
 * array stays an array, a map with keys 1..n stays a map); tables the
 * script makes itself are judged by their keys.
 */
#include "lua_conv.h"

#include <lauxlib.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MT_ARRAY "sluice.array"
#define MT_MAP "sluice.map"
#define MT_BIN "sluice.bin"

/* Its address is sluice.null, a light userdata no script can forge. */
static const char s_null_tag;

/* ---- key order ------------------------------------------------------------ */

static size_t s_hash(const void *p, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

void slua_order_reset(slua_order_t *o)
{
    if (o->used)
        memset(o->tbl, 0, o->cap * sizeof *o->tbl);
    o->used = 0;
}

void slua_order_fini(slua_order_t *o)
{
    free(o->tbl);
    free(o->map);
    memset(o, 0, sizeof *o);
}

static int s_order_grow(slua_order_t *o)
{
    size_t cap = o->cap ? o->cap * 2 : 64;
    const void **tbl = calloc(cap, sizeof *tbl);
    const msgpack_object **map = calloc(cap, sizeof *map);
    if (!tbl || !map) {
        free(tbl);
        free(map);
        return -1;
    }
    for (size_t i = 0; i < o->cap; i++) {
        if (!o->tbl[i])
            continue;
        size_t j = s_hash(o->tbl[i], cap);
        while (tbl[j])
            j = (j + 1) & (cap - 1);
        tbl[j] = o->tbl[i];
        map[j] = o->map[i];
    }
    free(o->tbl);
    free(o->map);
    o->tbl = tbl;
    o->map = map;
    o->cap = cap;
    return 0;
}

/* Out of memory only costs the order of this map, so it is not an error. */
static void s_order_put(slua_order_t *o, const void *t, const msgpack_object *m)
{
    if ((o->used + 1) * 2 > o->cap && s_order_grow(o) < 0)
        return;
    size_t j = s_hash(t, o->cap);
    while (o->tbl[j] && o->tbl[j] != t)
        j = (j + 1) & (o->cap - 1);
    if (!o->tbl[j])
        o->used++;
    o->tbl[j] = t;
    o->map[j] = m;
}

static const msgpack_object *s_order_get(const slua_order_t *o, const void *t)
{
    if (!o->used)
        return NULL;
    size_t j = s_hash(t, o->cap);
    while (o->tbl[j]) {
        if (o->tbl[j] == t)
            return o->map[j];
        j = (j + 1) & (o->cap - 1);
    }
    return NULL;
}

/* ---- the sluice library ---------------------------------------------------- */

static int s_bin_new(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    void *p = lua_newuserdatauv(L, len, 0);
    if (len)
        memcpy(p, s, len);
    luaL_setmetatable(L, MT_BIN);
    return 1;
}

static int s_bin_tostring(lua_State *L)
{
    lua_pushlstring(L, luaL_checkudata(L, 1, MT_BIN), lua_rawlen(L, 1));
    return 1;
}

static int s_bin_len(lua_State *L)
{
    luaL_checkudata(L, 1, MT_BIN);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, 1));
    return 1;
}

static int s_bin_eq(lua_State *L)
{
    const void *a = luaL_testudata(L, 1, MT_BIN);
    const void *b = luaL_testudata(L, 2, MT_BIN);
    size_t n = lua_rawlen(L, 1);
    lua_pushboolean(L, a && b && n == lua_rawlen(L, 2) &&
                           (n == 0 || !memcmp(a, b, n)));
    return 1;
}

static int s_mark(lua_State *L, const char *mt)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_setmetatable(L, mt);
    return 1;
}

static int s_array(lua_State *L)
{
    return s_mark(L, MT_ARRAY);
}

static int s_map(lua_State *L)
{
    return s_mark(L, MT_MAP);
}

void slua_open(lua_State *L)
{
    static const luaL_Reg bin_meta[] = {{"__tostring", s_bin_tostring},
                                        {"__len", s_bin_len},
                                        {"__eq", s_bin_eq},
                                        {NULL, NULL}};
    static const luaL_Reg lib[] = {{"bin", s_bin_new},
                                   {"array", s_array},
                                   {"map", s_map},
                                   {NULL, NULL}};
    luaL_newmetatable(L, MT_BIN);
    luaL_setfuncs(L, bin_meta, 0);
    luaL_newmetatable(L, MT_ARRAY);
    luaL_newmetatable(L, MT_MAP);
    lua_pop(L, 3);
    luaL_newlib(L, lib);
    lua_pushlightuserdata(L, (void *)&s_null_tag);
    lua_setfield(L, -2, "null");
    lua_setglobal(L, "sluice");
}

void slua_env_push(lua_State *L, slua_env_t *e, slua_order_t *order)
{
    luaL_getmetatable(L, MT_ARRAY);
    e->array_mt = lua_gettop(L);
    luaL_getmetatable(L, MT_MAP);
    e->map_mt = lua_gettop(L);
    luaL_getmetatable(L, MT_BIN);
    e->bin_mt = lua_gettop(L);
    e->order = order;
}

/* ---- msgpack to Lua ------------------------------------------------------- */

static void s_enter(lua_State *L, int depth)
{
    if (depth > SLUA_MAX_DEPTH)
        luaL_error(L, "value nested deeper than %d levels", SLUA_MAX_DEPTH);
    luaL_checkstack(L, 8, "nesting");
}

void slua_push(lua_State *L, const slua_env_t *e, const msgpack_object *o,
               int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        lua_pushlightuserdata(L, (void *)&s_null_tag);
        return;
    case MSGPACK_OBJECT_BOOLEAN:
        lua_pushboolean(L, o->via.boolean);
        return;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        if (o->via.u64 > (uint64_t)INT64_MAX) {
            char num[24];
            snprintf(num, sizeof num, "%" PRIu64, o->via.u64);
            luaL_error(L, "integer %s is above the Lua integer range (2^63-1)",
                       num);
        }
        lua_pushinteger(L, (lua_Integer)o->via.u64);
        return;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        lua_pushinteger(L, (lua_Integer)o->via.i64);
        return;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        lua_pushnumber(L, (lua_Number)o->via.f64);
        return;
    case MSGPACK_OBJECT_STR:
        lua_pushlstring(L, o->via.str.ptr, o->via.str.size);
        return;
    case MSGPACK_OBJECT_BIN: {
        void *p = lua_newuserdatauv(L, o->via.bin.size, 0);
        if (o->via.bin.size)
            memcpy(p, o->via.bin.ptr, o->via.bin.size);
        lua_pushvalue(L, e->bin_mt);
        lua_setmetatable(L, -2);
        return;
    }
    case MSGPACK_OBJECT_ARRAY: {
        s_enter(L, depth);
        uint32_t n = o->via.array.size;
        lua_createtable(L, (int)(n > INT32_MAX ? INT32_MAX : n), 0);
        lua_pushvalue(L, e->array_mt);
        lua_setmetatable(L, -2);
        for (uint32_t i = 0; i < n; i++) {
            slua_push(L, e, &o->via.array.ptr[i], depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        return;
    }
    case MSGPACK_OBJECT_MAP: {
        s_enter(L, depth);
        uint32_t n = o->via.map.size;
        lua_createtable(L, 0, (int)(n > INT32_MAX ? INT32_MAX : n));
        lua_pushvalue(L, e->map_mt);
        lua_setmetatable(L, -2);
        /* A key seen twice (or 1 and 1.0) would be written twice in the
         * remembered order: such a map goes out in table order instead. */
        int dup = 0;
        for (uint32_t i = 0; i < n; i++) {
            slua_push(L, e, &o->via.map.ptr[i].key, depth + 1);
            if (!dup) {
                lua_pushvalue(L, -1);
                if (lua_rawget(L, -3) != LUA_TNIL)
                    dup = 1;
                lua_pop(L, 1);
            }
            slua_push(L, e, &o->via.map.ptr[i].val, depth + 1);
            lua_rawset(L, -3);
        }
        if (!dup && n > 0)
            s_order_put(e->order, lua_topointer(L, -1), o);
        return;
    }
    default:
        luaL_error(L, "msgpack ext values are not supported (type %d)",
                   o->type == MSGPACK_OBJECT_EXT ? (int)o->via.ext.type : -1);
    }
}

/* ---- Lua to msgpack ------------------------------------------------------- */

int slua_shape(lua_State *L, const slua_env_t *e, int idx, size_t *n)
{
    idx = lua_absindex(L, idx);
    int marked = -1;
    if (lua_getmetatable(L, idx)) {
        if (lua_rawequal(L, -1, e->map_mt))
            marked = SLUA_MAP;
        else if (lua_rawequal(L, -1, e->array_mt))
            marked = SLUA_ARRAY;
        lua_pop(L, 1);
    }
    size_t count = 0;
    lua_Integer max = 0;
    int seq = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        count++;
        if (seq) {
            int isint = lua_isinteger(L, -2);
            lua_Integer k = isint ? lua_tointeger(L, -2) : 0;
            if (!isint || k < 1)
                seq = 0;
            else if (k > max)
                max = k;
        }
        lua_pop(L, 1);
    }
    /* count distinct keys, all in 1..count: exactly 1..count */
    seq = seq && (size_t)max <= count;
    *n = count;
    if (marked == SLUA_MAP)
        return SLUA_MAP;
    if (seq && count > 0)
        return SLUA_ARRAY;
    if (marked == SLUA_ARRAY) {
        if (count == 0)
            return SLUA_ARRAY;
        luaL_error(L, "a table marked as an array has keys other than 1..n");
    }
    return SLUA_MAP;
}

static void s_check(lua_State *L, int rc)
{
    if (rc < 0)
        luaL_error(L, "out of memory packing the output");
}

/* Pushes a scalar key of an input map as the Lua key it became; 0 (and
 * nothing pushed) for keys that cannot be looked up again (bin and
 * containers are new objects each time). */
static int s_push_key(lua_State *L, const msgpack_object *k)
{
    switch (k->type) {
    case MSGPACK_OBJECT_NIL:
        lua_pushlightuserdata(L, (void *)&s_null_tag);
        return 1;
    case MSGPACK_OBJECT_BOOLEAN:
        lua_pushboolean(L, k->via.boolean);
        return 1;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        lua_pushinteger(L, (lua_Integer)k->via.u64);
        return 1;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        lua_pushinteger(L, (lua_Integer)k->via.i64);
        return 1;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        lua_pushnumber(L, (lua_Number)k->via.f64);
        return 1;
    case MSGPACK_OBJECT_STR:
        lua_pushlstring(L, k->via.str.ptr, k->via.str.size);
        return 1;
    default:
        return 0;
    }
}

/* Whether the Lua key at idx is one that s_push_key gives for a key of m
 * (and so was written in the ordered pass). */
static int s_in_order(lua_State *L, int idx, const msgpack_object *m)
{
    int t = lua_type(L, idx);
    size_t len = 0;
    const char *s = t == LUA_TSTRING ? lua_tolstring(L, idx, &len) : NULL;
    int isint = t == LUA_TNUMBER && lua_isinteger(L, idx);
    lua_Integer i = isint ? lua_tointeger(L, idx) : 0;
    lua_Number d = t == LUA_TNUMBER ? lua_tonumber(L, idx) : 0;
    for (uint32_t j = 0; j < m->via.map.size; j++) {
        const msgpack_object *k = &m->via.map.ptr[j].key;
        switch (k->type) {
        case MSGPACK_OBJECT_STR:
            if (s && k->via.str.size == len &&
                (len == 0 || !memcmp(s, k->via.str.ptr, len)))
                return 1;
            break;
        case MSGPACK_OBJECT_POSITIVE_INTEGER:
            if (isint && i >= 0 && (uint64_t)i == k->via.u64)
                return 1;
            break;
        case MSGPACK_OBJECT_NEGATIVE_INTEGER:
            if (isint && i == k->via.i64)
                return 1;
            break;
        case MSGPACK_OBJECT_FLOAT32:
        case MSGPACK_OBJECT_FLOAT64:
            /* Lua stores an integral float key as an integer */
            if (t == LUA_TNUMBER && d == k->via.f64)
                return 1;
            break;
        case MSGPACK_OBJECT_BOOLEAN:
            if (t == LUA_TBOOLEAN && lua_toboolean(L, idx) == k->via.boolean)
                return 1;
            break;
        case MSGPACK_OBJECT_NIL:
            if (t == LUA_TLIGHTUSERDATA &&
                lua_touserdata(L, idx) == (void *)&s_null_tag)
                return 1;
            break;
        default:
            break;
        }
    }
    return 0;
}

static void s_pack_map(lua_State *L, const slua_env_t *e, int idx,
                       msgpack_packer *pk, int depth, size_t n)
{
    if (pk)
        s_check(L, msgpack_pack_map(pk, n));
    const msgpack_object *om = s_order_get(e->order, lua_topointer(L, idx));
    size_t done = 0;
    if (om) {
        for (uint32_t j = 0; j < om->via.map.size; j++) {
            if (!s_push_key(L, &om->via.map.ptr[j].key))
                continue;
            lua_pushvalue(L, -1);
            if (lua_rawget(L, idx) == LUA_TNIL) {
                lua_pop(L, 2);
                continue;
            }
            slua_pack(L, e, -2, pk, depth + 1);
            slua_pack(L, e, -1, pk, depth + 1);
            lua_pop(L, 2);
            done++;
        }
    }
    if (done == n)
        return;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (!om || !s_in_order(L, -2, om)) {
            slua_pack(L, e, -2, pk, depth + 1);
            slua_pack(L, e, -1, pk, depth + 1);
        }
        lua_pop(L, 1);
    }
}

void slua_pack(lua_State *L, const slua_env_t *e, int idx, msgpack_packer *pk,
               int depth)
{
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        if (pk)
            s_check(L, msgpack_pack_nil(pk));
        return;
    case LUA_TBOOLEAN:
        if (pk)
            s_check(L, lua_toboolean(L, idx) ? msgpack_pack_true(pk)
                                             : msgpack_pack_false(pk));
        return;
    case LUA_TNUMBER:
        if (!pk)
            return;
        if (lua_isinteger(L, idx))
            s_check(L, msgpack_pack_int64(pk, (int64_t)lua_tointeger(L, idx)));
        else
            s_check(L, msgpack_pack_double(pk, (double)lua_tonumber(L, idx)));
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        if (pk) {
            s_check(L, msgpack_pack_str(pk, len));
            s_check(L, msgpack_pack_str_body(pk, s, len));
        }
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) != (void *)&s_null_tag)
            break;
        if (pk)
            s_check(L, msgpack_pack_nil(pk));
        return;
    case LUA_TUSERDATA: {
        if (!lua_getmetatable(L, idx))
            break;
        int bin = lua_rawequal(L, -1, e->bin_mt);
        lua_pop(L, 1);
        if (!bin)
            break;
        size_t len = lua_rawlen(L, idx);
        if (pk) {
            s_check(L, msgpack_pack_bin(pk, len));
            s_check(L, msgpack_pack_bin_body(pk, lua_touserdata(L, idx), len));
        }
        return;
    }
    case LUA_TTABLE: {
        s_enter(L, depth);
        size_t n;
        if (slua_shape(L, e, idx, &n) == SLUA_MAP) {
            s_pack_map(L, e, idx, pk, depth, n);
            return;
        }
        if (pk)
            s_check(L, msgpack_pack_array(pk, n));
        for (size_t i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            slua_pack(L, e, -1, pk, depth + 1);
            lua_pop(L, 1);
        }
        return;
    }
    default:
        break;
    }
    luaL_error(L, "cannot convert a %s value to msgpack", luaL_typename(L, idx));
}
