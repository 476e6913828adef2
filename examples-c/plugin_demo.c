/*
 * plugin_demo — a C host of libloramixer that gets its experts from plugins (examples-c/plugins/).
 *
 *   plugin_demo [MODELS_DIR] [PLUGIN_DIR] [PROMPT] [MAX_TOKENS]
 *
 * MODELS_DIR holds tiny-llama/, experts/{math,strings,lookup}/ and router.safetensors (default
 * "models"); PLUGIN_DIR holds peft_folders.so, memory_lora.so and custom_scaler.so (default
 * "examples-c/build/plugins"). Two mixers over one model:
 *
 *   A  peft_folders registers the three bundled PEFT experts and the router, whose rows name
 *      exactly those three: learned routing, and the expert with the largest gate per layer.
 *   B  memory_lora (two LoRA experts made in memory) and custom_scaler (a custom expert in C),
 *      with uniform routing since no router knows them; then custom_scaler is unloaded: it leaves
 *      the mixer at once, while a session created before keeps using it until it is freed.
 *
 * Plugin log lines and shutdown messages go to stderr.
 */
#include <loramixer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check(lmx_status status, const char *what) {
    if (status != LMX_OK) {
        fflush(stdout);
        fprintf(stderr, "plugin_demo: %s failed: %s: %s\n", what, lmx_status_string(status), lmx_last_error());
        return 0;
    }
    return 1;
}

static void print_text(const int32_t *tokens, size_t n) {
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        int32_t t = tokens[i];
        if (t >= 32 && t < 127 && t != '"' && t != '\\') putchar((int)t);
        else printf("\\x%02x", (unsigned)t & 0xffu);
    }
    putchar('"');
}

static size_t count_of(const lmx_mixer *mixer, int plugins) {
    size_t n = 0;
    lmx_status st = plugins ? lmx_mixer_plugin_count(mixer, &n) : lmx_mixer_expert_count(mixer, &n);
    return st == LMX_OK ? n : 0;
}

/* Loads `file` from `plugin_dir` into `mixer` with `config`. */
static int load_plugin(lmx_mixer *mixer, const char *plugin_dir, const char *file, const char *config) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", plugin_dir, file);
    lmx_plugin_params params = lmx_plugin_params_default();
    params.config = config;
    fflush(stdout);
    return check(lmx_mixer_load_plugin(mixer, path, &params, NULL), path);
}

/* One line per plugin: id, version, licence and its experts. */
static void list_plugins(const lmx_mixer *mixer) {
    size_t n = count_of(mixer, 1);
    for (size_t i = 0; i < n; i++) {
        char id[256] = "", version[64] = "", license[64] = "", experts[1024] = "";
        lmx_mixer_plugin_string(mixer, i, LMX_PLUGIN_ID, id, sizeof id, NULL);
        lmx_mixer_plugin_string(mixer, i, LMX_PLUGIN_VERSION, version, sizeof version, NULL);
        lmx_mixer_plugin_string(mixer, i, LMX_PLUGIN_LICENSE, license, sizeof license, NULL);
        lmx_mixer_plugin_string(mixer, i, LMX_PLUGIN_EXPERTS, experts, sizeof experts, NULL);
        for (char *c = experts; *c; c++)
            if (*c == '\n') *c = ',';
        printf("  plugin %zu  %s %s (%s)  experts: %s\n", i, id, version, license, experts);
    }
}

static int generate(lmx_session *session, const int32_t *prompt, size_t n_prompt, uint32_t max_tokens,
                    int32_t *out, size_t *n_out) {
    lmx_generate_params gen = lmx_generate_params_default();
    gen.max_tokens = max_tokens;
    return check(lmx_session_generate(session, prompt, n_prompt, &gen, out, 256, n_out), "lmx_session_generate");
}

/* Mixer A: the bundled experts and router through peft_folders; tokens with the top expert per layer. */
static int demo_learned(const lmx_model *model, const char *dir, const char *plugin_dir, const int32_t *prompt,
                        size_t n_prompt, uint32_t max_tokens) {
    lmx_mixer *mixer = NULL;
    lmx_session *session = NULL;
    int32_t *ids = NULL;
    float *gates = NULL;
    int ok = 0;
    char config[8192], names[8][64];
    snprintf(config, sizeof config, "math=%s/experts/math;strings=%s/experts/strings;lookup=%s/experts/lookup;"
             "router=%s/router.safetensors", dir, dir, dir, dir);

    printf("== A: peft_folders (three PEFT experts + router), learned routing\n");
    if (!check(lmx_mixer_create(model, &mixer), "lmx_mixer_create")) goto done;
    if (!load_plugin(mixer, plugin_dir, "peft_folders.so", config)) goto done;
    list_plugins(mixer);
    size_t n_experts = count_of(mixer, 0);
    for (size_t e = 0; e < n_experts && e < 8; e++)
        if (lmx_mixer_expert_name(mixer, e, names[e], sizeof names[e], NULL) != LMX_OK) strcpy(names[e], "?");

    if (!check(lmx_session_create(mixer, NULL, &session), "lmx_session_create")) goto done;
    int32_t out[256];
    size_t n_out = 0;
    if (!generate(session, prompt, n_prompt, max_tokens, out, &n_out)) goto done;
    printf("  output  ");
    print_text(out, n_out);
    printf("\n");

    size_t n_tokens = 0, n_layers = 0, width = 0;
    if (!check(lmx_session_trace_size(session, &n_tokens, &n_layers, &width), "lmx_session_trace_size")) goto done;
    size_t entries = n_tokens * n_layers * width;
    ids = malloc(entries * sizeof *ids);
    gates = malloc(entries * sizeof *gates);
    int32_t trace_tokens[512];
    if (!ids || !gates || n_tokens > 512) goto done;
    if (!check(lmx_session_trace_copy(session, ids, gates, entries, trace_tokens, n_tokens), "lmx_session_trace_copy"))
        goto done;
    printf("  pos tok ");
    for (size_t l = 0; l < n_layers; l++) printf(" layer %-8zu", l);
    printf("\n");
    for (size_t t = 0; t < n_tokens; t++) {
        int32_t tok = trace_tokens[t];
        printf("  %2zu%s ", t, t < n_prompt ? " " : "*");
        if (tok >= 32 && tok < 127) printf("'%c'", (char)tok);
        else printf("x%02x", (unsigned)tok & 0xffu);
        for (size_t l = 0; l < n_layers; l++) {
            size_t at = (t * n_layers + l) * width;
            int32_t top = ids[at];
            printf("  %-8s %.2f", top >= 0 && (size_t)top < n_experts && top < 8 ? names[top] : "-", gates[at]);
        }
        printf("\n");
    }
    printf("  (* = generated; each layer: the expert with the largest gate, and that gate)\n");
    ok = 1;

done:
    free(ids);
    free(gates);
    lmx_session_free(session);
    lmx_mixer_free(mixer);
    return ok;
}

/* Mixer B: memory_lora + custom_scaler, uniform routing; then unload custom_scaler. */
static int demo_uniform(const lmx_model *model, const char *plugin_dir, const int32_t *prompt, size_t n_prompt,
                        uint32_t max_tokens) {
    lmx_mixer *mixer = NULL;
    lmx_session *before = NULL, *after = NULL;
    int ok = 0;
    int32_t out[256];
    size_t n_out = 0;

    printf("\n== B: memory_lora + custom_scaler, uniform routing\n");
    if (!check(lmx_mixer_create(model, &mixer), "lmx_mixer_create")) goto done;
    if (!load_plugin(mixer, plugin_dir, "memory_lora.so", "seed=7;rank=4;alpha=8")) goto done;
    if (!load_plugin(mixer, plugin_dir, "custom_scaler.so", "scale=0.25")) goto done;
    list_plugins(mixer);
    printf("  mixer: %zu plugins, %zu experts\n", count_of(mixer, 1), count_of(mixer, 0));

    if (!check(lmx_session_create(mixer, NULL, &before), "lmx_session_create")) goto done;
    if (!check(lmx_session_set_routing(before, LMX_ROUTING_NONE), "lmx_session_set_routing")) goto done;
    if (!generate(before, prompt, n_prompt, max_tokens, out, &n_out)) goto done;
    printf("  %-37s", "base model only (routing none)");
    print_text(out, n_out);
    if (!check(lmx_session_reset(before), "lmx_session_reset")) goto done;
    if (!check(lmx_session_set_routing(before, LMX_ROUTING_UNIFORM), "lmx_session_set_routing")) goto done;
    if (!generate(before, prompt, n_prompt, max_tokens, out, &n_out)) goto done;
    printf("\n  %-37s", "uniform over 3 experts");
    print_text(out, n_out);
    printf("\n");

    if (!check(lmx_mixer_unload_plugin(mixer, "org.loramixer.example.custom-scaler"), "lmx_mixer_unload_plugin"))
        goto done;
    printf("  unloaded org.loramixer.example.custom-scaler: mixer now %zu plugin, %zu experts\n", count_of(mixer, 1),
           count_of(mixer, 0));
    list_plugins(mixer);

    if (!check(lmx_session_create(mixer, NULL, &after), "lmx_session_create")) goto done;
    if (!check(lmx_session_set_routing(after, LMX_ROUTING_UNIFORM), "lmx_session_set_routing")) goto done;
    if (!generate(after, prompt, n_prompt, max_tokens, out, &n_out)) goto done;
    printf("  %-37s", "new session: uniform over 2");
    print_text(out, n_out);
    if (!check(lmx_session_reset(before), "lmx_session_reset")) goto done;
    if (!generate(before, prompt, n_prompt, max_tokens, out, &n_out)) goto done;
    printf("\n  %-37s", "older session: still uniform over 3");
    print_text(out, n_out);
    printf("\n  freeing the older session (custom_scaler's shutdown runs now):\n");
    fflush(stdout);
    lmx_session_free(before);
    before = NULL;
    ok = 1;

done:
    lmx_session_free(before);
    lmx_session_free(after);
    fflush(stdout);
    lmx_mixer_free(mixer);
    return ok;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models";
    const char *plugin_dir = argc > 2 ? argv[2] : "examples-c/build/plugins";
    const char *prompt_text = argc > 3 ? argv[3] : "12+30=";
    int max_tokens = argc > 4 ? atoi(argv[4]) : 8;
    if (max_tokens <= 0 || max_tokens > 128) max_tokens = 8;

    if (lmx_version_number() != LMX_VERSION_NUMBER) {
        fprintf(stderr, "plugin_demo: built against loramixer %d.%d.%d but running %s\n", LMX_VERSION_MAJOR,
                LMX_VERSION_MINOR, LMX_VERSION_PATCH, lmx_version());
        return 1;
    }

    /* The bundled model is byte-level: a token is a byte. */
    int32_t prompt[256];
    size_t n_prompt = strlen(prompt_text);
    if (n_prompt == 0 || n_prompt > 256) n_prompt = 1, prompt_text = " ";
    for (size_t i = 0; i < n_prompt; i++) prompt[i] = (unsigned char)prompt_text[i];

    char path[4096];
    lmx_model *model = NULL;
    snprintf(path, sizeof path, "%s/tiny-llama", dir);
    if (!check(lmx_model_load(path, NULL, &model), "lmx_model_load")) return 1;
    lmx_model_info info = {.struct_size = sizeof info};
    if (!check(lmx_model_get_info(model, &info), "lmx_model_get_info")) {
        lmx_model_free(model);
        return 1;
    }
    printf("model %s: %u layers, d_model %u; prompt ", info.architecture, info.n_layers, info.d_model);
    print_text(prompt, n_prompt);
    printf(", %d new tokens (greedy)\n\n", max_tokens);

    int ok = demo_learned(model, dir, plugin_dir, prompt, n_prompt, (uint32_t)max_tokens) &&
             demo_uniform(model, plugin_dir, prompt, n_prompt, (uint32_t)max_tokens);
    lmx_model_free(model);
    return ok ? 0 : 1;
}
