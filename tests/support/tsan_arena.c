/* Preloaded into the ThreadSanitizer suite (`make tsan`), never linked into
 * sluice.
 *
 * Criterion's sandbox places its shared arena at a random 16 MiB step in
 * [0x2000'0000'0000, 0x6000'0000'0000), drawn with rand_r, checks that the
 * pages are free and gives up after ten draws ("Could not initialize
 * inheritable arena"). ThreadSanitizer reserves almost all of that range for
 * its shadow and protected gaps: only [0x5500'0000'0000, 0x5680'0000'0000),
 * where position-independent executables load, stays free, so nearly every
 * run of a test binary would fail before its first test.
 *
 * This rand_r answers Criterion's draws with steps inside that window (still
 * random, so two arenas rarely meet, and Criterion still checks that the
 * pages are free) and passes every other caller to the C library: every
 * process the suites start (the `sluice` CLI, PostgreSQL, a shell) inherits
 * the preload. */
#include <dlfcn.h>
#include <string.h>

/* In Criterion's 16 MiB steps from its base, 0x2000'0000'0000: */
#define WINDOW_LO 0x350000u   /* 0x5500'0000'0000 */
#define WINDOW_STEPS 0x17000u /* up to 0x5670'0000'0000 */

typedef int rand_r_fn(unsigned *);

static int s_from_criterion(const void *caller)
{
    Dl_info info;
    return dladdr(caller, &info) && info.dli_fname &&
           strstr(info.dli_fname, "libcriterion");
}

static rand_r_fn *s_real;

/* Before main: no thread can draw yet. */
__attribute__((constructor)) static void s_init(void)
{
    s_real = (rand_r_fn *)dlsym(RTLD_NEXT, "rand_r");
}

int rand_r(unsigned *seed)
{
    int r = s_real(seed);
    if (!s_from_criterion(__builtin_return_address(0)))
        return r;
    return (int)(WINDOW_LO + (unsigned)r % WINDOW_STEPS);
}
