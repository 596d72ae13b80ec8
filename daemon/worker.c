/*
 * worker.c - sink worker threads and completions (see worker.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "alloc.h"
#include "log.h"
#include "sink.h"
#include "worker.h"

struct bd_workers {
    bd_workers_done_fn *on_done; /* completion callback (loop thread) */
    void *done_arg;           /* its argument */
    pthread_mutex_t mu;       /* guards jobs, done, stop */
    pthread_cond_t cv;        /* signals jobs or stop */
    struct bd_batch *jobs;    /* FIFO of batches to run */
    struct bd_batch *jobs_tail;
    struct bd_batch *done;    /* finished batches, newest first */
    int stop;
    int efd;                  /* eventfd: "done is not empty" */
    struct event *ev;
    pthread_t *threads;       /* room for 2 x target */
    size_t nthreads;          /* started */
    size_t target;            /* the configured pool size */
};

/* host->complete may run on any thread: one process-wide target. */
static struct bd_workers *the_workers;

static void push_done(struct bd_workers *w, struct bd_batch *b)
{
    uint64_t one = 1;
    int was_empty;

    pthread_mutex_lock(&w->mu);
    was_empty = w->done == NULL;
    b->next = w->done;
    w->done = b;
    pthread_mutex_unlock(&w->mu);
    /* One wakeup per burst of completions is enough. */
    if (was_empty && write(w->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        bd_log_error("workers: eventfd write: %s", strerror(errno));
}

static void complete_hook(struct bd_batch *b)
{
    push_done(the_workers, b);
}

static void *worker_main(void *arg)
{
    struct bd_workers *w = arg;

    for (;;) {
        struct bd_batch *b;

        pthread_mutex_lock(&w->mu);
        while (w->jobs == NULL && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (w->jobs == NULL) {
            pthread_mutex_unlock(&w->mu);
            return NULL;
        }
        b = w->jobs;
        w->jobs = b->next;
        if (w->jobs == NULL)
            w->jobs_tail = NULL;
        pthread_mutex_unlock(&w->mu);
        /* Workers run blocking sinks only; one that says PENDING has
         * broken the ABI, and its batch is failed (batch_verdict). */
        if (bd_sink_run(b) == BATCHD_SINK_PENDING)
            b->rc = 99;
        push_done(w, b);
    }
}

static void done_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bd_workers *w = arg;
    struct bd_batch *b, *rev = NULL;
    uint64_t v;

    (void)what;
    if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        bd_log_error("workers: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&w->mu);
    b = w->done;
    w->done = NULL;
    pthread_mutex_unlock(&w->mu);
    while (b != NULL) { /* oldest first */
        struct bd_batch *next = b->next;

        b->next = rev;
        rev = b;
        b = next;
    }
    if (rev != NULL)
        w->on_done(w->done_arg, rev);
}

struct bd_workers *bd_workers_new(struct event_base *base, size_t n,
                                  bd_workers_done_fn *done, void *arg,
                                  char *err, size_t errlen)
{
    struct bd_workers *w = bd_calloc(1, sizeof(*w));
    int rc;

    if (w == NULL || (w->threads = bd_calloc(2 * n, sizeof(pthread_t))) == NULL) {
        snprintf(err, errlen, "workers: out of memory");
        bd_free(w);
        return NULL;
    }
    w->on_done = done;
    w->done_arg = arg;
    w->target = n;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        snprintf(err, errlen, "workers: eventfd: %s", strerror(errno));
        goto out_free;
    }
    w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, done_cb, w);
    if (w->ev == NULL || event_add(w->ev, NULL) != 0) {
        snprintf(err, errlen, "workers: cannot watch the eventfd");
        goto out_free;
    }
    for (; w->nthreads < n; w->nthreads++) {
        rc = pthread_create(&w->threads[w->nthreads], NULL, worker_main, w);
        if (rc != 0) {
            snprintf(err, errlen, "workers: pthread_create: %s", strerror(rc));
            goto out_free;
        }
    }
    the_workers = w;
    bd_sink_set_complete_hook(complete_hook);
    return w;

out_free:
    bd_workers_free(w, 1);
    return NULL;
}

void bd_workers_submit(struct bd_workers *w, struct bd_batch *b)
{
    b->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (w->jobs_tail)
        w->jobs_tail->next = b;
    else
        w->jobs = b;
    w->jobs_tail = b;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

int bd_workers_withdraw(struct bd_workers *w, struct bd_batch *b)
{
    struct bd_batch **pp, *prev = NULL;
    int found = 0;

    pthread_mutex_lock(&w->mu);
    for (pp = &w->jobs; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp == b) {
            *pp = b->next;
            if (w->jobs_tail == b)
                w->jobs_tail = prev;
            found = 1;
            break;
        }
    }
    pthread_mutex_unlock(&w->mu);
    return found;
}

void bd_workers_replace_stuck(struct bd_workers *w)
{
    int rc;

    if (w->nthreads >= 2 * w->target)
        return; /* bounded: past this, new calls wait for stuck ones */
    rc = pthread_create(&w->threads[w->nthreads], NULL, worker_main, w);
    if (rc != 0) {
        bd_log_error("workers: pthread_create: %s", strerror(rc));
        return;
    }
    w->nthreads++;
    bd_log_warn("workers: a sink call is stuck; pool grown to %zu threads",
                w->nthreads);
}

void bd_workers_free(struct bd_workers *w, int join)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    if (!join)
        return; /* a thread may be inside a hung sink: leave it all */
    for (size_t i = 0; i < w->nthreads; i++)
        pthread_join(w->threads[i], NULL);
    if (w->ev)
        event_free(w->ev);
    if (w->efd >= 0)
        close(w->efd);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
    if (the_workers == w)
        the_workers = NULL;
    bd_free(w->threads);
    bd_free(w);
}
