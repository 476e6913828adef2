/*
 * host.c — the smallest complete host of an installed libloramixer, built by Tests/install/run.sh
 * with nothing but pkg-config:
 *
 *   cc -std=c11 host.c -o host $(pkg-config --cflags --libs loramixer)
 *   ./host models "12+30="          prints: 12+30=42
 *   ./host models "12+30=" --leak   the same, but never frees what it made (proves that the README's
 *                                   valgrind command fails on a host's leak)
 *
 * Loads the bundled byte-level model (MODELS_DIR/tiny-llama), its three experts and the router,
 * turns the prompt text into tokens (one token per byte), and generates greedily until a newline.
 */
#include <loramixer.h>

#include <stdio.h>
#include <string.h>

static int ok(lmx_status status, const char *what) {
    if (status != LMX_OK) fprintf(stderr, "host: %s: %s: %s\n", what, lmx_status_string(status), lmx_last_error());
    return status == LMX_OK;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "models";
    const char *text = argc > 2 ? argv[2] : "12+30=";
    static const char *const experts[] = {"math", "strings", "lookup"};
    char path[4096];
    int32_t prompt[256], answer[16];
    size_t n_prompt = strlen(text), n_answer = 0;
    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *session = NULL;
    int good = 0, leak = argc > 3 && strcmp(argv[3], "--leak") == 0;

    if (n_prompt == 0 || n_prompt > 256) return fprintf(stderr, "host: the prompt must have 1...256 bytes\n"), 2;
    for (size_t i = 0; i < n_prompt; i++) prompt[i] = (unsigned char)text[i];  /* a token is a byte */

    snprintf(path, sizeof path, "%s/tiny-llama", dir);
    if (!ok(lmx_model_load(path, NULL, &model), "lmx_model_load")) goto done;
    if (!ok(lmx_mixer_create(model, &mixer), "lmx_mixer_create")) goto done;
    for (int e = 0; e < 3; e++) {
        snprintf(path, sizeof path, "%s/experts/%s", dir, experts[e]);
        if (!ok(lmx_mixer_add_peft(mixer, experts[e], path, NULL), "lmx_mixer_add_peft")) goto done;
    }
    snprintf(path, sizeof path, "%s/router.safetensors", dir);
    if (!ok(lmx_mixer_load_router(mixer, path), "lmx_mixer_load_router")) goto done;
    if (!ok(lmx_session_create(mixer, NULL, &session), "lmx_session_create")) goto done;

    lmx_generate_params gen = lmx_generate_params_default();   /* greedy */
    const int32_t newline = '\n';
    gen.max_tokens = 16;
    gen.stop_tokens = &newline;
    gen.n_stop_tokens = 1;
    if (!ok(lmx_session_generate(session, prompt, n_prompt, &gen, answer, 16, &n_answer), "lmx_session_generate"))
        goto done;
    printf("%s", text);
    for (size_t i = 0; i < n_answer; i++)
        if (answer[i] != newline) putchar(answer[i] >= 32 && answer[i] < 127 ? (char)answer[i] : '?');
    printf("\n");
    good = 1;

done:
    if (leak) return good ? 0 : 1;
    lmx_session_free(session);
    lmx_mixer_free(mixer);
    lmx_model_free(model);
    return good ? 0 : 1;
}
