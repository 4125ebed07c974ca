/*
 * worker.c -- work done beside the event loop (see worker.h).
 *
 * One thread takes jobs in the order they came from a list under a mutex,
 * runs each, and puts it on a list of finished jobs; a byte written to a
 * pipe wakes the loop, which runs their done callbacks.  The thread blocks
 * every signal but faults: they stay the loop's.  One thread: its jobs are shows'
 * encodings, handed over one at a time (CONTROL_ENCODINGS_OUT), so that
 * their memory never adds up.
 */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "worker.h"

static pthread_t		 worker_thread;
static pthread_mutex_t		 worker_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t		 worker_cond = PTHREAD_COND_INITIALIZER;
static struct worker_job	*worker_todo, *worker_todo_tail;  /* locked */
static struct worker_job	*worker_done, *worker_done_tail;  /* locked */
static int			 worker_quit;			  /* locked */
static int			 worker_started;	/* loop thread only */
static int			 worker_pipe[2] = { -1, -1 };
static struct event		*worker_ev;

/* Appends a job to a list. */
static void
worker_append(struct worker_job **head, struct worker_job **tail,
    struct worker_job *j)
{
	j->next = NULL;
	if (*tail != NULL)
		(*tail)->next = j;
	else
		*head = j;
	*tail = j;
}

/* The worker thread: runs jobs until told to quit. */
static void *
worker_main(void *arg)
{
	struct worker_job	*j;
	char			 c = 1;

	(void)arg;
	pthread_mutex_lock(&worker_lock);
	for (;;) {
		while (worker_todo == NULL && !worker_quit)
			pthread_cond_wait(&worker_cond, &worker_lock);
		if (worker_quit)
			break;
		j = worker_todo;
		if ((worker_todo = j->next) == NULL)
			worker_todo_tail = NULL;
		pthread_mutex_unlock(&worker_lock);
		j->run(j);
		pthread_mutex_lock(&worker_lock);
		worker_append(&worker_done, &worker_done_tail, j);
		/* Full pipe: the loop has a wake-up pending already. */
		while (write(worker_pipe[1], &c, 1) == -1 && errno == EINTR)
			;
	}
	pthread_mutex_unlock(&worker_lock);
	return (NULL);
}

/* Takes the finished jobs and runs their done callbacks (loop). */
static void
worker_wake_cb(evutil_socket_t fd, short events, void *arg)
{
	struct worker_job	*j, *next;
	char			 buf[64];

	(void)events;
	(void)arg;
	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&worker_lock);
	j = worker_done;
	worker_done = worker_done_tail = NULL;
	pthread_mutex_unlock(&worker_lock);
	for (; j != NULL; j = next) {
		next = j->next;
		j->done(j, 0);
	}
}

/* Starts the worker thread on base's loop; 0 or -1 (then jobs run on the
 * loop, as worker_submit's caller chooses). */
int
worker_start(struct event_base *base)
{
	sigset_t	all, old;
	int		rc;

	if (worker_started)
		return (0);
	if (pipe2(worker_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
		log_warn("worker: pipe: %s", strerror(errno));
		return (-1);
	}
	if ((worker_ev = event_new(base, worker_pipe[0], EV_READ | EV_PERSIST,
	    worker_wake_cb, NULL)) == NULL || event_add(worker_ev, NULL) != 0)
		goto fail;
	worker_quit = 0;
	/* Faults stay deliverable: blocked, they would kill without a word
	 * (and without a sanitizer's report). */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	sigdelset(&all, SIGTRAP);
	sigdelset(&all, SIGABRT);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&worker_thread, NULL, worker_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		log_warn("worker: pthread_create: %s", strerror(rc));
		goto fail;
	}
	worker_started = 1;
	return (0);
fail:
	if (worker_ev != NULL)
		event_free(worker_ev);
	worker_ev = NULL;
	close(worker_pipe[0]);
	close(worker_pipe[1]);
	worker_pipe[0] = worker_pipe[1] = -1;
	return (-1);
}

/* Whether jobs can be handed over. */
int
worker_running(void)
{
	return (worker_started);
}

/* Hands a job over: 0, or -1 when no worker runs (the caller keeps it). */
int
worker_submit(struct worker_job *j)
{
	if (!worker_started)
		return (-1);
	pthread_mutex_lock(&worker_lock);
	worker_append(&worker_todo, &worker_todo_tail, j);
	pthread_cond_signal(&worker_cond);
	pthread_mutex_unlock(&worker_lock);
	return (0);
}

/* Stops the thread after the job it runs; every job not yet done back on
 * the loop is done now, cancelled (shutdown). */
void
worker_stop(void)
{
	struct worker_job	*j, *next;

	if (!worker_started)
		return;
	pthread_mutex_lock(&worker_lock);
	worker_quit = 1;
	pthread_cond_signal(&worker_cond);
	pthread_mutex_unlock(&worker_lock);
	pthread_join(worker_thread, NULL);
	worker_started = 0;
	for (j = worker_done; j != NULL; j = next) {
		next = j->next;
		j->done(j, 1);
	}
	for (j = worker_todo; j != NULL; j = next) {
		next = j->next;
		j->done(j, 1);
	}
	worker_done = worker_done_tail = NULL;
	worker_todo = worker_todo_tail = NULL;
	event_free(worker_ev);
	worker_ev = NULL;
	close(worker_pipe[0]);
	close(worker_pipe[1]);
	worker_pipe[0] = worker_pipe[1] = -1;
}
