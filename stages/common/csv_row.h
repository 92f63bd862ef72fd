/*
 * One CSV row at a time on top of libcsv, shared by csv_parse and
 * file_source (linked into both plugins from sl_stage_common).
 *
 * Dialect: rows end at '\n' only (a '\r' before it is trimmed like a space,
 * so CRLF and LF files read the same and "\r\n" inside quotes is kept);
 * spaces, tabs and '\r' around unquoted fields are trimmed (quote a field
 * to keep them); a quote character inside an unquoted field, or anything
 * but a delimiter or end of line after a closing quote, is an error rather
 * than guessed at; blank lines are no rows.
 */
#ifndef SL_CSV_ROW_H
#define SL_CSV_ROW_H

#include <csv.h>
#include <stddef.h>

typedef struct csv_row {
    struct csv_parser p;
    unsigned char delim;
    unsigned char quote;
    char *buf;      /* bytes of the kept fields, back to back */
    size_t len;
    size_t cap;
    size_t *off;    /* kept field i is buf[off[i] .. off[i + 1]) */
    size_t off_cap;
    size_t keep;    /* fields beyond this many are counted, not stored */
    size_t nfields; /* fields seen in the current row (all, not just kept) */
    size_t rows;    /* rows ended since csv_row_clear */
    size_t first;   /* nfields of the first ended row */
    int oom;
} csv_row_t;

/* 0 or -ENOMEM. keep: see above (SIZE_MAX keeps everything). */
int csv_row_init(csv_row_t *r, unsigned char delim, unsigned char quote,
                 size_t keep);
void csv_row_fini(csv_row_t *r);

/* Feeds text. Returns 0, -EBADMSG on a misplaced quote (the parser is reset
 * and the row so far dropped), or -ENOMEM. r->rows counts ended rows. */
int csv_row_feed(csv_row_t *r, const void *text, size_t len);
/* Ends the input: a row without its final newline is ended. -EBADMSG if a
 * quoted field was never closed (the parser is reset). */
int csv_row_end(csv_row_t *r);
/* Forgets the fields and row count, ready for the next row. */
void csv_row_clear(csv_row_t *r);
/* Drops any row in progress inside libcsv as well (after an error). */
void csv_row_reset(csv_row_t *r);

/* Kept field i of the first row (i < keep and i < first). */
static inline const char *csv_row_field(const csv_row_t *r, size_t i,
                                        size_t *len)
{
    *len = r->off[i + 1] - r->off[i];
    /* A row of empty fields never allocated its buffer. */
    return r->buf ? r->buf + r->off[i] : "";
}

#endif
