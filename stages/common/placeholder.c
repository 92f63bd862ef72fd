/* replaced by the shared stage helpers */
typedef int sl__placeholder_t;
