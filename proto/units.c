/* units.c -- durations, sizes and times (see units.h). */

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "units.h"

/* Reads a number and its suffix; -1 if there is no number. */
static int
units_number(const char *s, uint64_t *v, const char **suffix)
{
	unsigned long long	 n;
	char			*end;

	if (!isdigit((unsigned char)*s))
		return (-1);
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno != 0)
		return (-1);
	*v = n;
	*suffix = end;
	return (0);
}

/* Multiplies without overflow. */
static int
units_scale(uint64_t v, uint64_t by, uint64_t *out)
{
	if (by != 0 && v > UINT64_MAX / by)
		return (-1);
	*out = v * by;
	return (0);
}

/* Parses a duration in seconds. */
int
units_duration(const char *s, uint64_t *seconds)
{
	static const struct {
		const char	*suffix;
		uint64_t	 by;
	} table[] = {
		{ "", 1 }, { "s", 1 }, { "sec", 1 }, { "m", 60 },
		{ "min", 60 }, { "h", 3600 }, { "d", 86400 },
		{ "w", 7 * 86400 },
	};
	const char	*suffix;
	uint64_t	 v;
	size_t		 i;

	if (units_number(s, &v, &suffix) != 0)
		return (-1);
	for (i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strcasecmp(suffix, table[i].suffix) == 0)
			return (units_scale(v, table[i].by, seconds));
	}
	return (-1);
}

/* Parses a size in bytes. */
int
units_size(const char *s, uint64_t *bytes)
{
	static const struct {
		const char	*suffix;
		uint64_t	 by;
	} table[] = {
		{ "", 1 }, { "b", 1 }, { "k", 1ull << 10 }, { "kb", 1ull << 10 },
		{ "kib", 1ull << 10 }, { "m", 1ull << 20 }, { "mb", 1ull << 20 },
		{ "mib", 1ull << 20 }, { "g", 1ull << 30 }, { "gb", 1ull << 30 },
		{ "gib", 1ull << 30 }, { "t", 1ull << 40 }, { "tb", 1ull << 40 },
		{ "tib", 1ull << 40 },
	};
	const char	*suffix;
	uint64_t	 v;
	size_t		 i;

	if (units_number(s, &v, &suffix) != 0)
		return (-1);
	for (i = 0; i < sizeof table / sizeof table[0]; i++) {
		if (strcasecmp(suffix, table[i].suffix) == 0)
			return (units_scale(v, table[i].by, bytes));
	}
	return (-1);
}

/* Parses an ISO 8601 time; -1 when it is not one. */
static int
units_iso8601(const char *s, uint64_t *ns)
{
	struct tm	 tm;
	const char	*p;
	long		 off = 0, frac_ns = 0, scale = 100000000;
	int		 zone = 0, sign;
	time_t		 t;

	memset(&tm, 0, sizeof tm);
	if ((p = strptime(s, "%Y-%m-%d", &tm)) == NULL)
		return (-1);
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (strptime(p, "%H:%M:%S", &tm) != NULL)
			p = strptime(p, "%H:%M:%S", &tm);
		else if ((p = strptime(p, "%H:%M", &tm)) == NULL)
			return (-1);
		if (*p == '.') {
			if (!isdigit((unsigned char)p[1]))
				return (-1);
			for (p++; isdigit((unsigned char)*p); p++) {
				frac_ns += (*p - '0') * scale;
				scale /= 10;
			}
		}
	}
	if (*p == 'Z' || *p == 'z') {
		zone = 1;
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		if (!isdigit((unsigned char)p[1]) ||
		    !isdigit((unsigned char)p[2]))
			return (-1);
		off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600;
		if (off > 23 * 3600)
			return (-1);
		p += 3;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char)p[0]) &&
		    isdigit((unsigned char)p[1])) {
			off += ((p[0] - '0') * 10 + (p[1] - '0')) * 60;
			p += 2;
		}
		off *= sign;
		zone = 1;
	}
	if (*p != '\0')
		return (-1);
	if (zone) {
		t = timegm(&tm);
		t -= off;
	} else {
		tm.tm_isdst = -1;
		t = mktime(&tm);
	}
	if (t < 0)
		return (-1);
	*ns = (uint64_t)t * 1000000000u + (uint64_t)frac_ns;
	return (0);
}

/* Parses a time: "now", a duration ago, or ISO 8601. */
int
units_time(const char *s, uint64_t now_ns, uint64_t *ns)
{
	uint64_t	secs;

	if (strcasecmp(s, "now") == 0) {
		*ns = now_ns;
		return (0);
	}
	if (units_duration(s, &secs) == 0) {
		if (secs > now_ns / 1000000000u)
			*ns = 0;
		else
			*ns = now_ns - secs * 1000000000u;
		return (0);
	}
	return (units_iso8601(s, ns));
}
