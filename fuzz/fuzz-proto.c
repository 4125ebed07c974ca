/*
 * fuzz-proto.c -- libFuzzer target for the wire decoder: splits the input
 * into frames with proto_frame_peek and decodes each with proto_decode.
 * Nothing may crash, hang, leak or read out of bounds, whatever the bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char		*buf = (const char *)data, *payload, *err;
	size_t			 plen, flen;
	struct proto_msg	 msg;
	struct proto_sample	 s;
	msgpack_unpacked	 up;
	uint32_t		 i;

	while (proto_frame_peek(buf, size, PROTO_MAX_MSG, &payload, &plen,
	    &flen) == 1) {
		msgpack_unpacked_init(&up);
		if (proto_decode(payload, plen, &up, &msg, &err) == 0 &&
		    msg.type == PROTO_SAMPLES) {
			for (i = 0; i < msg.samples.count; i++)
				proto_sample_get(&msg, i, &s);
		}
		msgpack_unpacked_destroy(&up);
		buf += flen;
		size -= flen;
	}
	return (0);
}
