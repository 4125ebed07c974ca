/*
 * server-control.h -- control connections (profctl): one request at a time,
 * each answered by one handler per command.
 */
#ifndef SERVER_CONTROL_H
#define SERVER_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "access.h"
#include "proto.h"

/* Open control connections: event loop thread only. */
extern size_t server_control_count;

/* Accepts a control connection (from the listener). */
void	server_control_accept(int fd);
void	server_control_free_all(void);
/* The store's sweep hook: marks what every running show needs. */
void	server_control_mark_all(void *);

/*
 * Runs one request and writes exactly one whole reply frame into sink:
 * [400, true, body] or [400, false, "error"].  Returns 0 when the reply is
 * a success, -1 when it is an error.  Needs no socket (tests call it).
 */
int	server_control_request(const char *command, size_t command_len,
	    const msgpack_object_map *args, enum access_level,
	    struct proto_sink *sink);

/* Parsed arguments of a request, for the handlers (control-*.c). */
struct control_args {
	const msgpack_object_map *map;
	uint32_t		*pids;
	size_t			 npids;
	int			 have_pids;
	enum access_level	 level;		/* of the peer */
	char			 error[512];
};

/* Argument readers: 0 (absent leaves the value alone), or -1 with
 * a->error set. */
int	server_control_arg_uint(struct control_args *, const char *,
	    uint64_t *, int *present);
int	server_control_arg_bool(struct control_args *, const char *, int *);
int	server_control_arg_name(struct control_args *, const char *,
	    int (*parse)(const char *), const char *choices, uint32_t *);
/* The "pids" list into a->pids (the caller frees it). */
int	server_control_arg_pids(struct control_args *);
/* A list of strings: *v is calloc'd (free it), NULL when absent. */
int	server_control_arg_strs(struct control_args *, const char *,
	    char ***v, size_t *n);
void	server_control_strs_free(char **, size_t);
/* Ends a success reply, or replaces it with an error if it overflowed. */
int	server_control_end(struct proto_sink *, size_t start);
void	server_control_pack_str(msgpack_packer *, const char *, size_t);
void	server_control_pack_sid(msgpack_packer *, uint32_t sid);
void	server_control_pack_bool(msgpack_packer *, int);
void	server_control_pack_strv(msgpack_packer *, char *const *, uint32_t);
/* argv, or an empty list for a peer that may only read. */
void	server_control_pack_argv(msgpack_packer *, const struct control_args *,
	    char *const *, uint32_t);

/*
 * "show" runs in steps so that agents are served while a big query reads
 * the store: begin parses and starts it (NULL with a->error set), each
 * step reads up to `budget` entries (1: done, 0: more, -1: out of memory),
 * finish writes the reply.  control_show() does it all at once.  A stack
 * format is encoded beside the loop instead of in finish: aside, run (on
 * the worker), aside_finish (see control-show.c).
 */
struct control_show_job;
struct control_show_job *control_show_begin(struct control_args *);
int	control_show_step(struct control_show_job *, size_t budget);
int	control_show_finish(struct control_show_job *, struct proto_sink *);
void	control_show_free(struct control_show_job *);
/* Marks what the job's query needs (store_mark, during a sweep). */
void	control_show_mark(const struct control_show_job *);
int	control_show_stacks(const struct control_show_job *);
int	control_show_aside(struct control_show_job *, struct proto_sink *);
void	control_show_aside_run(struct control_show_job *);
int	control_show_aside_finish(struct control_show_job *,
	    struct proto_sink *);

/* Handlers in their own files. */
int	control_show(struct control_args *, struct proto_sink *);
int	control_ps(struct control_args *, struct proto_sink *);
extern const char *const control_show_args[];
extern const char *const control_ps_args[];

#endif
