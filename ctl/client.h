/*
 * client.h -- one request/reply exchange with profd over control.sock.
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <stddef.h>

#include <msgpack.h>

#include "proto.h"

#define CLIENT_TIMEOUT_MS	10000	/* whole exchange, connect to reply */
#define CLIENT_PATH_MAX		4096	/* runtime dir path */

struct client {
	char			 dir[CLIENT_PATH_MAX];	/* runtime dir */
	char			 path[CLIENT_PATH_MAX];	/* its control.sock */
	int			 timeout_ms;
	struct proto_sink	 sink;		/* the request */
	size_t			 start;		/* its frame's offset */
	char			*buf;		/* the reply, as read */
	size_t			 len;
	size_t			 cap;
	msgpack_unpacked	 up;		/* the reply, decoded */
};

int	client_init(struct client *, const char *rundir);
void	client_free(struct client *);
msgpack_packer *client_begin(struct client *, const char *command,
	    size_t nargs);
int	client_call(struct client *, const msgpack_object **body);

#endif
