/* iofile.c — atomic writes and whole-file reads shared by the file formats. */
#include "formats/io_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cl_atomic_begin(cl_atomic *a, const char *path, const char *who) {
  a->fd = -1;
  a->tmp = NULL;
  a->tmp_size = strlen(path) + 16;
  char *tmp = cl_alloc(a->tmp_size);
  if (!tmp)
    return -1;
  snprintf(tmp, a->tmp_size, "%s.tmp.XXXXXX", path);
  int fd = mkstemp(tmp);
  if (fd < 0) {
    int e = errno;
    cl_dealloc(tmp, a->tmp_size);
    return cl_fail("%s: %s: cannot create a file there: %s", who, path, strerror(e));
  }
  /* mkstemp makes the file private; the result should look like any file the user writes. */
  mode_t mask = umask(0);
  umask(mask);
  if (fchmod(fd, 0666 & ~mask) != 0) {
    /* Harmless: the file is still written, just with narrower permissions. */
  }
  a->fd = fd;
  a->tmp = tmp;
  return 0;
}

static void drop_tmp(cl_atomic *a) {
  if (a->tmp) {
    unlink(a->tmp);
    cl_dealloc(a->tmp, a->tmp_size);
    a->tmp = NULL;
  }
}

void cl_atomic_abort(cl_atomic *a, FILE *f) {
  if (f)
    fclose(f);
  else if (a->fd >= 0)
    close(a->fd);
  a->fd = -1;
  drop_tmp(a);
}

int cl_atomic_commit(cl_atomic *a, FILE *f, const char *path, const char *who) {
  int err = 0;
  errno = 0;
  if (f) {
    if (fflush(f) != 0 || ferror(f))
      err = errno ? errno : EIO;
    if (!err && fsync(fileno(f)) != 0)
      err = errno;
    if (fclose(f) != 0 && !err)
      err = errno ? errno : EIO;
  } else {
    if (fsync(a->fd) != 0)
      err = errno;
    if (close(a->fd) != 0 && !err)
      err = errno;
  }
  a->fd = -1;
  if (!err && rename(a->tmp, path) != 0)
    err = errno;
  if (err) {
    drop_tmp(a);
    return cl_fail("%s: %s: write failed: %s (any earlier file there is unchanged)", who, path,
                   strerror(err));
  }
  cl_dealloc(a->tmp, a->tmp_size);
  a->tmp = NULL;
  /* Make the rename itself durable; failing here loses nothing already written. */
  const char *slash = strrchr(path, '/');
  size_t dlen = slash ? (size_t)(slash - path) : 0;
  char dir[4096];
  if (dlen < sizeof dir) {
    if (dlen == 0)
      strcpy(dir, slash ? "/" : ".");
    else {
      memcpy(dir, path, dlen);
      dir[dlen] = 0;
    }
    int dfd = open(dir, O_RDONLY);
    if (dfd >= 0) {
      if (fsync(dfd) != 0) {
        /* Some file systems refuse fsync on directories; the data is safe either way. */
      }
      close(dfd);
    }
  }
  return 0;
}

int cl_open_regular(const char *path, const char *who, uint64_t *size) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return cl_fail("%s: %s: cannot open: %s", who, path, strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return cl_fail("%s: %s: not a regular file", who, path);
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
    int e = errno;
    close(fd);
    return cl_fail("%s: %s: cannot open: %s", who, path, strerror(e));
  }
  *size = (uint64_t)st.st_size;
  return fd;
}

int cl_read_file(const char *path, const char *who, size_t max, unsigned char **data,
                 size_t *size) {
  *data = NULL;
  *size = 0;
  uint64_t fsize;
  int fd = cl_open_regular(path, who, &fsize);
  if (fd < 0)
    return -1;
  if (fsize > max) {
    close(fd);
    return cl_fail("%s: %s: file too large (%llu bytes, at most %zu accepted)", who, path,
                   (unsigned long long)fsize, max);
  }
  FILE *f = fdopen(fd, "rb");
  if (!f) {
    close(fd);
    return cl_fail("%s: %s: cannot open: %s", who, path, strerror(errno));
  }
  size_t n = (size_t)fsize;
  unsigned char *buf = cl_alloc(n + 1);
  if (!buf) {
    fclose(f);
    return -1;
  }
  size_t got = n ? fread(buf, 1, n, f) : 0;
  int bad = ferror(f);
  fclose(f);
  if (got != n || bad) {
    cl_dealloc(buf, n + 1);
    return cl_fail("%s: %s: read error (got %zu of %zu bytes)", who, path, got, n);
  }
  buf[n] = 0;
  *data = buf;
  *size = n;
  return 0;
}
