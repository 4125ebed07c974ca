/*
 * fuzz-agent-input.c -- libFuzzer target for profd's agent connections: the
 * input is one agent's whole byte stream, fed to server_agent_input in two
 * pieces (split at the first byte's value) through a real store and
 * registry.  A protocol error must only end that connection.
 */
#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "proto.h"
#include "server-agent.h"
#include "server.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct server_limits	 lim;
	struct agent_conn	*c;
	size_t			 cut, used;
	const char		*p = (const char *)data;
	char			 err[256];

	log_verbose = -1;
	server_limits_default(&lim);
	lim.max_ids = 64;
	lim.max_memory = 4u << 20;
	if (server_init(NULL, &lim, "/tmp/profd-fuzz", err, sizeof err) != 0) {
		server_free();
		return (0);
	}
	if ((c = server_agent_create(NULL)) != NULL) {
		cut = size > 0 ? data[0] % (size + 1) : 0;
		used = 0;
		if (server_agent_input(c, p, cut, &used) == 0) {
			used = 0;
			(void)server_agent_input(c, p + cut, size - cut, &used);
		}
	}
	/* Housekeeping over what the input left: seal, sweep, expire. */
	server_housekeep(server_now_ns(), 1);
	server_free();
	return (0);
}
