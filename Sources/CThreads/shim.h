// Thread names (Swift's Glibc module leaves out pthread_setname_np, which needs
// _GNU_SOURCE, and prctl, which is variadic).
#ifndef CTHREADS_SHIM_H
#define CTHREADS_SHIM_H
#include <sys/prctl.h>

/// Names the calling thread (Linux keeps the first 15 bytes); 0 on success.
static inline int cthreads_name_self(const char *name) {
    return prctl(PR_SET_NAME, (unsigned long)name, 0UL, 0UL, 0UL);
}
#endif
