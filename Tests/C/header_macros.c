/* The struct-size macros of the headers expand to constant expressions in C11 and C++17. */
#include <assert.h>
#include "loramixer.h"
#include "loramixer_plugin.h"

static_assert(LMX_SESSION_PARAMS_MIN_SIZE == 3 * sizeof(uint32_t), "version 0 of lmx_session_params ends at trace");
static_assert(LMX_LORA_DESC_MIN_SIZE < sizeof(lmx_lora_desc), "version 0 of lmx_lora_desc ends at n_tensors");
static_assert(LMX_MODEL_PARAMS_MIN_SIZE <= sizeof(lmx_model_params), "min <= sizeof");
static_assert(LMX_GENERATE_PARAMS_MIN_SIZE <= sizeof(lmx_generate_params), "min <= sizeof");
static_assert(LMX_PLUGIN_PARAMS_MIN_SIZE <= sizeof(lmx_plugin_params), "min <= sizeof");
static_assert(LMX_TRAIN_PARAMS_MIN_SIZE <= sizeof(lmx_train_params), "min <= sizeof");
static_assert(LMX_CUSTOM_EXPERT_DESC_MIN_SIZE <= sizeof(lmx_custom_expert_desc), "min <= sizeof");
static_assert(LMX_ROUTER_DESC_MIN_SIZE <= sizeof(lmx_router_desc), "min <= sizeof");
static_assert(LMX_PLUGIN_DESCRIPTOR_MIN_SIZE <= sizeof(lmx_plugin_descriptor), "min <= sizeof");
static_assert(LMX_HOST_API_MIN_SIZE <= sizeof(lmx_host_api), "min <= sizeof");
static_assert(LMX_MODEL_INFO_MIN_SIZE == 4 && LMX_PLUGIN_MODEL_INFO_MIN_SIZE == 4, "output structs: struct_size only");

int header_macros_use(const lmx_host_api *host, const lmx_train_progress *progress);
int header_macros_use(const lmx_host_api *host, const lmx_train_progress *progress) {
    return LMX_HOST_HAS(host, set_error) + LMX_HAS_FIELD(lmx_train_progress, progress, layer_entropy);
}
