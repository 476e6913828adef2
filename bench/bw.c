/* Read memory bandwidth: T threads each sum their slice of one float32 array (default 1 GiB),
 * REPS times; prints one line of JSON with the GB/s of every repetition and their median.
 * Built and run by bench/run.py:  cc -O3 -march=native -ffast-math -pthread bench/bw.c -o bench/work/bw
 * Usage: bw [threads=2] [MiB=1024] [reps=7]
 * Every page is written (by its own thread) before timing; the sums are printed so nothing is
 * optimised away. -ffast-math lets the compiler vectorise the float sum with several accumulators. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    float *p;
    size_t n;
    pthread_barrier_t *bar;
    int reps;
    double *sums;
} job;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float sum(const float *restrict p, size_t n) {
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) s += p[i];
    return s;
}

static void *worker(void *arg) {
    job *j = arg;
    for (size_t i = 0; i < j->n; i++) j->p[i] = (float)(i & 1023) * 1e-3f;  /* first touch */
    for (int r = 0; r < j->reps; r++) {
        pthread_barrier_wait(j->bar);   /* start together */
        j->sums[r] += sum(j->p, j->n);
        pthread_barrier_wait(j->bar);   /* the main thread stops the clock after this */
    }
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    size_t mib = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    int reps = argc > 3 ? atoi(argv[3]) : 7;
    if (threads < 1 || threads > 256 || mib < 1 || reps < 1 || reps > 1000) {
        fprintf(stderr, "usage: bw [threads] [MiB] [reps]\n");
        return 64;
    }
    size_t n = mib * 1024 * 1024 / sizeof(float);
    float *a = aligned_alloc(64, n * sizeof(float));
    double *sums = calloc((size_t)reps * threads, sizeof(double));
    double *gbs = calloc((size_t)reps, sizeof(double));
    pthread_t *tid = calloc((size_t)threads, sizeof(pthread_t));
    job *jobs = calloc((size_t)threads, sizeof(job));
    if (!a || !sums || !gbs || !tid || !jobs) {
        fprintf(stderr, "bw: out of memory\n");
        return 1;
    }
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
    size_t per = (n / threads) & ~(size_t)15;
    for (int t = 0; t < threads; t++) {
        size_t lo = per * t, hi = t == threads - 1 ? n : lo + per;
        jobs[t] = (job){a + lo, hi - lo, &bar, reps, sums + (size_t)t * reps};
        pthread_create(&tid[t], NULL, worker, &jobs[t]);
    }
    for (int r = 0; r < reps; r++) {
        pthread_barrier_wait(&bar);
        double t0 = now();
        pthread_barrier_wait(&bar);
        gbs[r] = (double)n * sizeof(float) / (now() - t0) / 1e9;
    }
    for (int t = 0; t < threads; t++) pthread_join(tid[t], NULL);
    double check = 0;
    for (size_t i = 0; i < (size_t)reps * threads; i++) check += sums[i];
    printf("{\"threads\": %d, \"mib\": %zu, \"gbs\": [", threads, mib);
    for (int r = 0; r < reps; r++) printf("%s%.3f", r ? ", " : "", gbs[r]);
    qsort(gbs, (size_t)reps, sizeof(double), cmp);
    printf("], \"median_gbs\": %.3f, \"checksum\": %.6g}\n", gbs[reps / 2], check);
    return 0;
}
