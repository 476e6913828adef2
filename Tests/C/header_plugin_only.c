/* A translation unit that includes only the plugin header: it must compile warning-free as C11 and
 * C++17 with gcc/g++ and clang/clang++ (see `make -C Tests/C header-check`). */
#include "loramixer_plugin.h"
