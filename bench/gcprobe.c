/* gcprobe: the disk's group-commit limit for a spool (benchmark helper, not part of carrier).
 *
 *   gcprobe DIR THREADS SECONDS BYTES new|recycle
 *
 * THREADS threads each loop, for SECONDS: write BYTES into a file in DIR/tmp, fdatasync it,
 * rename it into DIR/queue, and wait until an fsync of DIR/queue that started after the rename
 * has finished (group commit: the first waiter fsyncs the directory for every rename before
 * it, the others wait for that fsync or the next one). That is the durability protocol of
 * carrier's spool (fdatasync + rename + shared directory fsync) with nothing else around it:
 * the most any MTA can get from this disk with those syncs. The message then leaves the queue
 * as after a delivery: "new" unlinks it (the next message creates a new file), "recycle"
 * renames it into DIR/free and the thread's next message overwrites and truncates it there
 * and renames it from free/ into queue/ (as carrier's spool file recycling does), so no inode
 * or block is allocated per message.
 * Prints: gcprobe mode=M threads=N bytes=B ops=K ops_per_s=R avg_lat_us=L dir_fsyncs=F
 * DIR must exist on the disk under test; the probe makes and removes its subdirectories. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int tmp_fd, queue_fd, free_fd, recycle;
static double secs;
static size_t bytes;
static char *buf;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned long renamed_seq, synced_seq, dir_fsyncs;
static int leader_active;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
  perror(what);
  exit(1);
}

/* Returns when an fsync(queue/) that began after this thread's rename has completed. */
static void group_commit(void) {
  pthread_mutex_lock(&mu);
  unsigned long mine = ++renamed_seq;
  while (synced_seq < mine) {
    if (!leader_active) {
      leader_active = 1;
      unsigned long upto = renamed_seq;
      pthread_mutex_unlock(&mu);
      if (fsync(queue_fd) != 0) die("fsync queue/");
      pthread_mutex_lock(&mu);
      synced_seq = upto;
      dir_fsyncs++;
      leader_active = 0;
      pthread_cond_broadcast(&cv);
    } else {
      pthread_cond_wait(&cv, &mu);
    }
  }
  pthread_mutex_unlock(&mu);
}

static void *worker(void *arg) {
  long id = (long)arg, n = 0;
  char name[64], spare[64];
  int have_spare = 0;
  for (double end = now() + secs; now() < end; n++) {
    snprintf(name, sizeof name, "m.%ld.%ld", id, n);
    int fd, src_fd = tmp_fd;
    const char *src = name;
    if (recycle && have_spare) {  /* written where it lies, in free/ */
      src_fd = free_fd;
      src = spare;
      fd = openat(free_fd, spare, O_WRONLY | O_CLOEXEC);
    } else {
      fd = openat(tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) die("open tmp/ file");
    size_t off = 0;
    while (off < bytes) {
      ssize_t w = pwrite(fd, buf + off, bytes - off, (off_t)off);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) die("write");
      off += (size_t)w;
    }
    if (recycle && have_spare && ftruncate(fd, (off_t)bytes) != 0) die("ftruncate");
    if (fdatasync(fd) != 0) die("fdatasync");
    close(fd);
    if (renameat(src_fd, src, queue_fd, name) != 0) die("rename into queue/");
    group_commit();
    /* delivered: leave the queue */
    if (recycle) {
      if (renameat(queue_fd, name, free_fd, name) != 0) die("rename queue/ -> free/");
      memcpy(spare, name, sizeof name);
      have_spare = 1;
    } else if (unlinkat(queue_fd, name, 0) != 0) {
      die("unlink");
    }
  }
  if (have_spare) unlinkat(free_fd, spare, 0);
  return (void *)n;
}

static int subdir(const char *dir, const char *sub) {
  char p[4096];
  snprintf(p, sizeof p, "%s/%s", dir, sub);
  if (mkdir(p, 0700) != 0 && errno != EEXIST) die(p);
  int fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) die(p);
  return fd;
}

int main(int argc, char **argv) {
  if (argc != 6 || (strcmp(argv[5], "new") && strcmp(argv[5], "recycle"))) {
    fprintf(stderr, "usage: %s DIR THREADS SECONDS BYTES new|recycle\n", argv[0]);
    return 2;
  }
  const char *dir = argv[1];
  int nt = atoi(argv[2]);
  secs = atof(argv[3]);
  bytes = (size_t)atol(argv[4]);
  recycle = !strcmp(argv[5], "recycle");
  if (nt < 1 || nt > 2000 || secs <= 0 || secs > 600 || bytes < 1 || bytes > (64u << 20)) return 2;
  buf = malloc(bytes);
  if (!buf) die("malloc");
  memset(buf, 'x', bytes);
  tmp_fd = subdir(dir, "tmp");
  queue_fd = subdir(dir, "queue");
  free_fd = subdir(dir, "free");
  pthread_t *th = calloc((size_t)nt, sizeof *th);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  double t0 = now();
  for (long i = 0; i < nt; i++)
    if (pthread_create(&th[i], &attr, worker, (void *)i) != 0) die("pthread_create");
  long total = 0;
  for (int i = 0; i < nt; i++) {
    void *r;
    pthread_join(th[i], &r);
    total += (long)r;
  }
  double el = now() - t0;
  printf("gcprobe mode=%s threads=%d bytes=%zu ops=%ld ops_per_s=%.0f avg_lat_us=%.0f dir_fsyncs=%lu\n",
         argv[5], nt, bytes, total, total / el, total ? el * nt / total * 1e6 : 0, dir_fsyncs);
  return 0;
}
