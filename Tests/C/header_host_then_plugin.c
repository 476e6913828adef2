/* Both public headers in one translation unit, host header first (see `make -C Tests/C header-check`):
 * the shared types of loramixer_common.h must be defined once, without redefinition warnings. */
#include "loramixer.h"
#include "loramixer_plugin.h"
