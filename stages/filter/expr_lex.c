/* Tokenizer and token decoders for filter expressions. */
#include "expr_lex.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const s_keywords[] = {
    [KW_AND] = "and",           [KW_OR] = "or",
    [KW_NOT] = "not",           [KW_IN] = "in",
    [KW_CONTAINS] = "contains", [KW_STARTSWITH] = "startswith",
    [KW_ENDSWITH] = "endswith", [KW_MATCHES] = "matches",
    [KW_EXISTS] = "exists",     [KW_TRUE] = "true",
    [KW_FALSE] = "false",       [KW_NULL] = "null",
};
#define NKEYWORDS (sizeof(s_keywords) / sizeof(s_keywords[0]))

static int is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_ident(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9');
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Columns count characters, not bytes, so that they match what an editor
 * shows for a non-ASCII expression. */
static unsigned column_of(const lexer_t *p, size_t off)
{
    unsigned col = 1;
    for (size_t i = 0; i < off && i < p->len; i++)
        if (((unsigned char)p->src[i] & 0xC0) != 0x80)
            col++;
    return col;
}

void lex_fail(lexer_t *p, size_t off, const char *fmt, ...)
{
    if (p->rc)
        return;
    p->rc = -EINVAL;
    if (!p->errlen)
        return;
    int n = snprintf(p->err, p->errlen, "column %u: ", column_of(p, off));
    if (n < 0 || (size_t)n >= p->errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

void lex_nomem(lexer_t *p)
{
    if (p->rc)
        return;
    p->rc = -ENOMEM;
    if (p->errlen)
        snprintf(p->err, p->errlen, "out of memory");
}

/* Describes the current token for "but found ...". */
static void describe_tok(const lexer_t *p, char *buf, size_t n)
{
    const tok_t *t = &p->tok;
    if (t->type == T_EOF) {
        snprintf(buf, n, "end of expression");
        return;
    }
    size_t len = t->end - t->off;
    if (len > 24)
        snprintf(buf, n, "'%.24s...'", p->src + t->off);
    else
        snprintf(buf, n, "'%.*s'", (int)len, p->src + t->off);
}

void lex_expected(lexer_t *p, const char *what)
{
    char found[48];
    describe_tok(p, found, sizeof found);
    lex_fail(p, p->tok.off, "expected %s but found %s", what, found);
}

static int is_hex4(const char *s)
{
    for (int k = 0; k < 4; k++)
        if (!isxdigit((unsigned char)s[k]))
            return 0;
    return 1;
}

static unsigned hex4(const char *s)
{
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[k];
        v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

/* Scans a quoted string starting at p->pos (on the quote) and checks its
 * escapes; decoding happens later, in decode_string(), on a valid span.
 * The source is NUL-terminated, so looking a few bytes ahead is safe: a
 * NUL stops every check before the end. */
static void lex_string(lexer_t *p)
{
    const char *s = p->src;
    char q = s[p->pos];
    size_t i = p->pos + 1;
    while (i < p->len && s[i] != q) {
        if (s[i] != '\\') {
            i++;
            continue;
        }
        size_t esc = i;
        char c = s[i + 1];
        if (c && strchr("\"'\\/nrtbf", c)) {
            i += 2;
            continue;
        }
        if (c != 'u') {
            lex_fail(p, esc, "invalid escape '\\%c' in string", c ? c : ' ');
            return;
        }
        if (!is_hex4(s + i + 2)) {
            lex_fail(p, esc, "'\\u' needs four hex digits");
            return;
        }
        unsigned cp = hex4(s + i + 2);
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF && s[i] == '\\' && s[i + 1] == 'u' &&
            is_hex4(s + i + 2) && hex4(s + i + 2) >= 0xDC00 &&
            hex4(s + i + 2) <= 0xDFFF) {
            i += 6;
        } else if (cp >= 0xD800 && cp <= 0xDFFF) {
            lex_fail(p, esc, "unpaired surrogate '\\u%04X'", cp);
            return;
        }
    }
    if (i >= p->len) {
        lex_fail(p, p->pos, "unterminated string");
        return;
    }
    p->tok.type = T_STRING;
    p->pos = i + 1;
}

/* One path segment at p->pos: an identifier or a `backticked` name. */
static int lex_segment(lexer_t *p)
{
    const char *s = p->src;
    size_t i = p->pos;
    if (is_ident_start((unsigned char)s[i])) {
        while (i < p->len && is_ident((unsigned char)s[i]))
            i++;
        p->pos = i;
        return 0;
    }
    /* s[i] == '`' */
    size_t start = i++;
    while (i < p->len && s[i] != '`') {
        if (s[i] == '\\') {
            if (i + 1 < p->len && (s[i + 1] == '`' || s[i + 1] == '\\')) {
                i += 2;
                continue;
            }
            lex_fail(p, i, "invalid escape in `name` (only \\` and \\\\)");
            return -1;
        }
        i++;
    }
    if (i >= p->len) {
        lex_fail(p, start, "unterminated `name`");
        return -1;
    }
    if (i == start + 1) {
        lex_fail(p, start, "empty field name ``");
        return -1;
    }
    p->pos = i + 1;
    return 0;
}

static void lex_path_or_word(lexer_t *p)
{
    size_t start = p->pos;
    int bare = is_ident_start((unsigned char)p->src[start]);
    if (lex_segment(p) < 0)
        return;
    if (bare && p->src[p->pos] != '.') {
        size_t n = p->pos - start;
        for (size_t k = 0; k < NKEYWORDS; k++) {
            if (strlen(s_keywords[k]) == n &&
                !memcmp(p->src + start, s_keywords[k], n)) {
                p->tok.type = T_KW;
                p->tok.kw = (kw_t)k;
                return;
            }
        }
    }
    while (p->src[p->pos] == '.') {
        unsigned char c = (unsigned char)p->src[p->pos + 1];
        if (!is_ident_start(c) && c != '`') {
            lex_fail(p, p->pos + 1, "expected a field name after '.'");
            return;
        }
        p->pos++;
        if (lex_segment(p) < 0)
            return;
    }
    p->tok.type = T_PATH;
}

static void lex_number(lexer_t *p)
{
    const char *s = p->src;
    size_t i = p->pos;
    int is_float = 0;
    if (s[i] == '-')
        i++;
    while (is_digit((unsigned char)s[i]))
        i++;
    if (s[i] == '.') {
        is_float = 1;
        i++;
        if (!is_digit((unsigned char)s[i]))
            goto bad;
        while (is_digit((unsigned char)s[i]))
            i++;
    }
    if (s[i] == 'e' || s[i] == 'E') {
        is_float = 1;
        i++;
        if (s[i] == '+' || s[i] == '-')
            i++;
        if (!is_digit((unsigned char)s[i]))
            goto bad;
        while (is_digit((unsigned char)s[i]))
            i++;
    }
    if (is_ident((unsigned char)s[i]) || s[i] == '.' || s[i] == '`')
        goto bad;
    p->tok.type = is_float ? T_FLOAT : T_INT;
    p->pos = i;
    return;
bad:
    lex_fail(p, p->pos, "malformed number");
}

/* Quotes a whole UTF-8 character when the bytes form one, so that the
 * message shows what the user typed; other bytes are shown in hex. */
static void unexpected_char(lexer_t *p)
{
    const unsigned char *u = (const unsigned char *)p->src + p->pos;
    size_t n = u[0] >= 0xF0 ? 4 : u[0] >= 0xE0 ? 3 : u[0] >= 0xC0 ? 2 : 1;
    for (size_t k = 1; k < n; k++)
        if ((u[k] & 0xC0) != 0x80)
            n = 0;
    if (n == 1 && (u[0] < 0x21 || u[0] >= 0x7f))
        n = 0;
    if (n)
        lex_fail(p, p->pos, "unexpected character '%.*s'", (int)n,
                 (const char *)u);
    else
        lex_fail(p, p->pos, "unexpected byte 0x%02X", u[0]);
}

void lex_next(lexer_t *p)
{
    const char *s = p->src;
    if (p->rc)
        return;
    while (p->pos < p->len && strchr(" \t\r\n", s[p->pos]))
        p->pos++;
    tok_t *t = &p->tok;
    t->off = p->pos;
    if (p->pos >= p->len) {
        t->type = T_EOF;
        t->end = p->pos;
        return;
    }
    char c = s[p->pos], c1 = s[p->pos + 1];
    switch (c) {
    case '(':
        t->type = T_LPAREN;
        p->pos++;
        break;
    case ')':
        t->type = T_RPAREN;
        p->pos++;
        break;
    case '[':
        t->type = T_LBRACK;
        p->pos++;
        break;
    case ']':
        t->type = T_RBRACK;
        p->pos++;
        break;
    case ',':
        t->type = T_COMMA;
        p->pos++;
        break;
    case '=':
        if (c1 != '=') {
            lex_fail(p, p->pos, "expected '==' but found '='");
            return;
        }
        t->type = T_EQ;
        p->pos += 2;
        break;
    case '!':
        t->type = c1 == '=' ? T_NE : T_BANG;
        p->pos += c1 == '=' ? 2 : 1;
        break;
    case '<':
        t->type = c1 == '=' ? T_LE : T_LT;
        p->pos += c1 == '=' ? 2 : 1;
        break;
    case '>':
        t->type = c1 == '=' ? T_GE : T_GT;
        p->pos += c1 == '=' ? 2 : 1;
        break;
    case '&':
    case '|':
        if (c1 != c) {
            lex_fail(p, p->pos, "expected '%c%c' but found '%c'", c, c, c);
            return;
        }
        t->type = c == '&' ? T_ANDAND : T_OROR;
        p->pos += 2;
        break;
    case '"':
    case '\'': lex_string(p); break;
    default:
        if (is_ident_start((unsigned char)c) || c == '`') {
            lex_path_or_word(p);
        } else if (is_digit((unsigned char)c) ||
                   (c == '-' && is_digit((unsigned char)c1))) {
            lex_number(p);
        } else {
            unexpected_char(p);
        }
        break;
    }
    t->end = p->pos;
}

void lex_init(lexer_t *p, const char *src, size_t len, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    p->src = src;
    p->len = len;
    p->err = err;
    p->errlen = errlen;
    lex_next(p);
}

static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The lexer has checked every escape, so this only translates. */
size_t lex_string_value(const lexer_t *p, char *buf)
{
    const char *s = p->src + p->tok.off + 1;
    size_t n = p->tok.end - p->tok.off - 2;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\') {
            buf[o++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        i += 2;
        switch (c) {
        case 'n': buf[o++] = '\n'; break;
        case 'r': buf[o++] = '\r'; break;
        case 't': buf[o++] = '\t'; break;
        case 'b': buf[o++] = '\b'; break;
        case 'f': buf[o++] = '\f'; break;
        case 'u': {
            unsigned cp = hex4(s + i);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) +
                     (hex4(s + i + 2) - 0xDC00);
                i += 6;
            }
            o += put_utf8(buf + o, cp);
            break;
        }
        default: buf[o++] = c; break; /* \" \' \\ \/ */
        }
    }
    buf[o] = '\0';
    return o;
}

size_t lex_path_count(const lexer_t *p)
{
    const char *s = p->src + p->tok.off;
    size_t n = p->tok.end - p->tok.off;
    size_t nseg = 1;
    int inq = 0;
    for (size_t i = 0; i < n; i++) {
        if (inq && s[i] == '\\')
            i++;
        else if (s[i] == '`')
            inq = !inq;
        else if (!inq && s[i] == '.')
            nseg++;
    }
    return nseg;
}

void lex_path_value(const lexer_t *p, char *buf, seg_t *segs)
{
    const char *s = p->src + p->tok.off;
    size_t n = p->tok.end - p->tok.off;
    size_t o = 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        segs[k].ptr = buf + o;
        if (s[i] == '`') {
            for (i++; s[i] != '`'; i++) {
                if (s[i] == '\\')
                    i++;
                buf[o++] = s[i];
            }
            i++;
        } else {
            while (i < n && s[i] != '.')
                buf[o++] = s[i++];
        }
        segs[k].len = (size_t)(buf + o - segs[k].ptr);
        k++;
        /* s[i] is now '.' or the end */
    }
}
