/* peak.c — measures the processor's single-precision FMA rate, for bench/bench.lua.
 *
 * Each thread runs fused multiply-adds on many independent accumulators (plain C that GCC
 * turns into AVX-512 or AVX2 code; enough chains to hide the FMA latency of 4 cycles on 2
 * pipes). Time is the thread's own CPU time, so a busy machine slows the wall clock but not
 * the figure (a hypervisor stealing the core still can).
 * Prints the CPU description, "cpu <model>|<MHz>|<flags of interest>", then one line per vector
 * ISA this CPU runs: "peak <isa> <threads> <GFLOP/s per thread>". (No baseline: without FMA
 * hardware fmaf is a library call, and there is no FMA peak to speak of.) */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static double thread_seconds(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The register-blocked product loop of the GEMM micro-kernel (src/gemm/gemm.c) on an L1-resident
 * panel: an 8×32 block of accumulators (16 AVX-512 or 32 AVX2 registers of independent FMA
 * chains), per step two loads of b and eight broadcasts of a, c += the block at the end.
 * (Loops with no loads at all were interchanged by GCC into one dependent chain at a time, so
 * this is the loop shape the compiler keeps.) */
#define STEPS 256
static inline __attribute__((always_inline)) void
fma_block(const float *restrict a, const float *restrict b, float *restrict c) {
  float acc[8][32];
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 32; j++)
      acc[i][j] = 0;
  for (int p = 0; p < STEPS; p++)
    for (int i = 0; i < 8; i++)
      for (int j = 0; j < 32; j++)
        acc[i][j] = fmaf(a[p * 8 + i], b[p * 32 + j], acc[i][j]);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 32; j++)
      c[i * 32 + j] += acc[i][j];
}

static float a_panel[STEPS * 8], b_panel[STEPS * 32];

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86 1
#define RUNNER(name, arch)                                                                         \
  __attribute__((noinline, target(arch))) static void name##_block(float *c) {                     \
    fma_block(a_panel, b_panel, c);                                                                \
  }                                                                                                \
  static float name(long reps) {                                                                   \
    float c[8 * 32] = {0};                                                                         \
    for (long r = 0; r < reps; r++)                                                                \
      name##_block(c);                                                                             \
    return c[0] + c[255];                                                                          \
  }
RUNNER(run_avx512, "arch=x86-64-v4")
RUNNER(run_avx2, "arch=x86-64-v3")

typedef float (*runner)(long);

/* GFLOP/s per thread, the median of each thread's rate, `threads` threads at once. */
static double measure(runner run, int threads) {
  long iters = 100 * 1000; /* × 256 steps × 256 FMAs: 13 GFLOP */
  double rates[64];
  if (threads > 64)
    threads = 64;
  float sink = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : sink)
#endif
  {
    int t = 0;
#ifdef _OPENMP
    t = omp_get_thread_num();
#endif
    sink += run(iters / 20); /* warm up: clocks ramp, pages fault */
    /* The best of three: a peak is what the core can do, and a moment of interference only
     * lowers a measurement (one bench run read 101 GFLOP/s against the usual 116, which
     * would have flattered every share computed from it). */
    rates[t] = 0;
    for (int rep = 0; rep < 3; rep++) {
      double t0 = thread_seconds();
      sink += run(iters);
      double dt = thread_seconds() - t0, rate = 2.0 * STEPS * 8 * 32 * (double)iters / dt / 1e9;
      if (rate > rates[t])
        rates[t] = rate;
    }
  }
  if (sink == 12345.0f)
    printf("#\n");
  for (int i = 1; i < threads; i++) /* sort: threads is tiny */
    for (int j = i; j > 0 && rates[j] < rates[j - 1]; j--) {
      double tmp = rates[j];
      rates[j] = rates[j - 1];
      rates[j - 1] = tmp;
    }
  return rates[threads / 2];
}

#endif

static void describe_cpu(void) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[4096], model[256] = "unknown", mhz[64] = "?", flags[256] = "";
  while (f && fgets(line, sizeof line, f)) {
    char *v = strchr(line, ':');
    if (!v)
      continue;
    v += 2;
    v[strcspn(v, "\n")] = 0;
    if (!strncmp(line, "model name", 10) && !strcmp(model, "unknown"))
      snprintf(model, sizeof model, "%s", v);
    else if (!strncmp(line, "cpu MHz", 7) && !strcmp(mhz, "?"))
      snprintf(mhz, sizeof mhz, "%s", v);
    else if (!strncmp(line, "flags", 5) && !flags[0]) {
      const char *want[] = {"avx512f", "avx2", "fma", "avx"};
      for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        char pat[32];
        snprintf(pat, sizeof pat, " %s ", want[i]);
        if (strstr(v, pat)) {
          strcat(flags, want[i]);
          strcat(flags, " ");
        }
      }
    }
  }
  if (f)
    fclose(f);
  printf("cpu %s|%s|%s\n", model, mhz, flags);
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  for (int i = 0; i < STEPS * 8; i++)
    a_panel[i] = 1e-3f * (float)(i % 17);
  for (int i = 0; i < STEPS * 32; i++)
    b_panel[i] = 1e-3f * (float)(i % 13);
  describe_cpu();
#ifdef HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4"))
    printf("peak avx512 %d %.1f\n", threads, measure(run_avx512, threads));
  if (__builtin_cpu_supports("x86-64-v3"))
    printf("peak avx2 %d %.1f\n", threads, measure(run_avx2, threads));
#else
  (void)threads;
  printf("peak none: only x86-64 with GCC is measured\n");
#endif
  return 0;
}
