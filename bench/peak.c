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
 * panel: an MR × (2 vectors) block of accumulators; per step two loads of b and MR broadcasts of
 * a; c += the block at the end. Written with intrinsics: left to the vectoriser, GCC broadcast b
 * instead of a under AVX2 and kept half the accumulators on the stack.
 * The block must fit the register file with room for b and a broadcast, or accumulators spill
 * and every FMA waits on a store and a load: AVX-512 has 32 vector registers, so 8 rows = 16
 * accumulators; AVX2 has 16, so 6 rows = 12 accumulators (+ two b vectors + one broadcast).
 * Both keep more independent chains than the 8 that two FMA pipes of latency 4 need. (The
 * earlier plain-C 8×32 block under AVX2 needed 32 accumulators and read 36 GFLOP/s on a Zen 3
 * core whose two 256-bit pipes give about 78.) */
#define STEPS 256
#define B_WIDTH 32 /* floats of b per step in the panel: two AVX-512 vectors */
static float a_panel[STEPS * 8], b_panel[STEPS * B_WIDTH];

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define HAVE_X86 1
#include <immintrin.h>

__attribute__((target("avx512f"))) static inline __m512 _mm512_set1_ps_ptr(const float *x) {
  return _mm512_set1_ps(*x);
}

/* One row of the block: acc_i0/acc_i1 += a[i] × (b0, b1). Named variables, not an array: GCC
 * kept an accumulator array in registers but also stored it to the stack on every step. */
#define ROW(i)                                                                                     \
  do {                                                                                             \
    VEC a_ = BCAST(a_panel + p * 8 + (i));                                                         \
    acc##i##0 = FMA(a_, b0, acc##i##0);                                                            \
    acc##i##1 = FMA(a_, b1, acc##i##1);                                                            \
  } while (0)
#define DECLARE(i) VEC acc##i##0 = ZERO(), acc##i##1 = ZERO()
#define FLUSH(i)                                                                                   \
  do {                                                                                             \
    float out[2 * W];                                                                              \
    STORE(out, acc##i##0);                                                                         \
    STORE(out + W, acc##i##1);                                                                     \
    for (int j = 0; j < 2 * W; j++)                                                                \
      c[(i) * 2 * W + j] += out[j];                                                                \
  } while (0)
#define RUNNER(name, arch, MR, ROWS)                         \
  __attribute__((noinline, target(arch))) static void name##_block(float *c) {                     \
    ROWS(DECLARE);                                                                                 \
    for (int p = 0; p < STEPS; p++) {                                                              \
      VEC b0 = LOAD(b_panel + p * B_WIDTH), b1 = LOAD(b_panel + p * B_WIDTH + W);                  \
      ROWS(ROW);                                                                                   \
    }                                                                                              \
    ROWS(FLUSH);                                                                                   \
  }                                                                                                \
  static float name(long reps) {                                                                   \
    float c[MR * 2 * W] = {0};                                                                     \
    for (long r = 0; r < reps; r++)                                                                \
      name##_block(c);                                                                             \
    return c[0] + c[MR * 2 * W - 1];                                                               \
  }                                                                                                \
  enum { name##_fmas = MR * 2 * W }; /* multiply-adds per step */
#define ROWS6(X) X(0); X(1); X(2); X(3); X(4); X(5)
#define ROWS8(X) ROWS6(X); X(6); X(7)
#define VEC __m512
#define W 16
#define ZERO _mm512_setzero_ps
#define LOAD _mm512_loadu_ps
#define BCAST _mm512_set1_ps_ptr
#define FMA _mm512_fmadd_ps
#define STORE _mm512_storeu_ps
RUNNER(run_avx512, "avx512f,fma", 8, ROWS8)
#undef VEC
#undef W
#undef ZERO
#undef LOAD
#undef BCAST
#undef FMA
#undef STORE
#define VEC __m256
#define W 8
#define ZERO _mm256_setzero_ps
#define LOAD _mm256_loadu_ps
#define BCAST _mm256_broadcast_ss
#define FMA _mm256_fmadd_ps
#define STORE _mm256_storeu_ps
RUNNER(run_avx2, "avx2,fma", 6, ROWS6)

typedef float (*runner)(long);

/* GFLOP/s per thread, the median of each thread's rate, `threads` threads at once. */
static double measure(runner run, int fmas_per_step, int threads) {
  long iters = 100L * 1000 * 256 / fmas_per_step; /* about 13 GFLOP per timing */
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
      double dt = thread_seconds() - t0, rate = 2.0 * STEPS * fmas_per_step * (double)iters / dt / 1e9;
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
  for (int i = 0; i < STEPS * B_WIDTH; i++)
    b_panel[i] = 1e-3f * (float)(i % 13);
  describe_cpu();
#ifdef HAVE_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v4"))
    printf("peak avx512 %d %.1f\n", threads, measure(run_avx512, run_avx512_fmas, threads));
  if (__builtin_cpu_supports("x86-64-v3"))
    printf("peak avx2 %d %.1f\n", threads, measure(run_avx2, run_avx2_fmas, threads));
#else
  (void)threads;
  printf("peak none: only x86-64 with GCC is measured\n");
#endif
  return 0;
}
