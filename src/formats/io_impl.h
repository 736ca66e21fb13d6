/* io_impl.h — what the file-format sources (idx.c, png.c, safetensors.c) share; not public. */
#ifndef CNNLAB_IO_IMPL_H
#define CNNLAB_IO_IMPL_H

#include "core/tensor_impl.h"

#include <stdio.h>

/* An atomic write: the data goes to a temporary file next to the target (same file system,
 * so rename() is atomic), which is synced and renamed over the target only when complete. */
typedef struct cl_atomic {
  int fd;    /* -1 once closed */
  char *tmp; /* the temporary's path (cl_alloc'd), NULL once renamed or removed */
  size_t tmp_size;
} cl_atomic;

/* Creates the temporary (mode 0666 less the umask, as a plain fopen would). `who` starts the
 * error message ("png: out.png: cannot create ..."). */
int cl_atomic_begin(cl_atomic *a, const char *path, const char *who);
/* Syncs and closes the temporary (through f when the caller wrapped the descriptor in a
 * FILE, else a->fd) and renames it to path. On failure the temporary is removed. */
int cl_atomic_commit(cl_atomic *a, FILE *f, const char *path, const char *who);
/* Closes (through f if given) and removes the temporary; safe to call after a failed commit. */
void cl_atomic_abort(cl_atomic *a, FILE *f);

/* Opens path for reading, refusing anything but a regular file without blocking: the open is
 * non-blocking (a FIFO with no writer would otherwise block in open() forever), the check is
 * fstat on the descriptor itself (no window between a check and the open), and the descriptor
 * is made blocking again for the reads. Returns the descriptor (its size in *size) or -1 with
 * a message starting with `who`. */
int cl_open_regular(const char *path, const char *who, uint64_t *size);

/* Reads a whole file into a cl_alloc'd buffer (*size bytes, buffer size *size + 1 with a NUL
 * after the data). max bounds the size accepted. */
int cl_read_file(const char *path, const char *who, size_t max, unsigned char **data, size_t *size);

#endif
