/* Both public headers in one translation unit, plugin header first (see `make -C Tests/C header-check`). */
#include "loramixer_plugin.h"
#include "loramixer.h"
