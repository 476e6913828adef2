/* init fails. config "": set_error with a recognisable message, return LMX_ERR_IO.
 * config "silent": return LMX_ERR_FORMAT without a message. "log=PATH": its shutdown (which must
 * never run, since init failed) appends "shutdown" to PATH. */
#include "../plugin_util.h"

static char log_path[1024];

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    config_get(config, "log", log_path, sizeof log_path);
    if (config_get(config, "silent", NULL, 0)) return LMX_ERR_FORMAT;
    host->log(reg, LMX_LOG_WARNING, "init_error: about to fail on purpose");
    host->set_error(reg, "the frobnicator licence expired (code 42)");
    return LMX_ERR_IO;
}

static void shutdown_plugin(void) { append_line(log_path, "shutdown"); }

TEST_PLUGIN("org.loramixer.test.init-error", init, shutdown_plugin)
