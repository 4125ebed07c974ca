/* log.c -- profd's log: stderr, one line per event. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

/* Set once at start-up by main(), read-only afterwards. */
int log_verbose;

/* Writes one "profd: " line. */
static void
log_vwrite(const char *level, const char *fmt, va_list ap)
{
	char	line[1024];

	vsnprintf(line, sizeof line, fmt, ap);
	fprintf(stderr, "profd: %s%s\n", level, line);
}

/* Logs an event. */
void
log_info(const char *fmt, ...)
{
	va_list	ap;

	if (log_verbose < 0)
		return;
	va_start(ap, fmt);
	log_vwrite("", fmt, ap);
	va_end(ap);
}

/* Logs something that went wrong but does not stop the daemon. */
void
log_warn(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite("warning: ", fmt, ap);
	va_end(ap);
}

/* Logs a detail, only with -v. */
void
log_debug(const char *fmt, ...)
{
	va_list	ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	log_vwrite("", fmt, ap);
	va_end(ap);
}

/* Logs and exits: start-up errors only. */
void
log_fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	log_vwrite("error: ", fmt, ap);
	va_end(ap);
	exit(1);
}
