/*
 * The machine's FP32 ceiling: ten independent chains of 8-wide fused multiply-adds, enough to keep both FMA pipes
 * of a core busy. Prints one line per round: GFLOP/s. Run one copy per core (taskset) to see what both cores give
 * together. Built by ceiling/run.sh with -O3 -march=native.
 */
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  const int rounds = argc > 1 ? atoi(argv[1]) : 5;
  const long iterations = argc > 2 ? atol(argv[2]) : 20000000L;
  for (int round = 0; round < rounds; round++) {
    __m256 acc[10];
    for (int k = 0; k < 10; k++) acc[k] = _mm256_set1_ps(1.0f + (float)k * 1e-7f);
    const __m256 mul = _mm256_set1_ps(0.9999999f), add = _mm256_set1_ps(1e-7f);
    const double start = now_s();
    for (long i = 0; i < iterations; i++) {
      for (int k = 0; k < 10; k++) acc[k] = _mm256_fmadd_ps(acc[k], mul, add);
    }
    const double seconds = now_s() - start;
    float sink = 0;
    for (int k = 0; k < 10; k++) sink += acc[k][0];
    /* 10 chains x 8 lanes x 2 flops per iteration; the sink keeps the loop from being optimised away. */
    printf("%.1f%s\n", (double)iterations * 10 * 8 * 2 / seconds / 1e9, sink == 0.0f ? " " : "");
    fflush(stdout);
  }
  return 0;
}
