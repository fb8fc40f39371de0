/*
 * mesa's FUSE binding: libfuse3's low-level API as a Node-API addon.
 *
 * Threads:
 * - libfuse's multi-threaded session loop reads requests from /dev/fuse. Requests that need the
 *   filesystem's data are queued to JavaScript through one thread-safe function and the worker
 *   goes straight back to reading: it never waits for JavaScript. JavaScript answers each
 *   request later, on the main thread, with one of the reply functions below.
 * - Requests that need no data are answered on the worker itself: readdir chunks after the
 *   first (the listing JavaScript gave for the first is kept), readdirs and lookups in a
 *   directory whose kept listing is still exact (see session.gen; JavaScript hands over the
 *   listings of a listed directory's subdirectories ahead of the kernel), getattrs of
 *   directories such a listing shows (see dir_attr), forget, read-only opens of committed
 *   files, and reads of committed files whose content is in a local file JavaScript named
 *   (the disk cache's blob). Opendir is answered ENOSYS once where the kernel supports
 *   that: it then opens directories without asking (no opendir/releasedir round trips) and
 *   keeps their listings in its page cache; readdir then comes with handle 0 and listings are
 *   kept per inode.
 *   Open and flush likewise, so a warm read of a file sends nothing at all (files created with
 *   create still get their own handle and release).
 * - Readdirplus replies carry attributes for directories always and for files only while
 *   callers look files up (see files_wanted): a walk that reads only names then gives the
 *   kernel no inode per file to make.
 * - Kernel cache invalidations run on their own notifier thread: libfuse's notify calls block
 *   while the kernel holds a lock that a pending request may hold too, and that request is
 *   answered by JavaScript, so calling them on the main thread could deadlock.
 */
#define FUSE_USE_VERSION 314
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <node_api.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Operation codes shared with src/fuse/native.ts (keep in step). */
enum {
  OP_INIT = 1, OP_ENDED, OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD,
  OP_MKDIR, OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE,
  OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_READDIR, OP_STATFS, OP_CREATE, OP_SETXATTR, OP_REMOVEXATTR,
  OP_LOOKUPS /* entries a readdirplus chunk handed to the kernel */, OP_LISTED /* a listing served here */
};

#define ATTR_FIELDS 9 /* ino, mode, size, uid, gid, nlink, atime ms, mtime ms, ctime ms */

/* The first member of whatever an ino_map holds (listings, backing files). */
typedef struct ino_link {
  struct ino_link *next;
  fuse_ino_t ino;
} ino_link;

/* A chained hash map by inode; callers hold `lock` around map_find, map_take and map_insert. */
typedef struct ino_map {
  pthread_mutex_t lock;
  ino_link **buckets;
  size_t nbuckets, count;
} ino_map;

typedef struct dir_handle {
  ino_link link; /* ino: the directory */
  pthread_mutex_t lock;
  fuse_ino_t parent;
  int filled;
  size_t count;
  char **names;
  double *attrs; /* ATTR_FIELDS per entry */
  double entry_timeout, attr_timeout;
  /* Listings kept by inode: the session's generation it was made at (0: not known). While that
   * is still the generation, the listing is exactly the directory's and answers readdirs from
   * offset 0 and lookups of its names (and misses) here. */
  unsigned long gen;
} dir_handle;

/*
 * A directory's attributes as its parent's exact listing gave them, kept by inode: a getattr
 * of the directory is answered here while the generation is still the listing's (the kernel
 * asks again after every readdir, to refresh the atime, so each directory of a warm walk would
 * otherwise cost a trip through JavaScript).
 */
typedef struct dir_attr {
  ino_link link;
  unsigned long gen;
  double attr_timeout;
  double a[ATTR_FIELDS];
} dir_attr;

typedef struct request {
  int op;
  fuse_req_t req;
  fuse_ino_t ino, ino2;
  char *name, *name2;
  uint64_t fh;
  int has_fh;
  off_t off;
  size_t size;
  uint32_t mode, flags, uid, gid;
  uint64_t rdev;
  int to_set;
  struct stat attr;
  char *data;
  size_t datalen;
  uint64_t *inos; /* OP_FORGET (pairs ino, nlookup) and OP_LOOKUPS */
  size_t ninos;
} request;

typedef struct notify_item {
  struct notify_item *next;
  int entry; /* 1: inval_entry(ino, name); 0: inval_inode(ino, off, len) */
  fuse_ino_t ino;
  char *name;
  off_t off, len;
} notify_item;

/*
 * Inodes whose content is a committed blob that only changes through an explicit
 * invalidation: a read-only open of one is answered here (handle 0, page cache kept) and its
 * release too, so repeated reads of committed files never reach JavaScript. Open addressing,
 * linear probing, tombstones; guarded by one mutex (lookups are short).
 */
typedef struct ino_set {
  pthread_mutex_t lock;
  uint64_t *slots; /* 0 empty, UINT64_MAX removed */
  size_t cap, used, live;
} ino_set;

#define SLOT_EMPTY 0
#define SLOT_GONE UINT64_MAX

static size_t slot_of(uint64_t ino, size_t cap) { return (size_t)((ino * 0x9E3779B97F4A7C15ULL) >> 7) & (cap - 1); }

static int set_find(const ino_set *t, uint64_t ino, size_t *at) {
  if (!t->cap) return 0;
  for (size_t i = slot_of(ino, t->cap), n = 0; n < t->cap; i = (i + 1) & (t->cap - 1), n++) {
    if (t->slots[i] == SLOT_EMPTY) return 0;
    if (t->slots[i] == ino) {
      *at = i;
      return 1;
    }
  }
  return 0;
}

static void set_grow(ino_set *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  if (t->live * 4 < t->cap) cap = t->cap; /* mostly tombstones: rehash in place */
  uint64_t *old = t->slots;
  size_t old_cap = t->cap;
  t->slots = calloc(cap, sizeof(uint64_t));
  t->cap = cap;
  t->used = t->live = 0;
  for (size_t i = 0; i < old_cap; i++) {
    uint64_t v = old[i];
    if (v == SLOT_EMPTY || v == SLOT_GONE) continue;
    size_t j = slot_of(v, cap);
    while (t->slots[j] != SLOT_EMPTY) j = (j + 1) & (cap - 1);
    t->slots[j] = v;
    t->used++;
    t->live++;
  }
  free(old);
}

static void set_put(ino_set *t, uint64_t ino, int on) {
  pthread_mutex_lock(&t->lock);
  size_t at;
  int found = set_find(t, ino, &at);
  if (on && !found) {
    if ((t->used + 1) * 4 >= t->cap * 3) set_grow(t);
    size_t j = slot_of(ino, t->cap);
    while (t->slots[j] != SLOT_EMPTY && t->slots[j] != SLOT_GONE) j = (j + 1) & (t->cap - 1);
    if (t->slots[j] == SLOT_EMPTY) t->used++;
    t->slots[j] = ino;
    t->live++;
  } else if (!on && found) {
    t->slots[at] = SLOT_GONE;
    t->live--;
  }
  pthread_mutex_unlock(&t->lock);
}

static int set_has(ino_set *t, uint64_t ino) {
  pthread_mutex_lock(&t->lock);
  size_t at;
  int found = set_find(t, ino, &at);
  pthread_mutex_unlock(&t->lock);
  return found;
}

/*
 * Local files holding a committed inode's content exactly (blobs in the daemon's disk cache),
 * by inode: reads with handle 0 of such an inode are answered here from the file, so a first
 * read of cached content never waits for JavaScript. Set by JavaScript when it reports the
 * inode (lookup, getattr, listing) or after it served a read; dropped before anything may
 * change the inode's content (a write or truncate arriving here, an invalidation, JavaScript
 * saying so) and when the file is gone (the cache evicted it: the read then goes to JavaScript).
 */
typedef struct backing {
  ino_link link;
  /* The content is `length` bytes at `offset` of the file (blobs share segment files). */
  off_t offset, length;
  char path[];
} backing;

typedef struct session {
  struct fuse_session *se;
  napi_threadsafe_function tsfn;
  pthread_t loop_thread, notify_thread;
  char *mountpoint;
  int no_open_dirs;
  /* Files too (asked for at mount, kernel permitting): every open gets handle 0 and
   * JavaScript keeps one handle per inode. */
  int kernel_opens;
  int no_open_files;
  int max_threads;
  atomic_long outstanding; /* requests handed to JavaScript and not answered yet */
  atomic_long queued;      /* of those, not yet taken up by JavaScript's event loop */
  atomic_int ended;
  int destroyed;
  pid_t own_pid;
  pthread_mutex_t nlock;
  pthread_cond_t ncond;
  notify_item *nhead, *ntail;
  int nstop;
  ino_set committed;
  /* Readdirplus replies give files' attributes only while some caller wants them (see
   * files_wanted): until this time (CLOCK_MONOTONIC ns). Directories whose listing the kernel
   * got without them are in `names_only`, to drop from its cache when that changes. */
  atomic_llong files_wanted_until;
  ino_set names_only;
  atomic_ulong lookups_answered; /* by a kept listing, here (see lookupsAnswered) */
  /* Listings of directories read with handle 0 (no opendir), given by JavaScript for a
   * readdir or ahead of one (prefill): used for the chunks after the first, for whole readdirs
   * and lookups while exact, dropped on invalidation or forget of the inode (or at the end of
   * a read when no longer exact). The lock is held while a chunk is built from one. */
  ino_map listings; /* of dir_handle */
  ino_map backings; /* of backing */
  ino_map dir_attrs; /* of dir_attr */
  /* Generation of the namespace: advanced whenever a name or an attribute may have changed (a
   * mutating request's reply, an invalidation), so listings made before stop answering for
   * the directory. Mutating requests in flight are kept to advance it again as they are
   * answered: a listing made while one ran may or may not show its effect. */
  atomic_ulong gen;
  pthread_mutex_t mlock;
  fuse_req_t *mutating;
  size_t nmutating, capmutating;
  atomic_int any_mutating;
} session;

/* ---- helpers ---------------------------------------------------------------------------- */

static session *session_of(fuse_req_t req) { return (session *)fuse_req_userdata(req); }

static char *dup_str(const char *s) { return s ? strdup(s) : NULL; }

static request *new_request(int op, fuse_req_t req, fuse_ino_t ino) {
  request *r = calloc(1, sizeof(request));
  r->op = op;
  r->req = req;
  r->ino = ino;
  return r;
}

static void free_request(request *r) {
  free(r->name);
  free(r->name2);
  free(r->data);
  free(r->inos);
  free(r);
}

/* Queues a request for JavaScript; the worker returns to the loop at once. */
static void to_js(session *s, request *r) {
  if (r->req) {
    atomic_fetch_add(&s->outstanding, 1);
    atomic_fetch_add(&s->queued, 1);
  }
  if (napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_nonblocking) != napi_ok) {
    if (r->req) {
      atomic_fetch_sub(&s->outstanding, 1);
      atomic_fetch_sub(&s->queued, 1);
      fuse_reply_err(r->req, EIO);
    }
    free_request(r);
  }
}

/* The daemon touching its own mount from its event loop would wait for itself: refuse. */
static int from_self(fuse_req_t req) {
  const struct fuse_ctx *ctx = fuse_req_ctx(req);
  if (ctx->pid == session_of(req)->own_pid) {
    fuse_reply_err(req, EDEADLK);
    return 1;
  }
  return 0;
}

static void caller(request *r) {
  const struct fuse_ctx *ctx = fuse_req_ctx(r->req);
  r->uid = ctx->uid;
  r->gid = ctx->gid;
}

/* A request that may change names or attributes is on its way to JavaScript. */
static void mutation_begins(session *s, fuse_req_t req) {
  pthread_mutex_lock(&s->mlock);
  if (s->nmutating == s->capmutating) {
    s->capmutating = s->capmutating ? s->capmutating * 2 : 16;
    s->mutating = realloc(s->mutating, s->capmutating * sizeof(fuse_req_t));
  }
  s->mutating[s->nmutating++] = req;
  atomic_store(&s->any_mutating, 1);
  atomic_fetch_add(&s->gen, 1);
  pthread_mutex_unlock(&s->mlock);
}

/* Called before every reply from JavaScript: a mutating request's effect is in place now. */
static void mutation_replied(session *s, fuse_req_t req) {
  if (!atomic_load(&s->any_mutating)) return;
  pthread_mutex_lock(&s->mlock);
  for (size_t i = 0; i < s->nmutating; i++)
    if (s->mutating[i] == req) {
      s->mutating[i] = s->mutating[--s->nmutating];
      atomic_fetch_add(&s->gen, 1);
      break;
    }
  atomic_store(&s->any_mutating, s->nmutating > 0);
  pthread_mutex_unlock(&s->mlock);
}

/* The kept listing of `ino` while it is exact, with the listings' lock held; NULL (unlocked) otherwise. */
static dir_handle *exact_listing(session *s, fuse_ino_t ino);
static void lookups_held(session *s, uint64_t *inos, size_t n);

/* ---- low-level operations -------------------------------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn) {
  session *s = userdata;
  /* Walkers (ripgrep) run many threads: let the kernel keep many reads in flight. */
  conn->max_background = 64;
  conn->congestion_threshold = 48;
  conn->time_gran = 1;
  unsigned want = FUSE_CAP_READDIRPLUS | FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_CACHE_SYMLINKS |
                  FUSE_CAP_ASYNC_READ | FUSE_CAP_AUTO_INVAL_DATA;
  conn->want |= want & conn->capable;
  /* The kernel can open directories without us: opendir answers ENOSYS (see op_opendir). */
  s->no_open_dirs = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
  /* And files: open, flush and release answer ENOSYS once (see op_open). */
  s->no_open_files = s->kernel_opens && (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) != 0;
  /* With atomic O_TRUNC the kernel leaves truncation to the open it then never sends. */
  if (s->no_open_files) conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
  /* Always READDIRPLUS: a walk then needs no lookup per entry. */
  conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  /* The kernel clears setuid/setgid itself (via setattr), as POSIX says. */
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
  request *r = new_request(OP_INIT, NULL, 0);
  to_js(s, r);
}

static void fill_stat(struct stat *st, const double *a);
static void enqueue_notify(session *s, notify_item *it);

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* How long after a caller last asked for a file's attributes readdirplus replies include them. */
#define FILES_WANTED_NS 2000000000LL

/*
 * A lookup asked for a file's attributes. Readdirplus replies give the kernel an inode for
 * every entry with attributes, and making 40,000 of them took a third of a name-only walk's
 * time (`rg --files`, `find -name`: names and types from the listing are all they read); so
 * files get theirs only while callers want them, as `ls -l`, `stat` or a reader opening files do:
 * their lookups turn them on for the next readdirplus replies. Listings the kernel already
 * keeps without them are dropped from its cache then, so its next readdir asks again.
 */
static void files_wanted(session *s) {
  long long now = now_ns();
  if (atomic_exchange(&s->files_wanted_until, now + FILES_WANTED_NS) >= now) return;
  ino_set *t = &s->names_only;
  pthread_mutex_lock(&t->lock);
  uint64_t *slots = t->slots;
  size_t cap = t->cap;
  t->slots = NULL;
  t->cap = t->used = t->live = 0;
  pthread_mutex_unlock(&t->lock);
  for (size_t i = 0; i < cap; i++) {
    if (slots[i] == SLOT_EMPTY || slots[i] == SLOT_GONE) continue;
    notify_item *it = calloc(1, sizeof(notify_item));
    it->ino = (fuse_ino_t)slots[i];
    enqueue_notify(s, it);
  }
  free(slots);
}

/* Answers a lookup from the parent's exact listing: its entry, or a miss. 0: JavaScript must. */
static int lookup_in_listing(session *s, fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (strlen(name) > 255) return 0; /* ENAMETOOLONG comes from JavaScript */
  dir_handle *l = exact_listing(s, parent);
  if (!l) return 0;
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  int answer = 1;
  size_t i = 0;
  while (i < l->count && strcmp(l->names[i], name) != 0) i++;
  if (i < l->count) {
    const double *a = l->attrs + i * ATTR_FIELDS;
    answer = a[5] != 0; /* nlink 0: attributes not known here */
    fill_stat(&e.attr, a);
    e.ino = e.attr.st_ino;
    e.attr_timeout = l->attr_timeout;
  }
  e.entry_timeout = l->entry_timeout;
  pthread_mutex_unlock(&s->listings.lock);
  if (!answer) return 0;
  atomic_fetch_add(&s->lookups_answered, 1);
  if (e.ino && !S_ISDIR(e.attr.st_mode)) files_wanted(s);
  if (e.ino) {
    uint64_t *held = malloc(sizeof(uint64_t));
    held[0] = e.ino;
    lookups_held(s, held, 1);
  }
  fuse_reply_entry(req, &e);
  return 1;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (from_self(req)) return;
  if (lookup_in_listing(session_of(req), req, parent, name)) return;
  request *r = new_request(OP_LOOKUP, req, parent);
  r->name = dup_str(name);
  to_js(session_of(req), r);
}

static void drop_listing(session *s, fuse_ino_t ino);
static void drop_dir_attrs(session *s, fuse_ino_t ino);
static int getattr_of_dir(session *s, fuse_req_t req, fuse_ino_t ino);
static void drop_backing(session *s, fuse_ino_t ino);
static int read_backing(session *s, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off);

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  request *r = new_request(OP_FORGET, NULL, 0);
  r->inos = malloc(2 * sizeof(uint64_t));
  r->inos[0] = ino;
  r->inos[1] = nlookup;
  r->ninos = 1;
  session *s = session_of(req);
  drop_listing(s, ino);
  drop_dir_attrs(s, ino);
  set_put(&s->names_only, ino, 0);
  fuse_reply_none(req);
  to_js(s, r);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets) {
  request *r = new_request(OP_FORGET, NULL, 0);
  r->inos = malloc(2 * sizeof(uint64_t) * (count ? count : 1));
  for (size_t i = 0; i < count; i++) {
    r->inos[2 * i] = forgets[i].ino;
    r->inos[2 * i + 1] = forgets[i].nlookup;
  }
  r->ninos = count;
  session *s = session_of(req);
  for (size_t i = 0; i < count; i++) {
    drop_listing(s, forgets[i].ino);
    drop_dir_attrs(s, forgets[i].ino);
    set_put(&s->names_only, forgets[i].ino, 0);
  }
  fuse_reply_none(req);
  to_js(s, r);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (from_self(req)) return;
  if (getattr_of_dir(session_of(req), req, ino)) return;
  request *r = new_request(OP_GETATTR, req, ino);
  if (fi) {
    r->fh = fi->fh;
    r->has_fh = 1;
  }
  to_js(session_of(req), r);
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  if (from_self(req)) return;
  if (to_set & FUSE_SET_ATTR_SIZE) drop_backing(session_of(req), ino);
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_SETATTR, req, ino);
  r->attr = *attr;
  r->to_set = to_set;
  if (fi) {
    r->fh = fi->fh;
    r->has_fh = 1;
  }
  to_js(session_of(req), r);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  if (from_self(req)) return;
  to_js(session_of(req), new_request(OP_READLINK, req, ino));
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_MKNOD, req, parent);
  r->name = dup_str(name);
  r->rdev = rdev;
  caller(r);
  r->mode = mode;
  to_js(session_of(req), r);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_MKDIR, req, parent);
  r->name = dup_str(name);
  caller(r);
  r->mode = mode;
  to_js(session_of(req), r);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_UNLINK, req, parent);
  r->name = dup_str(name);
  to_js(session_of(req), r);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_RMDIR, req, parent);
  r->name = dup_str(name);
  to_js(session_of(req), r);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_SYMLINK, req, parent);
  r->name = dup_str(name);
  r->name2 = dup_str(link);
  caller(r);
  to_js(session_of(req), r);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_RENAME, req, parent);
  r->name = dup_str(name);
  r->ino2 = newparent;
  r->name2 = dup_str(newname);
  r->flags = flags;
  to_js(session_of(req), r);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_LINK, req, ino);
  r->ino2 = newparent;
  r->name2 = dup_str(newname);
  to_js(session_of(req), r);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (from_self(req)) return;
  session *s = session_of(req);
  if (s->no_open_files) {
    /* Once: the kernel then opens files itself (handle 0, page cache kept) and sends no
     * release; reads and writes with handle 0 go to the inode's shared handle in JavaScript. */
    fuse_reply_err(req, ENOSYS);
    return;
  }
  if ((fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC) && set_has(&s->committed, ino)) {
    /* Handle 0: reads of pages the kernel lacks go to JavaScript, which reads the file by inode. */
    fi->fh = 0;
    fi->keep_cache = 1;
    fi->noflush = 1;
    fuse_reply_open(req, fi);
    return;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
    drop_backing(s, ino);
    mutation_begins(s, req);
  }
  request *r = new_request(OP_OPEN, req, ino);
  r->flags = fi->flags;
  to_js(session_of(req), r);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  if (fi->fh == 0 && read_backing(session_of(req), req, ino, size, off)) return;
  request *r = new_request(OP_READ, req, ino);
  r->fh = fi->fh;
  r->size = size;
  r->off = off;
  to_js(session_of(req), r);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi) {
  drop_backing(session_of(req), ino); /* its content is about to change */
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_WRITE, req, ino);
  r->fh = fi->fh;
  r->off = off;
  /* libfuse reuses its buffer once this returns: JavaScript gets its own copy. */
  r->data = malloc(size ? size : 1);
  memcpy(r->data, buf, size);
  r->datalen = size;
  to_js(session_of(req), r);
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (session_of(req)->no_open_files) {
    /* Flush does nothing here (writes land at once): once ENOSYS, closes send nothing. */
    fuse_reply_err(req, ENOSYS);
    return;
  }
  request *r = new_request(OP_FLUSH, req, ino);
  r->fh = fi->fh;
  to_js(session_of(req), r);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (fi->fh == 0) { /* opened here: nothing to let go of */
    fuse_reply_err(req, 0);
    return;
  }
  request *r = new_request(OP_RELEASE, req, ino);
  r->fh = fi->fh;
  to_js(session_of(req), r);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi) {
  request *r = new_request(OP_FSYNC, req, ino);
  r->fh = fi->fh;
  r->flags = datasync;
  to_js(session_of(req), r);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  if (from_self(req)) return;
  if (session_of(req)->no_open_dirs) {
    /* Once: the kernel then opens directories itself (handle 0, listings cached, no releasedir). */
    fuse_reply_err(req, ENOSYS);
    return;
  }
  dir_handle *d = calloc(1, sizeof(dir_handle));
  pthread_mutex_init(&d->lock, NULL);
  d->link.ino = ino;
  fi->fh = (uint64_t)(uintptr_t)d;
  /* Listings are answered from memory and the kernel may keep them: it is told when they change. */
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  fuse_reply_open(req, fi);
}

static void free_dir(dir_handle *d) {
  for (size_t i = 0; i < d->count; i++) free(d->names[i]);
  free(d->names);
  free(d->attrs);
  pthread_mutex_destroy(&d->lock);
  free(d);
}

static ino_link **map_slot(ino_map *m, fuse_ino_t ino) {
  if (!m->nbuckets) return NULL;
  ino_link **p = &m->buckets[slot_of(ino, m->nbuckets)];
  while (*p && (*p)->ino != ino) p = &(*p)->next;
  return p;
}

static void *map_find(ino_map *m, fuse_ino_t ino) {
  ino_link **p = map_slot(m, ino);
  return p ? *p : NULL;
}

/* Unlinks the inode's entry and returns it (the caller frees it), or NULL. */
static void *map_take(ino_map *m, fuse_ino_t ino) {
  ino_link **p = map_slot(m, ino);
  if (!p || !*p) return NULL;
  ino_link *e = *p;
  *p = e->next;
  m->count--;
  return e;
}

/* Adds `e`, whose inode has no entry. */
static void map_insert(ino_map *m, ino_link *e) {
  if (m->count + 1 > m->nbuckets) {
    size_t n = m->nbuckets ? m->nbuckets * 2 : 64;
    ino_link **b = calloc(n, sizeof(ino_link *));
    for (size_t i = 0; i < m->nbuckets; i++)
      for (ino_link *x = m->buckets[i], *next; x; x = next) {
        next = x->next;
        size_t j = slot_of(x->ino, n);
        x->next = b[j];
        b[j] = x;
      }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
  }
  size_t j = slot_of(e->ino, m->nbuckets);
  e->next = m->buckets[j];
  m->buckets[j] = e;
  m->count++;
}

/* Empties the map, handing every entry to `release`. */
static void map_clear(ino_map *m, void (*release)(void *)) {
  pthread_mutex_lock(&m->lock);
  for (size_t i = 0; i < m->nbuckets; i++)
    for (ino_link *x = m->buckets[i], *next; x; x = next) {
      next = x->next;
      release(x);
    }
  free(m->buckets);
  m->buckets = NULL;
  m->nbuckets = m->count = 0;
  pthread_mutex_unlock(&m->lock);
}

/* Takes the lock, removes the inode's entry and hands it to `release`. */
static void map_drop(ino_map *m, fuse_ino_t ino, void (*release)(void *)) {
  pthread_mutex_lock(&m->lock);
  void *e = map_take(m, ino);
  pthread_mutex_unlock(&m->lock);
  if (e) release(e);
}

/* Keeps the attributes of the subdirectories in exact listing `d` (see dir_attr). */
static void keep_dir_attrs(session *s, const dir_handle *d) {
  pthread_mutex_lock(&s->dir_attrs.lock);
  for (size_t i = 0; i < d->count; i++) {
    const double *a = d->attrs + i * ATTR_FIELDS;
    if (a[5] == 0 || ((mode_t)a[1] & S_IFMT) != S_IFDIR) continue; /* nlink 0: not known */
    dir_attr *e = map_find(&s->dir_attrs, (fuse_ino_t)a[0]);
    if (!e) {
      e = malloc(sizeof(dir_attr));
      e->link.ino = (fuse_ino_t)a[0];
      map_insert(&s->dir_attrs, &e->link);
    }
    e->gen = d->gen;
    e->attr_timeout = d->attr_timeout;
    memcpy(e->a, a, sizeof(e->a));
  }
  pthread_mutex_unlock(&s->dir_attrs.lock);
}

/* Answers a getattr of a directory from its kept attributes; 0 when JavaScript must. */
static int getattr_of_dir(session *s, fuse_req_t req, fuse_ino_t ino) {
  struct stat st;
  double timeout = 0;
  int found = 0;
  pthread_mutex_lock(&s->dir_attrs.lock);
  dir_attr *e = map_find(&s->dir_attrs, ino);
  if (e && e->gen == atomic_load(&s->gen)) {
    fill_stat(&st, e->a);
    timeout = e->attr_timeout;
    found = 1;
  }
  pthread_mutex_unlock(&s->dir_attrs.lock);
  if (found) fuse_reply_attr(req, &st, timeout);
  return found;
}

static void drop_dir_attrs(session *s, fuse_ino_t ino) { map_drop(&s->dir_attrs, ino, free); }

static void release_dir(void *d) { free_dir(d); }

/* Called with m->lock held: stores `d`, replacing the inode's previous listing. */
static void put_listing(ino_map *m, dir_handle *d) {
  dir_handle *old = map_take(m, d->link.ino);
  if (old) free_dir(old);
  map_insert(m, &d->link);
}

static void drop_listing(session *s, fuse_ino_t ino) { map_drop(&s->listings, ino, release_dir); }

static void drop_backing(session *s, fuse_ino_t ino) { map_drop(&s->backings, ino, free); }

static void put_backing(session *s, fuse_ino_t ino, const char *path, size_t len, off_t offset, off_t length) {
  backing *b = malloc(sizeof(backing) + len + 1);
  b->link.ino = ino;
  b->offset = offset;
  b->length = length;
  memcpy(b->path, path, len);
  b->path[len] = 0;
  pthread_mutex_lock(&s->backings.lock);
  free(map_take(&s->backings, ino));
  map_insert(&s->backings, &b->link);
  pthread_mutex_unlock(&s->backings.lock);
}

/* Answers a read from the inode's backing file; 0 when it has none (or it is gone). */
static int read_backing(session *s, fuse_req_t req, fuse_ino_t ino, size_t size, off_t off) {
  char path[4096];
  off_t base = 0, length = 0;
  pthread_mutex_lock(&s->backings.lock);
  backing *b = map_find(&s->backings, ino);
  int found = b && strlen(b->path) < sizeof(path);
  if (found) {
    strcpy(path, b->path);
    base = b->offset;
    length = b->length;
  }
  pthread_mutex_unlock(&s->backings.lock);
  if (!found) return 0;
  /* Nothing past the content's end (the rest of a segment is other blobs). */
  if (off >= length) size = 0;
  else if ((off_t)size > length - off) size = (size_t)(length - off);
  /* No atime update: a first read of a freshly written blob would otherwise write its inode
   * (relatime) while the stream is creating the next blobs beside it. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    drop_backing(s, ino);
    return 0;
  }
  char *buf = malloc(size ? size : 1);
  size_t got = 0;
  while (got < size) {
    ssize_t n = pread(fd, buf + got, size - got, base + off + (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      free(buf);
      close(fd);
      drop_backing(s, ino);
      return 0;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  close(fd);
  fuse_reply_buf(req, buf, got);
  free(buf);
  return 1;
}

static void fill_stat(struct stat *st, const double *a) {
  memset(st, 0, sizeof(*st));
  st->st_ino = (ino_t)a[0];
  st->st_mode = (mode_t)a[1];
  st->st_size = (off_t)a[2];
  st->st_uid = (uid_t)a[3];
  st->st_gid = (gid_t)a[4];
  st->st_nlink = (nlink_t)a[5];
  st->st_blksize = 4096;
  st->st_blocks = (st->st_size + 511) / 512;
  double t[3] = {a[6], a[7], a[8]};
  struct timespec *ts[3] = {&st->st_atim, &st->st_mtim, &st->st_ctim};
  for (int i = 0; i < 3; i++) {
    double ms = t[i];
    long long sec = (long long)(ms / 1000.0);
    if (ms < 0 && (double)sec * 1000.0 != ms) sec -= 1;
    ts[i]->tv_sec = (time_t)sec;
    ts[i]->tv_nsec = (long)((ms - (double)sec * 1000.0) * 1e6);
    if (ts[i]->tv_nsec >= 1000000000L) ts[i]->tv_nsec = 999999999L;
    if (ts[i]->tv_nsec < 0) ts[i]->tv_nsec = 0;
  }
}

/*
 * Builds one readdir chunk from a filled handle into *out (its length is returned). Offsets:
 * 1 ".", 2 "..", 3+i entry i. Called with d->lock held; the caller replies only after
 * unlocking: once the reply is out, the process may close the directory and RELEASEDIR may
 * free the handle on another thread.
 */
static size_t build_dir_chunk(session *s, fuse_req_t req, dir_handle *d, size_t size, off_t off, int plus,
                              char **out) {
  char *buf = malloc(size ? size : 1);
  size_t pos = 0;
  size_t total = d->count + 2;
  /* Entries handed to the kernel with attributes: each one is a lookup it now holds. */
  uint64_t *held = plus ? malloc((d->count ? d->count : 1) * sizeof(uint64_t)) : NULL;
  size_t nheld = 0;
  int files_too = plus && now_ns() < atomic_load(&s->files_wanted_until), withheld = 0;
  for (size_t i = (size_t)off; i < total; i++) {
    const char *name;
    struct fuse_entry_param e;
    memset(&e, 0, sizeof(e));
    int with_attr = 0;
    if (i < 2) {
      name = i == 0 ? "." : "..";
      e.ino = i == 0 ? d->link.ino : d->parent;
      e.attr.st_ino = e.ino;
      e.attr.st_mode = S_IFDIR;
    } else {
      const double *a = d->attrs + (i - 2) * ATTR_FIELDS;
      name = d->names[i - 2];
      fill_stat(&e.attr, a);
      /* nlink 0: attributes not known yet (a size still to load); the kernel gets the name and
         type only (nodeid 0) and asks with a lookup when it needs more. Files' attributes
         only while wanted: see files_wanted. */
      with_attr = a[5] != 0 && (files_too || S_ISDIR(e.attr.st_mode));
      if (plus && a[5] != 0 && !with_attr) withheld = 1;
      e.ino = with_attr ? e.attr.st_ino : 0;
      e.attr_timeout = with_attr ? d->attr_timeout : 0;
      e.entry_timeout = with_attr ? d->entry_timeout : 0;
    }
    size_t need = plus ? fuse_add_direntry_plus(req, buf + pos, size - pos, name, &e, (off_t)(i + 1))
                       : fuse_add_direntry(req, buf + pos, size - pos, name, &e.attr, (off_t)(i + 1));
    if (need > size - pos) break;
    pos += need;
    if (plus && with_attr) held[nheld++] = e.ino;
  }
  if (withheld) set_put(&s->names_only, d->link.ino, 1);
  if (nheld > 0) {
    lookups_held(s, held, nheld);
    held = NULL;
  }
  free(held);
  *out = buf;
  return pos;
}

/* Entries handed to the kernel here (taking `inos`): each is a lookup it now holds. Queued
 * before the reply, so the kernel cannot forget them before JavaScript counts them. */
static void lookups_held(session *s, uint64_t *inos, size_t n) {
  request *r = new_request(OP_LOOKUPS, NULL, 0);
  r->ninos = n;
  r->inos = inos;
  to_js(s, r);
}

static dir_handle *exact_listing(session *s, fuse_ino_t ino) {
  pthread_mutex_lock(&s->listings.lock);
  dir_handle *l = map_find(&s->listings, ino);
  if (l && l->gen == atomic_load(&s->gen)) return l;
  pthread_mutex_unlock(&s->listings.lock);
  return NULL;
}

static void reply_chunk(fuse_req_t req, char *buf, size_t len) {
  fuse_reply_buf(req, buf, len);
  free(buf);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
                       int plus) {
  session *s = session_of(req);
  dir_handle *d = (dir_handle *)(uintptr_t)fi->fh;
  char *chunk = NULL;
  size_t len = 0;
  if (!d) {
    /* Handle 0 (no opendir): the kept listing answers while it is exact (see dir_handle.gen);
     * otherwise a stream's first chunk asks JavaScript and the next ones use its listing. */
    int found = 0;
    pthread_mutex_lock(&s->listings.lock);
    dir_handle *l = map_find(&s->listings, ino);
    int exact = l && l->gen == atomic_load(&s->gen);
    if (l && (off > 0 || exact)) {
      found = 1;
      if ((size_t)off >= l->count + 2 && !exact)
        free_dir(map_take(&s->listings, ino)); /* the end: the kernel has it all now */
      else
        len = build_dir_chunk(s, req, l, size, off, plus, &chunk);
    }
    pthread_mutex_unlock(&s->listings.lock);
    if (found) {
      /* JavaScript lists the subdirectories next, ahead of the kernel. */
      if (off == 0) to_js(s, new_request(OP_LISTED, NULL, ino));
      reply_chunk(req, chunk, len);
      return;
    }
  } else {
    pthread_mutex_lock(&d->lock);
    int filled = d->filled;
    if (filled) len = build_dir_chunk(s, req, d, size, off, plus, &chunk);
    pthread_mutex_unlock(&d->lock);
    if (filled) {
      reply_chunk(req, chunk, len);
      return;
    }
  }
  if (from_self(req)) return;
  request *r = new_request(OP_READDIR, req, ino);
  r->fh = fi->fh;
  r->size = size;
  r->off = off;
  r->flags = plus;
  to_js(s, r);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, fi, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  do_readdir(req, ino, size, off, fi, 1);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  (void)ino;
  if (fi->fh) free_dir((dir_handle *)(uintptr_t)fi->fh);
  fuse_reply_err(req, 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino) {
  if (from_self(req)) return;
  to_js(session_of(req), new_request(OP_STATFS, req, ino));
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi) {
  if (from_self(req)) return;
  mutation_begins(session_of(req), req);
  request *r = new_request(OP_CREATE, req, parent);
  r->name = dup_str(name);
  r->flags = fi->flags;
  caller(r);
  r->mode = mode;
  to_js(session_of(req), r);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size,
                        int flags) {
  (void)name, (void)value, (void)size, (void)flags;
  if (from_self(req)) return;
  to_js(session_of(req), new_request(OP_SETXATTR, req, ino));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name) {
  (void)name;
  if (from_self(req)) return;
  to_js(session_of(req), new_request(OP_REMOVEXATTR, req, ino));
}

/* Git stores no extended attributes: no names, no values (the kernel then stops asking). */
static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size) {
  (void)ino, (void)name, (void)size;
  fuse_reply_err(req, ENOSYS);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  (void)ino;
  if (size == 0)
    fuse_reply_xattr(req, 0);
  else
    fuse_reply_buf(req, NULL, 0);
}

static const struct fuse_lowlevel_ops ops = {
    .init = op_init,
    .lookup = op_lookup,
    .forget = op_forget,
    .forget_multi = op_forget_multi,
    .getattr = op_getattr,
    .setattr = op_setattr,
    .readlink = op_readlink,
    .mknod = op_mknod,
    .mkdir = op_mkdir,
    .unlink = op_unlink,
    .rmdir = op_rmdir,
    .symlink = op_symlink,
    .rename = op_rename,
    .link = op_link,
    .open = op_open,
    .read = op_read,
    .write = op_write,
    .flush = op_flush,
    .release = op_release,
    .fsync = op_fsync,
    .opendir = op_opendir,
    .readdir = op_readdir,
    .readdirplus = op_readdirplus,
    .releasedir = op_releasedir,
    .statfs = op_statfs,
    .create = op_create,
    .setxattr = op_setxattr,
    .removexattr = op_removexattr,
    .getxattr = op_getxattr,
    .listxattr = op_listxattr,
};

/* ---- JavaScript side: dispatch ---------------------------------------------------------- */

#define CHECK(call)                                                                          \
  do {                                                                                       \
    if ((call) != napi_ok) {                                                                 \
      napi_throw_error(env, "EFUSEBINDING", "mesa_fuse: " #call " failed");                  \
      return NULL;                                                                           \
    }                                                                                        \
  } while (0)

/* The first `n` arguments of a call from JavaScript, as `argv`. */
#define JS_ARGS(n)                                                                           \
  size_t argc = (n);                                                                         \
  napi_value argv[(n)];                                                                      \
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL))

/* A reply function's request (argument 0) and its session, read before the reply frees it. */
#define JS_REPLY_ARGS(n)                                                                     \
  JS_ARGS(n);                                                                                \
  fuse_req_t req = get_req(env, argv[0]);                                                    \
  session *s = session_of(req);                                                              \
  mutation_replied(s, req)

static napi_value num(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

static napi_value str(napi_env env, const char *s) {
  napi_value out;
  if (!s) {
    napi_get_undefined(env, &out);
    return out;
  }
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &out);
  return out;
}

static double ms_of(const struct timespec *ts) { return (double)ts->tv_sec * 1000.0 + (double)ts->tv_nsec / 1e6; }

static void free_external(napi_env env, void *data, void *hint) {
  (void)env, (void)hint;
  free(data);
}

static void try_destroy(session *s);

/* Runs on the main thread for every queued request: dispatch(op, req, ino, ...args). */
static void call_js(napi_env env, napi_value js_cb, void *context, void *data) {
  session *s = context;
  request *r = data;
  if (r->req) atomic_fetch_sub(&s->queued, 1);
  if (!env) { /* the function is being torn down */
    if (r->req) {
      atomic_fetch_sub(&s->outstanding, 1);
      fuse_reply_err(r->req, EIO);
    }
    free_request(r);
    return;
  }
  napi_value argv[12];
  size_t argc = 0;
  argv[argc++] = num(env, r->op);
  argv[argc++] = num(env, (double)(uintptr_t)r->req);
  argv[argc++] = num(env, (double)r->ino);
  switch (r->op) {
  case OP_INIT: /* 1 when the kernel opens files without asking */
    argv[argc++] = num(env, s->no_open_files);
    break;
  case OP_FORGET:
  case OP_LOOKUPS: {
    /* One array of numbers: (ino, nlookup) pairs for forgets, inos for lookups. */
    size_t n = r->op == OP_FORGET ? r->ninos * 2 : r->ninos;
    napi_value arr;
    napi_create_array_with_length(env, n, &arr);
    for (size_t i = 0; i < n; i++) napi_set_element(env, arr, (uint32_t)i, num(env, (double)r->inos[i]));
    argv[argc++] = arr;
    break;
  }
  case OP_LOOKUP:
  case OP_UNLINK:
  case OP_RMDIR:
    argv[argc++] = str(env, r->name);
    break;
  case OP_GETATTR:
    argv[argc++] = num(env, r->has_fh ? (double)r->fh : -1);
    break;
  case OP_SETATTR:
    argv[argc++] = num(env, r->has_fh ? (double)r->fh : -1);
    argv[argc++] = num(env, r->to_set);
    argv[argc++] = num(env, r->attr.st_mode);
    argv[argc++] = num(env, r->attr.st_uid);
    argv[argc++] = num(env, r->attr.st_gid);
    argv[argc++] = num(env, (double)r->attr.st_size);
    argv[argc++] = num(env, ms_of(&r->attr.st_atim));
    argv[argc++] = num(env, ms_of(&r->attr.st_mtim));
    break;
  case OP_MKNOD:
  case OP_MKDIR:
  case OP_CREATE:
    argv[argc++] = str(env, r->name);
    argv[argc++] = num(env, r->mode);
    argv[argc++] = num(env, r->op == OP_MKNOD ? (double)r->rdev : (double)r->flags);
    argv[argc++] = num(env, r->uid);
    argv[argc++] = num(env, r->gid);
    break;
  case OP_SYMLINK:
    argv[argc++] = str(env, r->name);
    argv[argc++] = str(env, r->name2);
    argv[argc++] = num(env, r->uid);
    argv[argc++] = num(env, r->gid);
    break;
  case OP_RENAME:
    argv[argc++] = str(env, r->name);
    argv[argc++] = num(env, (double)r->ino2);
    argv[argc++] = str(env, r->name2);
    argv[argc++] = num(env, r->flags);
    break;
  case OP_LINK:
    argv[argc++] = num(env, (double)r->ino2);
    argv[argc++] = str(env, r->name2);
    break;
  case OP_OPEN:
    argv[argc++] = num(env, r->flags);
    break;
  case OP_READ:
    argv[argc++] = num(env, (double)r->fh);
    argv[argc++] = num(env, (double)r->size);
    argv[argc++] = num(env, (double)r->off);
    break;
  case OP_WRITE: {
    argv[argc++] = num(env, (double)r->fh);
    napi_value buf;
    napi_create_external_buffer(env, r->datalen, r->data, free_external, NULL, &buf);
    r->data = NULL; /* owned by the buffer now */
    argv[argc++] = buf;
    argv[argc++] = num(env, (double)r->off);
    break;
  }
  case OP_FLUSH:
  case OP_RELEASE:
    argv[argc++] = num(env, (double)r->fh);
    break;
  case OP_FSYNC:
    argv[argc++] = num(env, (double)r->fh);
    argv[argc++] = num(env, r->flags);
    break;
  case OP_READDIR:
    argv[argc++] = num(env, (double)r->fh);
    argv[argc++] = num(env, (double)r->size);
    argv[argc++] = num(env, (double)r->off);
    argv[argc++] = num(env, r->flags);
    break;
  default:
    break;
  }
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_status st = napi_call_function(env, undefined, js_cb, argc, argv, NULL);
  if (st == napi_pending_exception) {
    /* The dispatcher answers its own failures; an exception here must not end the process. */
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
  }
  int ended = r->op == OP_ENDED;
  free_request(r);
  if (ended) try_destroy(s);
}

/* ---- threads ---------------------------------------------------------------------------- */

static void *notify_main(void *arg) {
  session *s = arg;
  pthread_mutex_lock(&s->nlock);
  for (;;) {
    while (!s->nhead && !s->nstop) pthread_cond_wait(&s->ncond, &s->nlock);
    if (!s->nhead && s->nstop) break;
    notify_item *it = s->nhead;
    s->nhead = it->next;
    if (!s->nhead) s->ntail = NULL;
    pthread_mutex_unlock(&s->nlock);
    /* ENOENT: the kernel does not hold it; nothing to drop. */
    if (!atomic_load(&s->ended)) {
      if (it->entry)
        fuse_lowlevel_notify_inval_entry(s->se, it->ino, it->name, strlen(it->name));
      else
        fuse_lowlevel_notify_inval_inode(s->se, it->ino, it->off, it->len);
    }
    free(it->name);
    free(it);
    pthread_mutex_lock(&s->nlock);
  }
  pthread_mutex_unlock(&s->nlock);
  return NULL;
}

static void *loop_main(void *arg) {
  session *s = arg;
  struct fuse_loop_config *cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, s->max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, 4);
  fuse_session_loop_mt(s->se, cfg);
  fuse_loop_cfg_destroy(cfg);
  atomic_store(&s->ended, 1);
  pthread_mutex_lock(&s->nlock);
  s->nstop = 1;
  pthread_cond_signal(&s->ncond);
  pthread_mutex_unlock(&s->nlock);
  pthread_join(s->notify_thread, NULL);
  fuse_session_unmount(s->se);
  request *r = new_request(OP_ENDED, NULL, 0);
  if (napi_call_threadsafe_function(s->tsfn, r, napi_tsfn_blocking) != napi_ok) free_request(r);
  return NULL;
}

/* The session is freed once the loop ended and every request handed to JavaScript is answered. */
static void try_destroy(session *s) {
  if (s->destroyed || !atomic_load(&s->ended) || atomic_load(&s->outstanding) > 0) return;
  s->destroyed = 1;
  pthread_join(s->loop_thread, NULL);
  map_clear(&s->listings, release_dir);
  map_clear(&s->backings, free);
  map_clear(&s->dir_attrs, free);
  free(s->mutating);
  s->mutating = NULL;
  fuse_session_destroy(s->se);
  s->se = NULL;
  napi_release_threadsafe_function(s->tsfn, napi_tsfn_release);
}

/* ---- exported functions ----------------------------------------------------------------- */

static session *get_session(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok) return NULL;
  return p;
}

static fuse_req_t get_req(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return (fuse_req_t)(uintptr_t)d;
}

static double get_num(napi_env env, napi_value v) {
  double d = 0;
  napi_get_value_double(env, v, &d);
  return d;
}

/* Decrements the count of unanswered requests after a reply from JavaScript (the reply freed req). */
static void answered(session *s) {
  atomic_fetch_sub(&s->outstanding, 1);
  try_destroy(s);
}

/* Collected libfuse log lines, handed to JavaScript with a failed mount. */
static char mount_log[2048];
static void log_to_buffer(enum fuse_log_level level, const char *fmt, va_list ap) {
  (void)level;
  size_t used = strlen(mount_log);
  if (used < sizeof(mount_log) - 1) vsnprintf(mount_log + used, sizeof(mount_log) - used, fmt, ap);
}

/* The session struct itself stays allocated: JavaScript may still hold its handle (a few bytes per mount). */
static void finalize_tsfn(napi_env env, void *data, void *hint) {
  (void)env, (void)data, (void)hint;
}

/* mount(mountPoint, args: string[], dispatch, maxThreads, kernelOpens) -> session */
static napi_value js_mount(napi_env env, napi_callback_info info) {
  JS_ARGS(5);
  char mnt[4096];
  size_t len;
  CHECK(napi_get_value_string_utf8(env, argv[0], mnt, sizeof(mnt), &len));
  uint32_t nargs = 0;
  CHECK(napi_get_array_length(env, argv[1], &nargs));
  char **fargv = calloc(nargs + 2, sizeof(char *));
  fargv[0] = strdup("mesa");
  for (uint32_t i = 0; i < nargs; i++) {
    napi_value el;
    char tmp[4096];
    napi_get_element(env, argv[1], i, &el);
    napi_get_value_string_utf8(env, el, tmp, sizeof(tmp), &len);
    fargv[i + 1] = strdup(tmp);
  }
  struct fuse_args args = FUSE_ARGS_INIT((int)nargs + 1, fargv);

  session *s = calloc(1, sizeof(session));
  s->mountpoint = strdup(mnt);
  s->own_pid = getpid();
  s->max_threads = (int)get_num(env, argv[3]);
  if (s->max_threads < 2) s->max_threads = 2;
  s->kernel_opens = get_num(env, argv[4]) != 0;
  pthread_mutex_init(&s->nlock, NULL);
  pthread_cond_init(&s->ncond, NULL);
  pthread_mutex_init(&s->committed.lock, NULL);
  pthread_mutex_init(&s->names_only.lock, NULL);
  pthread_mutex_init(&s->listings.lock, NULL);
  pthread_mutex_init(&s->backings.lock, NULL);
  pthread_mutex_init(&s->dir_attrs.lock, NULL);
  pthread_mutex_init(&s->mlock, NULL);
  atomic_store(&s->gen, 1);

  mount_log[0] = 0;
  fuse_set_log_func(log_to_buffer);
  s->se = fuse_session_new(&args, &ops, sizeof(ops), s);
  int failed = !s->se || fuse_session_mount(s->se, mnt) != 0;
  fuse_opt_free_args(&args);
  for (uint32_t i = 0; i <= nargs; i++) free(fargv[i]);
  free(fargv);
  if (failed) {
    if (s->se) fuse_session_destroy(s->se);
    pthread_mutex_destroy(&s->nlock);
    pthread_cond_destroy(&s->ncond);
    free(s->mountpoint);
    free(s);
    char msg[2300];
    size_t l = strlen(mount_log);
    while (l > 0 && (mount_log[l - 1] == '\n' || mount_log[l - 1] == ' ')) mount_log[--l] = 0;
    snprintf(msg, sizeof(msg), "%s", l ? mount_log : "mount failed");
    napi_throw_error(env, "EMOUNT", msg);
    return NULL;
  }

  napi_value name;
  napi_create_string_utf8(env, "mesa-fuse", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_create_threadsafe_function(env, argv[2], NULL, name, 0, 1, s, finalize_tsfn, s, call_js,
                                        &s->tsfn));
  pthread_create(&s->notify_thread, NULL, notify_main, s);
  pthread_create(&s->loop_thread, NULL, loop_main, s);
  napi_value ext;
  CHECK(napi_create_external(env, s, NULL, NULL, &ext));
  return ext;
}

/* exit(session): ends the loop (after an unmount the kernel already ended it). */
static napi_value js_exit(napi_env env, napi_callback_info info) {
  JS_ARGS(1);
  session *s = get_session(env, argv[0]);
  if (s && !s->destroyed && !atomic_load(&s->ended)) fuse_session_exit(s->se);
  return NULL;
}

static napi_value js_reply_err(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(2);
  fuse_reply_err(req, (int)get_num(env, argv[1]));
  answered(s);
  return NULL;
}

/* Reads ATTR_FIELDS numbers from argv[start...] into a stat. */
static void stat_from_args(napi_env env, napi_value *argv, struct stat *st) {
  double a[ATTR_FIELDS];
  for (int i = 0; i < ATTR_FIELDS; i++) a[i] = get_num(env, argv[i]);
  fill_stat(st, a);
}

/* replyEntry(req, ino, mode, size, uid, gid, nlink, atime, mtime, ctime, entryTimeout, attrTimeout) */
static napi_value js_reply_entry(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(12);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  stat_from_args(env, argv + 1, &e.attr);
  e.ino = e.attr.st_ino;
  e.entry_timeout = get_num(env, argv[10]);
  e.attr_timeout = get_num(env, argv[11]);
  if (e.ino && !S_ISDIR(e.attr.st_mode)) files_wanted(s);
  fuse_reply_entry(req, &e);
  answered(s);
  return NULL;
}

/* replyAttr(req, ino, mode, size, uid, gid, nlink, atime, mtime, ctime, attrTimeout) */
static napi_value js_reply_attr(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(11);
  struct stat st;
  stat_from_args(env, argv + 1, &st);
  fuse_reply_attr(req, &st, get_num(env, argv[10]));
  answered(s);
  return NULL;
}

static void open_flags(struct fuse_file_info *fi, int bits) {
  fi->keep_cache = (bits & 1) != 0;
  fi->direct_io = (bits & 2) != 0;
  fi->noflush = (bits & 4) != 0;
}

/* replyCreate(req, ino, ...attr, entryTimeout, attrTimeout, fh, openBits) */
static napi_value js_reply_create(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(14);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  stat_from_args(env, argv + 1, &e.attr);
  e.ino = e.attr.st_ino;
  e.entry_timeout = get_num(env, argv[10]);
  e.attr_timeout = get_num(env, argv[11]);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = (uint64_t)get_num(env, argv[12]);
  open_flags(&fi, (int)get_num(env, argv[13]));
  fuse_reply_create(req, &e, &fi);
  answered(s);
  return NULL;
}

/* replyOpen(req, fh, openBits) */
static napi_value js_reply_open(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(3);
  struct fuse_file_info fi;
  memset(&fi, 0, sizeof(fi));
  fi.fh = (uint64_t)get_num(env, argv[1]);
  open_flags(&fi, (int)get_num(env, argv[2]));
  fuse_reply_open(req, &fi);
  answered(s);
  return NULL;
}

/* replyBuf(req, buffer) */
static napi_value js_reply_buf(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(2);
  void *data = NULL;
  size_t len = 0;
  napi_get_buffer_info(env, argv[1], &data, &len);
  fuse_reply_buf(req, data, len);
  answered(s);
  return NULL;
}

/*
 * replyBacked(req, ino, size, off): answers a read from the inode's backing file (set just
 * before) on a thread of libuv's pool, off the event loop. When the file is gone by then, the
 * read comes back to JavaScript as the kernel sent it.
 */
typedef struct backed_read {
  napi_async_work work;
  session *s;
  fuse_req_t req;
  fuse_ino_t ino;
  size_t size;
  off_t off;
  int done;
} backed_read;

static void backed_read_run(napi_env env, void *data) {
  (void)env;
  backed_read *r = data;
  r->done = read_backing(r->s, r->req, r->ino, r->size, r->off);
}

/* Hands the read back to JavaScript as the kernel sent it (handle 0), and frees `r`. */
static void backed_read_to_js(backed_read *r) {
  request *q = new_request(OP_READ, r->req, r->ino);
  q->size = r->size;
  q->off = r->off;
  to_js(r->s, q);
  answered(r->s);
  free(r);
}

static void backed_read_end(napi_env env, napi_status status, void *data) {
  (void)status;
  backed_read *r = data;
  napi_delete_async_work(env, r->work);
  if (!r->done) {
    backed_read_to_js(r);
    return;
  }
  answered(r->s);
  free(r);
}

static napi_value js_reply_backed(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(4);
  backed_read *r = calloc(1, sizeof(backed_read));
  r->s = s;
  r->req = req;
  r->ino = (fuse_ino_t)get_num(env, argv[1]);
  r->size = (size_t)get_num(env, argv[2]);
  r->off = (off_t)get_num(env, argv[3]);
  napi_value name;
  napi_create_string_utf8(env, "mesa_fuse.read", NAPI_AUTO_LENGTH, &name);
  if (napi_create_async_work(env, NULL, name, backed_read_run, backed_read_end, r, &r->work) != napi_ok) {
    backed_read_to_js(r); /* never left unanswered */
    return NULL;
  }
  if (napi_queue_async_work(env, r->work) != napi_ok) {
    napi_delete_async_work(env, r->work);
    backed_read_to_js(r);
  }
  return NULL;
}

/* replyWrite(req, count) */
static napi_value js_reply_write(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(2);
  fuse_reply_write(req, (size_t)get_num(env, argv[1]));
  answered(s);
  return NULL;
}

/* replyReadlink(req, target) */
static napi_value js_reply_readlink(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(2);
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[1], NULL, 0, &len);
  char *target = malloc(len + 1);
  napi_get_value_string_utf8(env, argv[1], target, len + 1, &len);
  fuse_reply_readlink(req, target);
  free(target);
  answered(s);
  return NULL;
}

/* replyStatfs(req, bsize, blocks, bfree, bavail, files, ffree, namemax) */
static napi_value js_reply_statfs(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(8);
  struct statvfs sv;
  memset(&sv, 0, sizeof(sv));
  sv.f_bsize = sv.f_frsize = (unsigned long)get_num(env, argv[1]);
  sv.f_blocks = (fsblkcnt_t)get_num(env, argv[2]);
  sv.f_bfree = (fsblkcnt_t)get_num(env, argv[3]);
  sv.f_bavail = (fsblkcnt_t)get_num(env, argv[4]);
  sv.f_files = (fsfilcnt_t)get_num(env, argv[5]);
  sv.f_ffree = sv.f_favail = (fsfilcnt_t)get_num(env, argv[6]);
  sv.f_namemax = (unsigned long)get_num(env, argv[7]);
  fuse_reply_statfs(req, &sv);
  answered(s);
  return NULL;
}

/* Copies a listing from JavaScript (argv: parentIno, names, attrs, entryTimeout, attrTimeout). */
static void fill_dir(napi_env env, napi_value *argv, dir_handle *d) {
  d->parent = (fuse_ino_t)get_num(env, argv[0]);
  uint32_t n = 0;
  napi_get_array_length(env, argv[1], &n);
  void *data = NULL;
  size_t bytes = 0;
  napi_typedarray_type type;
  napi_value ab;
  size_t off0;
  napi_get_typedarray_info(env, argv[2], &type, &bytes, &data, &ab, &off0);
  d->count = n;
  d->names = calloc(n ? n : 1, sizeof(char *));
  d->attrs = malloc((n ? n : 1) * ATTR_FIELDS * sizeof(double));
  if (bytes >= (size_t)n * ATTR_FIELDS) memcpy(d->attrs, data, (size_t)n * ATTR_FIELDS * sizeof(double));
  for (uint32_t i = 0; i < n; i++) {
    napi_value el;
    size_t len = 0;
    napi_get_element(env, argv[1], i, &el);
    napi_get_value_string_utf8(env, el, NULL, 0, &len);
    d->names[i] = malloc(len + 1);
    napi_get_value_string_utf8(env, el, d->names[i], len + 1, &len);
  }
  d->entry_timeout = get_num(env, argv[3]);
  d->attr_timeout = get_num(env, argv[4]);
  d->filled = 1;
}

/* Keeps a handle-0 listing made at generation `gen`: exact while that is still the generation. */
static void keep_listing(session *s, dir_handle *d, unsigned long gen) {
  d->gen = gen == atomic_load(&s->gen) ? gen : 0;
  put_listing(&s->listings, d);
  if (d->gen) keep_dir_attrs(s, d);
}

/*
 * dirFill(req, dirHandle, dirIno, parentIno, names: string[], attrs: Float64Array, entryTimeout,
 *         attrTimeout, size, off, plus, gen)
 * Stores the listing (in the handle, or by inode for handle 0; `gen`: the generation read
 * before it was made) and answers the readdir request that asked for it (its size, offset and
 * kind as the dispatcher received them).
 */
static napi_value js_dir_fill(napi_env env, napi_callback_info info) {
  JS_REPLY_ARGS(12);
  dir_handle *d = (dir_handle *)(uintptr_t)get_num(env, argv[1]);
  size_t size = (size_t)get_num(env, argv[8]);
  off_t off = (off_t)get_num(env, argv[9]);
  int plus = (int)get_num(env, argv[10]);
  char *chunk = NULL;
  size_t len = 0;
  if (d) {
    pthread_mutex_lock(&d->lock);
    if (!d->filled) fill_dir(env, argv + 3, d);
    len = build_dir_chunk(s, req, d, size, off, plus, &chunk);
    pthread_mutex_unlock(&d->lock);
  } else {
    d = calloc(1, sizeof(dir_handle));
    pthread_mutex_init(&d->lock, NULL);
    d->link.ino = (fuse_ino_t)get_num(env, argv[2]);
    fill_dir(env, argv + 3, d);
    pthread_mutex_lock(&s->listings.lock);
    len = build_dir_chunk(s, req, d, size, off, plus, &chunk);
    unsigned long gen = (unsigned long)get_num(env, argv[11]);
    if ((size_t)off >= d->count + 2 && gen != atomic_load(&s->gen))
      free_dir(d); /* read to its end already, and answers nothing else */
    else
      keep_listing(s, d, gen);
    pthread_mutex_unlock(&s->listings.lock);
  }
  reply_chunk(req, chunk, len);
  answered(s);
  return NULL;
}

/*
 * prefill(session, dirIno, parentIno, names, attrs, entryTimeout, attrTimeout, gen) -> boolean
 * Keeps a directory's listing before the kernel asks for it; false (nothing kept) when the
 * generation moved since `gen` was read.
 */
static napi_value js_prefill(napi_env env, napi_callback_info info) {
  JS_ARGS(8);
  session *s = get_session(env, argv[0]);
  napi_value out;
  unsigned long gen = (unsigned long)get_num(env, argv[7]);
  int kept = s && !s->destroyed && gen == atomic_load(&s->gen);
  if (kept) {
    dir_handle *d = calloc(1, sizeof(dir_handle));
    pthread_mutex_init(&d->lock, NULL);
    d->link.ino = (fuse_ino_t)get_num(env, argv[1]);
    fill_dir(env, argv + 2, d);
    pthread_mutex_lock(&s->listings.lock);
    keep_listing(s, d, gen);
    pthread_mutex_unlock(&s->listings.lock);
  }
  napi_get_boolean(env, kept, &out);
  return out;
}

/* generation(session): read before making a listing (see dirFill, prefill). */
static napi_value js_generation(napi_env env, napi_callback_info info) {
  JS_ARGS(1);
  session *s = get_session(env, argv[0]);
  return num(env, s ? (double)atomic_load(&s->gen) : 0);
}

/* Lookups the binding answered from kept listings, without JavaScript. */
static napi_value js_lookups_answered(napi_env env, napi_callback_info info) {
  JS_ARGS(1);
  session *s = get_session(env, argv[0]);
  return num(env, s ? (double)atomic_load(&s->lookups_answered) : 0);
}

/* trimMemory(): gives the C heap's free pages back to the system (glibc keeps freed chunks
 * between live ones resident: tens of MB after a stream of blobs went through the daemon).
 * 1 when something was released. */
static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef __GLIBC__
  return num(env, malloc_trim(0));
#else
  return num(env, 0);
#endif
}

/* Requests waiting for JavaScript's event loop: work it does on its own yields to them. */
static napi_value js_queued(napi_env env, napi_callback_info info) {
  JS_ARGS(1);
  session *s = get_session(env, argv[0]);
  return num(env, s ? (double)atomic_load(&s->queued) : 0);
}

static void enqueue_notify(session *s, notify_item *it) {
  pthread_mutex_lock(&s->nlock);
  if (s->nstop) {
    pthread_mutex_unlock(&s->nlock);
    free(it->name);
    free(it);
    return;
  }
  if (s->ntail)
    s->ntail->next = it;
  else
    s->nhead = it;
  s->ntail = it;
  pthread_cond_signal(&s->ncond);
  pthread_mutex_unlock(&s->nlock);
}

/* invalEntry(session, parentIno, name) */
static napi_value js_inval_entry(napi_env env, napi_callback_info info) {
  JS_ARGS(3);
  session *s = get_session(env, argv[0]);
  if (!s || s->destroyed) return NULL;
  atomic_fetch_add(&s->gen, 1);
  notify_item *it = calloc(1, sizeof(notify_item));
  it->entry = 1;
  it->ino = (fuse_ino_t)get_num(env, argv[1]);
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[2], NULL, 0, &len);
  it->name = malloc(len + 1);
  napi_get_value_string_utf8(env, argv[2], it->name, len + 1, &len);
  enqueue_notify(s, it);
  return NULL;
}

/* invalInode(session, ino, off, len): off -1 drops only the attributes. */
static napi_value js_inval_inode(napi_env env, napi_callback_info info) {
  JS_ARGS(4);
  session *s = get_session(env, argv[0]);
  if (!s || s->destroyed) return NULL;
  atomic_fetch_add(&s->gen, 1);
  notify_item *it = calloc(1, sizeof(notify_item));
  it->ino = (fuse_ino_t)get_num(env, argv[1]);
  drop_listing(s, it->ino);
  drop_backing(s, it->ino);
  it->off = (off_t)get_num(env, argv[2]);
  it->len = (off_t)get_num(env, argv[3]);
  enqueue_notify(s, it);
  return NULL;
}

/* setCommitted(session, ino, on): whether read-only opens of `ino` are answered here. */
static napi_value js_set_committed(napi_env env, napi_callback_info info) {
  JS_ARGS(3);
  session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  set_put(&s->committed, (uint64_t)get_num(env, argv[1]), get_num(env, argv[2]) != 0);
  return NULL;
}

/*
 * setBacking(session, ino, path | null, offset, length): the local file holding the inode's
 * content (`length` bytes at `offset`), or none.
 */
static napi_value js_set_backing(napi_env env, napi_callback_info info) {
  JS_ARGS(5);
  session *s = get_session(env, argv[0]);
  if (!s) return NULL;
  fuse_ino_t ino = (fuse_ino_t)get_num(env, argv[1]);
  napi_valuetype t;
  napi_typeof(env, argv[2], &t);
  if (t != napi_string) {
    drop_backing(s, ino);
    return NULL;
  }
  char path[4096];
  size_t len = 0;
  napi_get_value_string_utf8(env, argv[2], path, sizeof(path), &len);
  if (len + 1 >= sizeof(path)) {
    drop_backing(s, ino);
    return NULL;
  }
  double offset = get_num(env, argv[3]), length = get_num(env, argv[4]);
  if (!(offset >= 0 && length >= 0)) {
    drop_backing(s, ino);
    return NULL;
  }
  put_backing(s, ino, path, len, (off_t)offset, (off_t)length);
  return NULL;
}

static napi_value js_version(napi_env env, napi_callback_info info) {
  (void)info;
  return num(env, fuse_version());
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"version", NULL, js_version, NULL, NULL, NULL, napi_default, NULL},
      {"mount", NULL, js_mount, NULL, NULL, NULL, napi_default, NULL},
      {"exit", NULL, js_exit, NULL, NULL, NULL, napi_default, NULL},
      {"replyErr", NULL, js_reply_err, NULL, NULL, NULL, napi_default, NULL},
      {"replyEntry", NULL, js_reply_entry, NULL, NULL, NULL, napi_default, NULL},
      {"replyAttr", NULL, js_reply_attr, NULL, NULL, NULL, napi_default, NULL},
      {"replyCreate", NULL, js_reply_create, NULL, NULL, NULL, napi_default, NULL},
      {"replyOpen", NULL, js_reply_open, NULL, NULL, NULL, napi_default, NULL},
      {"replyBuf", NULL, js_reply_buf, NULL, NULL, NULL, napi_default, NULL},
      {"replyBacked", NULL, js_reply_backed, NULL, NULL, NULL, napi_default, NULL},
      {"replyWrite", NULL, js_reply_write, NULL, NULL, NULL, napi_default, NULL},
      {"replyReadlink", NULL, js_reply_readlink, NULL, NULL, NULL, napi_default, NULL},
      {"replyStatfs", NULL, js_reply_statfs, NULL, NULL, NULL, napi_default, NULL},
      {"dirFill", NULL, js_dir_fill, NULL, NULL, NULL, napi_default, NULL},
      {"prefill", NULL, js_prefill, NULL, NULL, NULL, napi_default, NULL},
      {"generation", NULL, js_generation, NULL, NULL, NULL, napi_default, NULL},
      {"queued", NULL, js_queued, NULL, NULL, NULL, napi_default, NULL},
      {"lookupsAnswered", NULL, js_lookups_answered, NULL, NULL, NULL, napi_default, NULL},
      {"trimMemory", NULL, js_trim_memory, NULL, NULL, NULL, napi_default, NULL},
      {"invalEntry", NULL, js_inval_entry, NULL, NULL, NULL, napi_default, NULL},
      {"invalInode", NULL, js_inval_inode, NULL, NULL, NULL, napi_default, NULL},
      {"setCommitted", NULL, js_set_committed, NULL, NULL, NULL, napi_default, NULL},
      {"setBacking", NULL, js_set_backing, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
