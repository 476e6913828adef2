/*
 * route_demo — a C host of libloramixer: loads a model, three PEFT experts and a router, generates
 * from a byte-level prompt, and prints every token with the expert its router chose at each layer.
 *
 *   route_demo [MODELS_DIR] [PROMPT] [MAX_TOKENS]
 *
 * MODELS_DIR holds tiny-llama/, experts/{math,strings,lookup}/ and router.safetensors (default:
 * "models", the bundled default).
 */
#include <loramixer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const expert_names[] = {"math", "strings", "lookup"};
enum { n_experts = 3 };

static int check(lmx_status status, const char *what) {
    if (status != LMX_OK) {
        fprintf(stderr, "route_demo: %s failed: %s: %s\n", what, lmx_status_string(status), lmx_last_error());
        return 0;
    }
    return 1;
}

/* Prints each token as it is generated; returning 0 lets generation go on. */
static int32_t print_token(int32_t token, void *user_data) {
    int *count = user_data;
    *count += 1;
    printf("%d%s", token, " ");
    fflush(stdout);
    return 0;
}

static void print_byte(int32_t token) {
    if (token >= 32 && token < 127) printf("'%c'", (char)token);
    else printf("0x%02x", (unsigned)token);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models";
    const char *prompt_text = argc > 2 ? argv[2] : "What is 12+30?";
    int max_tokens = argc > 3 ? atoi(argv[3]) : 12;
    if (max_tokens <= 0 || max_tokens > 256) max_tokens = 12;

    if (lmx_version_number() != LMX_VERSION_NUMBER) {
        fprintf(stderr, "route_demo: built against loramixer %d.%d.%d but running %s\n", LMX_VERSION_MAJOR,
                LMX_VERSION_MINOR, LMX_VERSION_PATCH, lmx_version());
        return 1;
    }

    char path[4096];
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *session = NULL;
    int32_t *ids = NULL, *trace_tokens = NULL;
    float *gates = NULL;
    int ok = 0;

    snprintf(path, sizeof path, "%s/tiny-llama", dir);
    if (!check(lmx_model_load(path, NULL, &model), "lmx_model_load")) goto done;
    lmx_model_info info = {.struct_size = sizeof info};
    if (!check(lmx_model_get_info(model, &info), "lmx_model_get_info")) goto done;
    printf("model   %s: %u layers, d_model %u, vocab %u\n", info.architecture, info.n_layers, info.d_model, info.n_vocab);

    if (!check(lmx_mixer_create(model, &mixer), "lmx_mixer_create")) goto done;
    for (int e = 0; e < n_experts; e++) {
        snprintf(path, sizeof path, "%s/experts/%s", dir, expert_names[e]);
        if (!check(lmx_mixer_add_peft(mixer, expert_names[e], path, NULL), "lmx_mixer_add_peft")) goto done;
    }
    snprintf(path, sizeof path, "%s/router.safetensors", dir);
    if (!check(lmx_mixer_load_router(mixer, path), "lmx_mixer_load_router")) goto done;
    printf("experts math, strings, lookup; router %s (learned top-k)\n", path);

    if (!check(lmx_session_create(mixer, NULL, &session), "lmx_session_create")) goto done;

    /* The bundled model is byte-level: a token is a byte. */
    size_t n_prompt = strlen(prompt_text);
    int32_t prompt[512];
    if (n_prompt == 0 || n_prompt > 512) n_prompt = 1, prompt_text = " ";
    for (size_t i = 0; i < n_prompt; i++) prompt[i] = (unsigned char)prompt_text[i];

    lmx_generate_params gen = lmx_generate_params_default();
    int generated_count = 0;
    gen.max_tokens = (uint32_t)max_tokens;
    gen.on_token = print_token;
    gen.user_data = &generated_count;
    int32_t out[256];
    size_t n_out = 0;
    printf("prompt  \"%s\"\ntokens  ", prompt_text);
    if (!check(lmx_session_generate(session, prompt, n_prompt, &gen, out, 256, &n_out), "lmx_session_generate")) goto done;
    printf("\n\n");

    size_t n_tokens = 0, n_layers = 0, width = 0;
    if (!check(lmx_session_trace_size(session, &n_tokens, &n_layers, &width), "lmx_session_trace_size")) goto done;
    size_t entries = n_tokens * n_layers * width;
    ids = malloc(entries * sizeof *ids);
    gates = malloc(entries * sizeof *gates);
    trace_tokens = malloc(n_tokens * sizeof *trace_tokens);
    if (!ids || !gates || !trace_tokens) goto done;
    if (!check(lmx_session_trace_copy(session, ids, gates, entries, trace_tokens, n_tokens), "lmx_session_trace_copy"))
        goto done;

    printf("pos  token   ");
    for (size_t l = 0; l < n_layers; l++) printf(" layer %-9zu", l);
    printf("\n");
    for (size_t t = 0; t < n_tokens; t++) {
        printf("%3zu%s ", t, t < n_prompt ? " " : "*");
        print_byte(trace_tokens[t]);
        printf("%*s", trace_tokens[t] >= 32 && trace_tokens[t] < 127 ? 4 : 2, "");
        for (size_t l = 0; l < n_layers; l++) {
            size_t at = (t * n_layers + l) * width;
            int32_t top = ids[at];
            printf(" %-7s %.2f ", top >= 0 ? expert_names[top] : "-", gates[at]);
        }
        printf("\n");
    }
    printf("(* = generated; each layer shows the expert with the largest gate and that gate)\n");
    ok = 1;

done:
    free(ids);
    free(gates);
    free(trace_tokens);
    lmx_session_free(session);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    return ok ? 0 : 1;
}
