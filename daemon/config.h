/*
 * config.h -- profd's configuration file: one setting a line, named as the
 * long command-line flag without its dashes, then its value:
 *
 *	# who may use profctl
 *	allow-group	admins
 *	allow-read-group developers
 *	max-memory	1G
 *
 * Blank lines and lines starting with '#' are ignored.  A flag that takes
 * no value is a line with the name alone.  The command line wins over the
 * file; allow lists from both are joined.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_LINE	1024		/* bytes in one line */

/* Called for every setting; 0, or -1 with err set. */
typedef int (*config_set_cb)(void *arg, const char *name, const char *value,
    char *err, size_t errlen);

/*
 * Reads path and calls set for each setting.  Returns 0; 1 when the file
 * does not exist and `optional`; -1 with err set ("FILE:LINE: why").
 */
int	config_load(const char *path, int optional, config_set_cb set,
	    void *arg, char *err, size_t errlen);

#endif
