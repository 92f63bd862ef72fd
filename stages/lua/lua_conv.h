/*
 * Conversion between msgpack values and Lua values for the lua stage
 * (docs/stages/lua.md has the mapping). Every function here may raise a
 * Lua error, so callers run them under lua_pcall.
 */
#ifndef SL_LUA_CONV_H
#define SL_LUA_CONV_H

#include <lua.h>
#include <msgpack.h>

#include <stddef.h>

/* Containers nested deeper than this fail the record (and catch cycles). */
#define SLUA_MAX_DEPTH 64

/* Remembers the key order of each map taken from the input, so that
 * fields leave in the order they came. Keyed by table address; an entry
 * for a table that was freed and reused only affects the order, never
 * which keys are written. Reused across records. */
typedef struct slua_order {
    const void **tbl;
    const msgpack_object **map;
    size_t cap, used;
} slua_order_t;

/* The stack slots of the marker metatables for the current call. */
typedef struct slua_env {
    int array_mt, map_mt, bin_mt;
    slua_order_t *order;
} slua_env_t;

/* Registers the `sluice` global table and the marker metatables. */
void slua_open(lua_State *L);
/* Pushes the three metatables and fills e with their slots. */
void slua_env_push(lua_State *L, slua_env_t *e, slua_order_t *order);

void slua_order_reset(slua_order_t *o);
void slua_order_fini(slua_order_t *o);

/* Pushes o as a Lua value; depth is the level of o (the record is 1). */
void slua_push(lua_State *L, const slua_env_t *e, const msgpack_object *o,
               int depth);

/* What a table packs as. */
enum { SLUA_MAP = 0, SLUA_ARRAY = 1 };
/* The shape of the table at idx and its number of entries. */
int slua_shape(lua_State *L, const slua_env_t *e, int idx, size_t *n);
/* Packs the value at idx into pk, or only checks that it could be packed
 * when pk is NULL. */
void slua_pack(lua_State *L, const slua_env_t *e, int idx, msgpack_packer *pk,
               int depth);

#endif
