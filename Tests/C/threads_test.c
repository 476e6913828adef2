/*
 * threads_test.c: one model and one mixer (e0, e1, e2 + router) shared by two threads.
 *
 *     threads_test FIXTURES_DIR [ITERATIONS]     (default 20 iterations per thread)
 *
 * The main thread first evaluates the fixture tokens sequentially (LMX_LOGITS_ALL) as the
 * reference, and checks it against the oracle (learned_logits, 1e-4) and against a second
 * sequential run (bit-identical). Then two threads start together (barrier), each creates its own
 * session from the shared mixer and evaluates the tokens ITERATIONS times (reset between runs);
 * every run must be bit-identical to the reference. Each thread also makes a failing call with
 * its own marker after every run and checks that lmx_last_error() shows its own message (the last
 * error is per thread). Prints "threads_test: N passed, M failed".
 */
#define _XOPEN_SOURCE 700

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loramixer.h"
#include "test_util.h"

#define N_TOKENS 12
#define VOCAB 128
#define N_THREADS 2

typedef struct {
    int id;
    const lmx_mixer *mixer;
    const int32_t *tokens;
    const float *reference;
    int iterations;
    pthread_barrier_t *barrier;
    /* results */
    int created;
    int identical_runs;
    int failed_runs;
    int error_isolation_failures;
    int own_model_ok;
    const char *model_dir;
    char first_problem[512];
} job;

static void note(job *j, const char *fmt, const char *detail, int iteration) {
    if (j->first_problem[0]) return;
    snprintf(j->first_problem, sizeof j->first_problem, fmt, iteration, detail);
}

static void *worker(void *arg) {
    job *j = arg;
    float *logits = malloc(sizeof(float) * N_TOKENS * VOCAB);
    lmx_session *session = NULL;
    pthread_barrier_wait(j->barrier);
    /* Loading is thread-safe too: both threads load (and free) a model of their own at once. */
    lmx_model *own = NULL;
    lmx_model_params params = lmx_model_params_default();
    params.load_mode = j->id % 2 ? LMX_LOAD_COPY : LMX_LOAD_MMAP;
    j->own_model_ok = lmx_model_load(j->model_dir, &params, &own) == LMX_OK;
    if (!j->own_model_ok) note(j, "own model_load (iteration %d): %s", lmx_last_error(), 0);
    lmx_model_free(own);
    lmx_status st = lmx_session_create(j->mixer, NULL, &session);
    j->created = st == LMX_OK;
    if (!j->created) note(j, "session_create (iteration %d): %s", lmx_last_error(), 0);
    for (int i = 0; j->created && i < j->iterations; i++) {
        st = lmx_session_reset(session);
        if (st == LMX_OK)
            st = lmx_session_eval(session, j->tokens, N_TOKENS, LMX_LOGITS_ALL, logits, (size_t)N_TOKENS * VOCAB);
        if (st != LMX_OK) {
            j->failed_runs++;
            note(j, "iteration %d: %s", lmx_last_error(), i);
        } else if (memcmp(logits, j->reference, sizeof(float) * N_TOKENS * VOCAB) != 0) {
            j->failed_runs++;
            note(j, "iteration %d: logits differ from the sequential run%s", "", i);
        } else {
            j->identical_runs++;
        }
        /* A failing call with this thread's marker; the message must be this thread's own. */
        char marker[64], path[128];
        snprintf(marker, sizeof marker, "no-such-model-thread-%d-run-%d", j->id, i);
        snprintf(path, sizeof path, "/nonexistent/%s", marker);
        lmx_model *model = NULL;
        st = lmx_model_load(path, NULL, &model);
        if (st != LMX_ERR_IO || !strstr(lmx_last_error(), marker)) {
            j->error_isolation_failures++;
            note(j, "iteration %d: lmx_last_error() is \"%s\" (expected this thread's marker)", lmx_last_error(), i);
        }
        if (st == LMX_OK) lmx_model_free(model);
    }
    lmx_session_free(session);
    free(logits);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FIXTURES_DIR [ITERATIONS]\n", argv[0]);
        return 2;
    }
    int iterations = argc == 3 ? atoi(argv[2]) : 20;
    setvbuf(stdout, NULL, _IOLBF, 0);
    install_crash_handler();
    char path[2048], llama[1024];
    join(llama, sizeof llama, argv[1], "llama_f32");

    join(path, sizeof path, llama, "expected.safetensors");
    size_t n = 0;
    int32_t *tokens = fixture_tensor(path, "tokens", "I32", &n);
    float *oracle = fixture_tensor(path, "learned_logits", "F32", NULL);
    if (!tokens || n != N_TOKENS || !oracle) {
        fprintf(stderr, "threads_test: cannot read %s\n", path);
        return 2;
    }

    lmx_model *model = NULL;
    lmx_mixer *mixer = NULL;
    lmx_session *s = NULL;
    float *reference = calloc((size_t)N_TOKENS * VOCAB, sizeof(float));
    float *again = calloc((size_t)N_TOKENS * VOCAB, sizeof(float));
    int ok = EXPECT_OK("model_load llama_f32", lmx_model_load(llama, NULL, &model)) &&
             EXPECT_OK("mixer_create", lmx_mixer_create(model, &mixer));
    for (int i = 0; ok && i < 3; i++) {
        char name[8], dir[1100], rel[32];
        snprintf(name, sizeof name, "e%d", i);
        snprintf(rel, sizeof rel, "adapters/e%d", i);
        join(dir, sizeof dir, llama, rel);
        ok = EXPECT_OK(name, lmx_mixer_add_peft(mixer, name, dir, NULL));
    }
    join(path, sizeof path, llama, "router.safetensors");
    ok = ok && EXPECT_OK("mixer_load_router", lmx_mixer_load_router(mixer, path));
    ok = ok && EXPECT_OK("sequential session_create", lmx_session_create(mixer, NULL, &s));
    ok = ok && EXPECT_OK("sequential eval (reference)",
                         lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, reference, (size_t)N_TOKENS * VOCAB));
    if (ok) {
        double worst = 0;
        for (size_t i = 0; i < (size_t)N_TOKENS * VOCAB; i++) {
            double d = fabs((double)reference[i] - oracle[i]);
            if (!(d <= worst)) worst = d;
        }
        if (worst <= 1e-4) pass("sequential run matches learned_logits within 1e-4");
        else fail("sequential run matches learned_logits", "max |diff| %.3e", worst);
        ok = EXPECT_OK("sequential reset", lmx_session_reset(s)) &&
             EXPECT_OK("sequential eval again",
                       lmx_session_eval(s, tokens, N_TOKENS, LMX_LOGITS_ALL, again, (size_t)N_TOKENS * VOCAB));
        if (ok && memcmp(reference, again, sizeof(float) * N_TOKENS * VOCAB) == 0)
            pass("sequential runs are bit-identical");
        else if (ok) fail("sequential runs are bit-identical", "the second run differs");
    }
    lmx_session_free(s);

    if (ok) {
        pthread_barrier_t barrier;
        pthread_barrier_init(&barrier, NULL, N_THREADS);
        job jobs[N_THREADS];
        pthread_t threads[N_THREADS];
        for (int t = 0; t < N_THREADS; t++) {
            memset(&jobs[t], 0, sizeof jobs[t]);
            jobs[t].id = t;
            jobs[t].mixer = mixer;
            jobs[t].tokens = tokens;
            jobs[t].reference = reference;
            jobs[t].iterations = iterations;
            jobs[t].barrier = &barrier;
            jobs[t].model_dir = llama;
            if (pthread_create(&threads[t], NULL, worker, &jobs[t]) != 0) {
                fprintf(stderr, "pthread_create failed\n");
                return 2;
            }
        }
        for (int t = 0; t < N_THREADS; t++) pthread_join(threads[t], NULL);
        pthread_barrier_destroy(&barrier);
        for (int t = 0; t < N_THREADS; t++) {
            char what[160];
            job *j = &jobs[t];
            snprintf(what, sizeof what, "thread %d: lmx_model_load while the other thread loads too", t);
            if (j->own_model_ok) pass(what);
            else fail(what, "%s", j->first_problem);
            snprintf(what, sizeof what, "thread %d: session_create from the shared mixer", t);
            if (j->created) pass(what);
            else fail(what, "%s", j->first_problem);
            snprintf(what, sizeof what, "thread %d: %d runs bit-identical to the sequential run", t, iterations);
            if (j->created && j->identical_runs == iterations) pass(what);
            else fail(what, "%d identical, %d failed; first problem: %s", j->identical_runs, j->failed_runs, j->first_problem);
            snprintf(what, sizeof what, "thread %d: lmx_last_error() is per thread", t);
            if (j->created && j->error_isolation_failures == 0) pass(what);
            else fail(what, "%d failures; first problem: %s", j->error_isolation_failures, j->first_problem);
        }
    }

    lmx_mixer_free(mixer);
    lmx_model_free(model);
    free(reference);
    free(again);
    free(tokens);
    free(oracle);
    printf("threads_test: %d passed, %d failed\n", tests_passed, tests_failed);
    return tests_failed ? 1 : 0;
}
