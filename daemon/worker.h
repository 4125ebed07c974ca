/*
 * worker.h -- work done beside the event loop.
 *
 * A job the loop hands over runs on the worker thread; then its done
 * callback runs back on the loop, so a long job (encoding a big profile)
 * never holds up agents, other clients or housekeeping.  A job must touch
 * only what it owns while it runs: never the store, the registry or a
 * connection.
 */
#ifndef WORKER_H
#define WORKER_H

struct event_base;

struct worker_job {
	/* On the worker thread. */
	void			(*run)(struct worker_job *);
	/* On the loop, after run; or with cancelled set, without run, when
	 * the worker stops first.  It frees the job. */
	void			(*done)(struct worker_job *, int cancelled);
	struct worker_job	*next;
};

int	worker_start(struct event_base *);
int	worker_submit(struct worker_job *);
int	worker_running(void);
void	worker_stop(void);

#endif
