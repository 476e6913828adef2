/* A LoRA registration that the host must refuse.
 * config "mode=copied|borrowed|rank0;return=ok|status;log=PATH":
 *   copied    q_proj of layer 0 declared 64 -> 64 (the fixture's q_proj is 64 -> 96): LMX_ERR_SHAPE
 *   borrowed  the same, borrowed: release appends "release misfit" to PATH
 *   rank0     a borrowed LoRA with rank 0: LMX_ERR_INVALID_ARGUMENT; release appends as above
 * A refused registration takes no ownership (as lmx_mixer_add_custom states for its user data), so
 * release should not run: the plugin then frees the buffer itself and appends "plugin freed misfit".
 * If the host did call release during the refused call, the plugin does not free it again.
 *   return=ok ignores the failure and returns LMX_OK; return=status returns the registration's status.
 * Appends "register <status>" to PATH, and "shutdown" when its shutdown runs. */
#include "../plugin_util.h"

static char log_path[1024];
static int released; /* set by release; init and a refused registration's release run on one thread */

static void release(void *user_data) {
    released = 1;
    append_line(log_path, "release misfit");
    free(user_data);
}

static lmx_status init(const lmx_host_api *host, lmx_plugin_registrar *reg, const char *config) {
    char mode[32], ret[32], line[64];
    config_get(config, "log", log_path, sizeof log_path);
    config_get(config, "mode", mode, sizeof mode);
    config_get(config, "return", ret, sizeof ret);
    lmx_status st;
    if (strcmp(mode, "copied") == 0) {
        st = register_small_lora(host, reg, "misfit", LMX_MODULE_Q_PROJ, 64, 64, 2, NULL, NULL, NULL);
    } else {
        float *buffer = malloc((2 * 64 + 64 * 2) * sizeof(float));
        if (!buffer) return LMX_ERR_OUT_OF_MEMORY;
        released = 0;
        st = register_small_lora(host, reg, "misfit", LMX_MODULE_Q_PROJ, 64, 64, strcmp(mode, "rank0") == 0 ? 0 : 2,
                                 buffer, release, buffer);
        if (st != LMX_OK && !released) {
            append_line(log_path, "plugin freed misfit");
            free(buffer);
        }
    }
    snprintf(line, sizeof line, "register %d", (int)st);
    append_line(log_path, line);
    return strcmp(ret, "status") == 0 ? st : LMX_OK;
}

static void shutdown_plugin(void) { append_line(log_path, "shutdown"); }

TEST_PLUGIN("org.loramixer.test.bad-shape", init, shutdown_plugin)
