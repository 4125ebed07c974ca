/*
 * fuzz-sampling.c -- libFuzzer target for the sampling settings file an
 * agent reads from profd's runtime directory: sampling_parse on any bytes.
 * Nothing may crash or read out of bounds; what it accepts must be in
 * range and come back the same through sampling_format.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"
#include "sampling.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sampling	 s, again;
	char		 text[SAMPLING_MAX_BYTES];
	const char	*why;
	int		 n;

	if (sampling_parse((const char *)data, size, &s, &why) != 0)
		return (0);
	if (s.rate_hz < PROTO_RATE_MIN || s.rate_hz > PROTO_RATE_MAX ||
	    s.mode > PROTO_MODE_LAST || s.reader > PROTO_READER_LAST ||
	    s.jitter_pct > PROTO_JITTER_MAX ||
	    (s.max_overhead_bp != PROTO_OVERHEAD_UNSET &&
	    s.max_overhead_bp > PROTO_OVERHEAD_MAX))
		abort();
	if ((n = sampling_format(&s, text, sizeof text)) < 0 ||
	    sampling_parse(text, (size_t)n, &again, &why) != 0 ||
	    memcmp(&s, &again, sizeof s) != 0)
		abort();
	return (0);
}
