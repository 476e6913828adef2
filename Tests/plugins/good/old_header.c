/* A plugin built against an older, shorter view of the plugin ABI: it does not include
 * loramixer_plugin.h but declares the types as a header of the first version would, with
 * structs that end earlier than today's:
 *   - its lmx_lora_desc ends at n_tensors (LMX_LORA_DESC_MIN_SIZE): no release/user_data, so the
 *     host must copy the tensors and never call a release it was not given;
 *   - its lmx_plugin_model_info ends at family[16] (no d_state, d_conv, dt_rank): the host must
 *     write nothing past it (a canary follows);
 *   - it knows only the first five functions of the host table (a prefix: the table is
 *     append-only), and checks host->struct_size covers them before it calls any.
 * It registers one zero LoRA "old-zero" on q_proj of layer 0 and logs what it saw at INFO; any
 * violation makes init return -5 (LMX_ERR_PLUGIN) after logging an ERROR. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t old_status;
typedef struct old_registrar old_registrar;

typedef struct {
    uint32_t layer, module, in_features, out_features;
    const void *a, *b;
} old_lora_tensor;

typedef struct {
    uint32_t struct_size, dtype, rank;
    float alpha;
    uint32_t use_rslora;
    const old_lora_tensor *tensors;
    size_t n_tensors;
} old_lora_desc;

typedef struct {
    uint32_t struct_size, n_vocab, n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, max_positions;
    char architecture[64];
    char family[16];
} old_model_info;

typedef struct {
    uint32_t struct_size, abi_version;
    void (*log)(old_registrar *, uint32_t level, const char *message);
    old_status (*model_info)(old_registrar *, old_model_info *out);
    old_status (*module_shape)(old_registrar *, uint32_t module, uint32_t *in_features, uint32_t *out_features);
    old_status (*register_lora)(old_registrar *, const char *name, const old_lora_desc *desc);
    old_status (*register_peft)(old_registrar *, const char *name, const char *dir);
} old_host_api;

typedef struct {
    uint32_t abi_version, struct_size;
    const char *id, *version, *description, *license;
    old_status (*init)(const old_host_api *host, old_registrar *registrar, const char *config);
    void (*shutdown)(void);
} old_descriptor;

static float *a_values, *b_values;

static old_status init(const old_host_api *host, old_registrar *reg, const char *config) {
    (void)config;
    if (host->struct_size < offsetof(old_host_api, register_peft) + sizeof host->register_peft) return -6;
    struct { old_model_info info; uint32_t canary; } box;
    memset(&box, 0, sizeof box);
    box.info.struct_size = sizeof box.info;
    box.canary = 0xC0FFEEu;
    if (host->model_info(reg, &box.info) != 0 || box.canary != 0xC0FFEEu || box.info.n_layers == 0) {
        host->log(reg, 3, "old_header: model_info wrote past the old struct");
        return -5;
    }
    uint32_t in = 0, out = 0;
    if (host->module_shape(reg, 0 /* q_proj */, &in, &out) != 0) return -5;
    a_values = calloc((size_t)2 * in, sizeof *a_values);
    b_values = calloc((size_t)out * 2, sizeof *b_values);
    old_lora_tensor tensor = {0, 0, in, out, a_values, b_values};
    old_lora_desc desc = {sizeof desc, 0 /* f32 */, 2, 4.0f, 0, &tensor, 1};
    old_status st = host->register_lora(reg, "old-zero", &desc);
    free(a_values);  /* copied: a version-0 desc has no release, so the host must not borrow */
    free(b_values);
    if (st != 0) {
        host->log(reg, 3, "old_header: register_lora with a version-0 lmx_lora_desc was refused");
        return st;
    }
    host->log(reg, 1, "old_header: registered old-zero through a version-0 view of the ABI");
    return 0;
}

static const old_descriptor descriptor = {(1u << 16) | 0u, sizeof(old_descriptor), "org.loramixer.test.old-header",
                                          "0.1.0", "built against a version-0 view of the plugin ABI", "MIT", init, NULL};

__attribute__((visibility("default"))) const old_descriptor *lmx_plugin_entry(void) { return &descriptor; }
