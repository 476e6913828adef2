/* System facts the Swift core needs from glibc's GNU extensions (not visible to Swift's Glibc
 * module, which is imported without _GNU_SOURCE). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <sched.h>

#include "lmx_kernels.h"

int lmxk_cpu_count(void) {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}

const char *lmxk_dl_name(void *handle) {
    struct link_map *map = NULL;
    if (!handle || dlinfo(handle, RTLD_DI_LINKMAP, &map) != 0 || !map) return NULL;
    return map->l_name;
}
