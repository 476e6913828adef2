/*
 * route_demo — a C host of libloramixer: loads a model, its tokenizer, three PEFT experts and a
 * router, and for a prompt of each task generates the answer as text (lmx_session_generate_text:
 * greedy, until the tokenizer's end of turn, a newline) and prints every token (its text) with the
 * expert its router chose at each layer.
 *
 *   route_demo [MODELS_DIR] [PROMPT...]
 *
 * MODELS_DIR holds tiny-llama/, experts/{math,strings,lookup}/ and router.safetensors (default:
 * "models", the bundled default: a byte-level llama and three experts trained by `lmx train`, see
 * models/README.md). Without prompts it runs one of each task: "12+30=", "<mixer>", "K:4 Q:7 Z:1 ?Q".
 */
#include <loramixer.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const expert_names[] = {"math", "strings", "lookup"};
enum { n_experts = 3, max_generated = 16 };

static int check(lmx_status status, const char *what) {
    if (status != LMX_OK) {
        fprintf(stderr, "route_demo: %s failed: %s: %s\n", what, lmx_status_string(status), lmx_last_error());
        return 0;
    }
    return 1;
}

/* A token's text, quoted, at least 4 columns wide: its bytes, printable ASCII as is, others as \xNN. */
static void print_piece(const lmx_tokenizer *tok, int32_t token) {
    char piece[64], shown[256];
    size_t needed = 0, n = 0;
    if (lmx_token_to_piece(tok, token, piece, sizeof piece, &needed) != LMX_OK) needed = 0;
    if (needed > sizeof piece - 1) needed = sizeof piece - 1;
    shown[n++] = '\'';
    for (size_t i = 0; i < needed && n < sizeof shown - 8; i++) {
        unsigned char c = (unsigned char)piece[i];
        if (c >= 32 && c < 127) shown[n++] = (char)c;
        else n += (size_t)snprintf(shown + n, sizeof shown - n, "\\x%02x", c);
    }
    shown[n++] = '\'';
    shown[n] = 0;
    printf("%-4s", shown);
}

/* Generates the answer to `text` in a new session and prints the routing of every token. */
static int run_prompt(const lmx_mixer *mixer, const lmx_tokenizer *tok, const char *text) {
    lmx_session *session = NULL;
    int32_t *ids = NULL, *tokens = NULL;
    float *gates = NULL;
    int ok = 0;
    size_t n_prompt = 0, needed = 0;
    char answer[256];
    uint32_t stop = 0;
    /* The prompt's token count (as lmx_session_generate_text tokenizes it: BOS, if the tokenizer
     * has one, on an empty session), to mark the generated tokens in the trace. */
    if (!check(lmx_tokenize(tok, text, strlen(text), 1, 0, NULL, 0, &n_prompt), "lmx_tokenize")) return 0;
    if (n_prompt == 0) {
        fprintf(stderr, "route_demo: an empty prompt\n");
        return 0;
    }

    if (!check(lmx_session_create(mixer, NULL, &session), "lmx_session_create")) goto done;
    lmx_generate_params gen = lmx_generate_params_default();   /* greedy */
    gen.max_tokens = max_generated;
    if (!check(lmx_session_generate_text(session, tok, text, strlen(text), &gen, NULL, answer, sizeof answer, &needed,
                                         &stop),
               "lmx_session_generate_text"))
        goto done;
    printf("\nprompt \"%s\" -> answer \"%s\"%s\n", text, answer,
           stop == LMX_STOP_MAX_TOKENS ? " (max tokens)" : stop == LMX_STOP_CONTEXT_FULL ? " (context full)" : "");

    size_t n_tokens = 0, n_layers = 0, width = 0;
    if (!check(lmx_session_trace_size(session, &n_tokens, &n_layers, &width), "lmx_session_trace_size")) goto done;
    size_t entries = n_tokens * n_layers * width;
    ids = malloc(entries * sizeof *ids);
    gates = malloc(entries * sizeof *gates);
    tokens = malloc(n_tokens * sizeof *tokens);
    if (!ids || !gates || !tokens) goto done;
    if (!check(lmx_session_trace_copy(session, ids, gates, entries, tokens, n_tokens), "lmx_session_trace_copy")) goto done;
    printf("  pos  token");
    for (size_t l = 0; l < n_layers; l++) printf("  layer %-8zu", l);
    printf("\n");
    for (size_t t = 0; t < n_tokens; t++) {
        printf("  %3zu%s ", t, t < n_prompt ? " " : "*");
        print_piece(tok, tokens[t]);
        for (size_t l = 0; l < n_layers; l++) {
            size_t at = (t * n_layers + l) * width;
            printf("  %-8s %.2f", ids[at] >= 0 ? expert_names[ids[at]] : "-", gates[at]);
        }
        printf("\n");
    }
    ok = 1;

done:
    free(ids);
    free(gates);
    free(tokens);
    lmx_session_free(session);
    return ok;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models";
    static const char *const default_prompts[] = {"12+30=", "<mixer>", "K:4 Q:7 Z:1 ?Q"};
    const char *const *prompts = argc > 2 ? (const char *const *)argv + 2 : default_prompts;
    int n_prompts = argc > 2 ? argc - 2 : 3;

    if (lmx_version_number() != LMX_VERSION_NUMBER) {
        fprintf(stderr, "route_demo: built against loramixer %d.%d.%d but running %s\n", LMX_VERSION_MAJOR,
                LMX_VERSION_MINOR, LMX_VERSION_PATCH, lmx_version());
        return 1;
    }

    char path[4096];
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_tokenizer *tok = NULL;
    int ok = 0;

    snprintf(path, sizeof path, "%s/tiny-llama", dir);
    if (!check(lmx_model_load(path, NULL, &model), "lmx_model_load")) goto done;
    lmx_model_info info = {.struct_size = sizeof info};
    if (!check(lmx_model_get_info(model, &info), "lmx_model_get_info")) goto done;
    printf("model   %s: %u layers, d_model %u, vocab %u\n", info.architecture, info.n_layers, info.d_model, info.n_vocab);
    if (!check(lmx_model_tokenizer(model, &tok), "lmx_model_tokenizer")) goto done;

    if (!check(lmx_mixer_create(model, &mixer), "lmx_mixer_create")) goto done;
    for (int e = 0; e < n_experts; e++) {
        snprintf(path, sizeof path, "%s/experts/%s", dir, expert_names[e]);
        if (!check(lmx_mixer_add_peft(mixer, expert_names[e], path, NULL), "lmx_mixer_add_peft")) goto done;
    }
    snprintf(path, sizeof path, "%s/router.safetensors", dir);
    if (!check(lmx_mixer_load_router(mixer, path), "lmx_mixer_load_router")) goto done;
    printf("experts math, strings, lookup; router %s (learned top-k)\n", path);

    ok = 1;
    for (int i = 0; i < n_prompts && ok; i++) ok = run_prompt(mixer, tok, prompts[i]);
    if (ok) printf("\n(* = generated; each layer shows the expert with the largest gate, and that gate)\n");

done:
    lmx_tokenizer_free(tok);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    return ok ? 0 : 1;
}
