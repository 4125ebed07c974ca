/* log.h -- one line per event on stderr, prefixed "profd: ". */
#ifndef LOG_H
#define LOG_H

/* Verbosity: -1 warnings only (tests), 0 info and warnings, 1 also debug.
 * Set once at start-up. */
extern int log_verbose;

void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Logs and exits 1: only at start-up. */
void	log_fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
#define fatal(...) log_fatal(__VA_ARGS__)

#endif
