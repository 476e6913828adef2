/* dlopen_time LIB: prints the microseconds that dlopen(LIB, RTLD_NOW) and a first lmx_version()
 * call take (see bench/footprint.sh). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <time.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s LIB\n", argv[0]);
        return 64;
    }
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen_time: %s\n", dlerror());
        return 1;
    }
    const char *(*version)(void) = (const char *(*)(void))dlsym(lib, "lmx_version");
    if (!version) {
        fprintf(stderr, "dlopen_time: no lmx_version in %s\n", argv[1]);
        return 1;
    }
    const char *v = version();
    clock_gettime(CLOCK_MONOTONIC, &end);
    if (!v || !*v) return 1;
    printf("%.0f\n", (end.tv_sec - start.tv_sec) * 1e6 + (end.tv_nsec - start.tv_nsec) / 1e3);
    return 0;
}
