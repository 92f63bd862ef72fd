/*
 * Tokenizer for filter expressions. It validates every token completely
 * (escapes, number syntax) so that the decoders below can work on a span
 * known to be well formed, and it owns error reporting so that every
 * message carries the same "column N: " prefix.
 */
#ifndef FILTER_EXPR_LEX_H
#define FILTER_EXPR_LEX_H

#include "expr_tree.h"

#include <sluice/stage.h>

#include <stddef.h>
#include <stdint.h>

typedef enum tok_type {
    T_EOF,
    T_LPAREN,
    T_RPAREN,
    T_LBRACK,
    T_RBRACK,
    T_COMMA,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_ANDAND,
    T_OROR,
    T_BANG,
    T_INT,
    T_FLOAT,
    T_STRING,
    T_PATH,
    T_KW,
} tok_type_t;

typedef enum kw {
    KW_AND,
    KW_OR,
    KW_NOT,
    KW_IN,
    KW_CONTAINS,
    KW_STARTSWITH,
    KW_ENDSWITH,
    KW_MATCHES,
    KW_EXISTS,
    KW_TRUE,
    KW_FALSE,
    KW_NULL,
} kw_t;

typedef struct tok {
    tok_type_t type;
    kw_t kw;
    size_t off, end; /* source span */
} tok_t;

typedef struct lexer {
    const char *src; /* NUL-terminated */
    size_t len;
    size_t pos;
    tok_t tok; /* the current token */
    char *err;
    size_t errlen;
    int rc; /* first error, sticky: later calls do nothing */
} lexer_t;

/* Starts lexing src and reads the first token. */
void lex_init(lexer_t *lx, const char *src, size_t len, char *err,
              size_t errlen);
/* Advances to the next token; on a lexical error sets lx->rc. */
void lex_next(lexer_t *lx);

/* Record the first error: "column N: <message>" for the character at off,
 * "expected <what> but found <current token>", or out of memory. */
void lex_fail(lexer_t *lx, size_t off, const char *fmt, ...) SL_PRINTF(3, 4);
void lex_expected(lexer_t *lx, const char *what);
void lex_nomem(lexer_t *lx);

/* Decodes the current T_STRING token into buf, which needs room for the
 * token's length (decoding never lengthens text); appends a NUL and returns
 * the decoded length. */
size_t lex_string_value(const lexer_t *lx, char *buf);
/* Number of segments of the current T_PATH token, and their decoded text:
 * buf needs room for the token's length, segs for lex_path_count(). */
size_t lex_path_count(const lexer_t *lx);
void lex_path_value(const lexer_t *lx, char *buf, seg_t *segs);

#endif
