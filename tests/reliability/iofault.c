/* iofault: an LD_PRELOAD shim that fails the Nth write or fsync of the pitill journal.
 *
 * Built by tests/reliability/test_io_faults.py with gcc into tmp_path; never shipped.
 *
 * It wraps write, pwrite, pwrite64, fsync and fdatasync. A call counts when its file descriptor
 * names a file (readlink /proc/self/fd/N) ending in "journal.sqlite3" or "journal.sqlite3-wal".
 *
 * Arming comes from the simulator script itself: the runner writes every step's text, comments
 * included, to the --events file before it runs the step. When a write to a file whose name ends
 * in IOFAULT_EVENTS (e.g. "events.jsonl") holds "iofault N ERRNO" (ERRNO is EIO or ENOSPC), the
 * Nth journal call from then on fails with that errno without being carried out; later calls go
 * through until the next marker. N = 0 only traces (the calibration run).
 *
 * "iofault after STATUS ERRNO" fills the disk instead: once the journal has made a record with
 * that status durable (its "journal" event reaches the events file), EVERY journal call fails
 * with ERRNO until the next marker (e.g. "iofault 0 EIO") empties it again.
 *
 * IOFAULT_TRACE names a file that gets one line per marker (M id N errno), journal call
 * (C op index file offset; offset -1 for write and the syncs), injected fault (F op index errno),
 * and screen (S title) and journal record (J status) written to the events file, in the one
 * order they happened.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef int (*sync_fn)(int);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static write_fn real_write;
static pwrite_fn real_pwrite;
static pwrite_fn real_pwrite64;
static sync_fn real_fsync;
static sync_fn real_fdatasync;

static long countdown;   /* journal calls left before the armed fault; 0 = not armed */
static int armed_errno;
static long marker_id;
static long calls_since_marker;
static char hold_after[32];  /* "iofault after STATUS": the status that fills the disk */
static int holding;          /* the disk is full: every journal call fails */

enum file_kind { OTHER, JOURNAL, EVENTS };

static void init(void) {
    if (real_write == NULL) {
        real_write = (write_fn)dlsym(RTLD_NEXT, "write");
        real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
        real_pwrite64 = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
        real_fsync = (sync_fn)dlsym(RTLD_NEXT, "fsync");
        real_fdatasync = (sync_fn)dlsym(RTLD_NEXT, "fdatasync");
    }
}

static int ends_with(const char *text, const char *suffix) {
    size_t n = strlen(text), m = strlen(suffix);
    return m > 0 && n >= m && strcmp(text + n - m, suffix) == 0;
}

static enum file_kind kind_of(int fd, const char **name) {
    static char path[4096];
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return OTHER;
    path[n] = '\0';
    *name = ends_with(path, "-wal") ? "wal" : "db";
    if (ends_with(path, "journal.sqlite3") || ends_with(path, "journal.sqlite3-wal"))
        return JOURNAL;
    const char *events = getenv("IOFAULT_EVENTS");
    if (events != NULL && ends_with(path, events)) return EVENTS;
    return OTHER;
}

static void trace(const char *line) {
    const char *path = getenv("IOFAULT_TRACE");
    if (path == NULL) return;
    FILE *f = fopen(path, "ae");
    if (f == NULL) return;
    fputs(line, f);  /* stdio calls the real write: fputs does not come back through us */
    fclose(f);
}

/* An events-file line: arm on a marker, trace screens (their second line is the title) and
 * records the journal made durable. */
static void look_at_events(const char *buf, size_t len) {
    char text[2048];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, buf, n);
    text[n] = '\0';
    char line[256];
    const char *marker = strstr(text, "iofault ");
    if (marker != NULL && strstr(text, "\"step\"") != NULL) {
        long at = 0;
        char name[16] = "";
        char status[32] = "";
        if (sscanf(marker, "iofault %ld %15[A-Z]", &at, name) == 2) {
            countdown = at;
            armed_errno = strcmp(name, "ENOSPC") == 0 ? ENOSPC : EIO;
            marker_id++;
            calls_since_marker = 0;
            holding = 0;
            hold_after[0] = '\0';
            snprintf(line, sizeof line, "M %ld %ld %s\n", marker_id, at, name);
            trace(line);
        } else if (sscanf(marker, "iofault after %31[A-Z_] %15[A-Z]", status, name) == 2) {
            countdown = 0;
            armed_errno = strcmp(name, "ENOSPC") == 0 ? ENOSPC : EIO;
            marker_id++;
            calls_since_marker = 0;
            holding = 0;
            snprintf(hold_after, sizeof hold_after, "%s", status);
            snprintf(line, sizeof line, "M %ld after %s %s\n", marker_id, status, name);
            trace(line);
        }
        return;
    }
    const char *record = strstr(text, "\"event\": \"journal\"");
    const char *status = record != NULL ? strstr(record, "\"status\": \"") : NULL;
    if (status != NULL) {
        status += strlen("\"status\": \"");
        int length = (int)strcspn(status, "\"");
        snprintf(line, sizeof line, "J %.*s\n", length, status);
        trace(line);
        if (hold_after[0] != '\0' && (size_t)length == strlen(hold_after) &&
            strncmp(status, hold_after, (size_t)length) == 0) {
            holding = 1;  /* from the next journal call on, the disk is full */
            hold_after[0] = '\0';
            trace("H full\n");
        }
        return;
    }
    const char *screen = strstr(text, "\"event\": \"screen\", \"text\": \"");
    if (screen != NULL) {
        const char *title = strstr(screen, "\\n");
        if (title != NULL) {
            title += 2;
            size_t t = strcspn(title, "\\\"");
            if (t > 60) t = 60;
            snprintf(line, sizeof line, "S %.*s\n", (int)t, title);
            trace(line);
        }
    }
}

/* 1 when this journal call must fail (errno is then set), 0 to carry it out. */
static int journal_call(const char *op, const char *name, long long offset) {
    char line[160];
    calls_since_marker++;
    snprintf(line, sizeof line, "C %s %ld %s %lld\n", op, calls_since_marker, name, offset);
    trace(line);
    if (holding || (countdown > 0 && --countdown == 0)) {
        snprintf(line, sizeof line, "F %s %ld %s\n", op, calls_since_marker,
                 armed_errno == ENOSPC ? "ENOSPC" : "EIO");
        trace(line);
        return 1;
    }
    return 0;
}

static __thread int busy;  /* our own trace writes must not come back in here */

static int should_fail(int fd, const char *op, const void *buf, size_t len, long long offset) {
    const char *name = "";
    int fail = 0;
    int saved = errno;
    if (busy) return 0;
    busy = 1;
    pthread_mutex_lock(&lock);
    enum file_kind kind = kind_of(fd, &name);
    if (kind == JOURNAL) fail = journal_call(op, name, offset);
    else if (kind == EVENTS && buf != NULL) look_at_events(buf, len);
    int code = armed_errno;
    pthread_mutex_unlock(&lock);
    busy = 0;
    errno = fail ? code : saved;
    return fail;
}

ssize_t write(int fd, const void *buf, size_t len) {
    init();
    if (should_fail(fd, "write", buf, len, -1)) return -1;
    return real_write(fd, buf, len);
}

ssize_t pwrite(int fd, const void *buf, size_t len, off_t offset) {
    init();
    if (should_fail(fd, "pwrite", NULL, 0, (long long)offset)) return -1;
    return real_pwrite(fd, buf, len, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t len, off_t offset) {
    init();
    if (should_fail(fd, "pwrite", NULL, 0, (long long)offset)) return -1;
    return real_pwrite64(fd, buf, len, offset);
}

int fsync(int fd) {
    init();
    if (should_fail(fd, "fsync", NULL, 0, -1)) return -1;
    return real_fsync(fd);
}

int fdatasync(int fd) {
    init();
    if (should_fail(fd, "fsync", NULL, 0, -1)) return -1;
    return real_fdatasync(fd);
}
