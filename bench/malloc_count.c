/* malloc_count.so: counts heap allocations of a process (benchmark helper, not part of carrier).
 *
 *   gcc -O2 -shared -fPIC -o malloc_count.so bench/malloc_count.c
 *   MALLOC_COUNT_OUT=/tmp/counts LD_PRELOAD=./malloc_count.so carrier serve ...
 *
 * Wraps malloc, calloc, realloc, free, posix_memalign, aligned_alloc, memalign (C++ operator new
 * ends in malloc) and forwards them to glibc's __libc_* functions; at exit writes one line
 * "allocs=N frees=N bytes=N reallocs=N" to $MALLOC_COUNT_OUT (or stderr). bench/profile.sh
 * runs the server with and without a known number of messages: the difference over the
 * messages is the allocations per message. Relaxed atomic counters: cheap, exact totals. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
extern void *__libc_memalign(size_t, size_t);

static atomic_ulong n_alloc, n_free, n_bytes, n_realloc;

static inline void count(size_t bytes) {
  atomic_fetch_add_explicit(&n_alloc, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_bytes, bytes, memory_order_relaxed);
}

void *malloc(size_t n) {
  count(n);
  return __libc_malloc(n);
}

void *calloc(size_t a, size_t b) {
  count(a * b);
  return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n) {
  atomic_fetch_add_explicit(&n_realloc, 1, memory_order_relaxed);
  if (!p) count(n);
  return __libc_realloc(p, n);
}

void free(void *p) {
  if (p) atomic_fetch_add_explicit(&n_free, 1, memory_order_relaxed);
  __libc_free(p);
}

void *memalign(size_t al, size_t n) {
  count(n);
  return __libc_memalign(al, n);
}

void *aligned_alloc(size_t al, size_t n) {
  count(n);
  return __libc_memalign(al, n);
}

int posix_memalign(void **out, size_t al, size_t n) {
  count(n);
  void *p = __libc_memalign(al, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

__attribute__((destructor)) static void report(void) {
  const char *path = getenv("MALLOC_COUNT_OUT");
  FILE *f = path ? fopen(path, "w") : stderr;
  if (!f) return;
  fprintf(f, "allocs=%lu frees=%lu bytes=%lu reallocs=%lu\n", atomic_load(&n_alloc),
          atomic_load(&n_free), atomic_load(&n_bytes), atomic_load(&n_realloc));
  if (f != stderr) fclose(f);
}
