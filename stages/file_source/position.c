#include "position.h"

const file_pos_kind_t fs_pos_kind = {
    .magic = {'S', 'L', 'F', 'P'},
    .version = 1,
    .own_mask = 0x03, /* formats 0 to 3 */
    .foreign = "not a file_source position",
};

int fs_fp_get(fs_fp_t *fp, int fd, uint64_t upto, uint32_t *len,
              uint64_t *hash)
{
    long n = file_fp_fill(&fp->head, fd, upto);

    if (n < 0)
        return (int)n;
    size_t want = (size_t)n;
    if (want != fp->hashed_len || want == 0) {
        fp->hash = file_pos_fnv1a(fp->head.buf, want);
        fp->hashed_len = want;
    }
    *len = (uint32_t)want;
    *hash = fp->hash;
    return 0;
}
