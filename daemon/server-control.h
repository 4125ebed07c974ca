/*
 * server-control.h -- control connections (profctl): one request at a time,
 * each answered by one handler per command.
 */
#ifndef SERVER_CONTROL_H
#define SERVER_CONTROL_H

#include <stddef.h>

#include <msgpack.h>

#include "proto.h"

/* Open control connections: event loop thread only. */
extern size_t server_control_count;

/* Accepts a control connection (from the listener). */
void	server_control_accept(int fd);
void	server_control_free_all(void);

/*
 * Runs one request and writes exactly one whole reply frame into sink:
 * [400, true, body] or [400, false, "error"].  Returns 0 when the reply is
 * a success, -1 when it is an error.  Needs no socket (tests call it).
 */
int	server_control_request(const char *command, size_t command_len,
	    const msgpack_object_map *args, struct proto_sink *sink);

#endif
