/*
 * config.c -- reads profd's configuration file (see config.h).
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "config.h"

/* Reads the file, one setting a line. */
int
config_load(const char *path, int optional, config_set_cb set, void *arg,
    char *err, size_t errlen)
{
	char	 line[CONFIG_MAX_LINE + 2], why[512], *name, *value, *end;
	FILE	*f;
	int	 lineno = 0, c;

	if ((f = fopen(path, "re")) == NULL) {
		if (optional && errno == ENOENT)
			return (1);
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		return (-1);
	}
	while (fgets(line, sizeof line, f) != NULL) {
		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f)) {
			snprintf(err, errlen, "%s:%d: line longer than %d "
			    "bytes", path, lineno, CONFIG_MAX_LINE);
			while ((c = fgetc(f)) != EOF && c != '\n')
				;
			goto fail;
		}
		name = line;
		while (isspace((unsigned char)*name))
			name++;
		if (*name == '\0' || *name == '#')
			continue;
		end = name + strlen(name);
		while (end > name && isspace((unsigned char)end[-1]))
			*--end = '\0';
		value = name;
		while (*value != '\0' && !isspace((unsigned char)*value))
			value++;
		if (*value != '\0') {
			*value++ = '\0';
			while (isspace((unsigned char)*value))
				value++;
		}
		if (name[0] == '-' && name[1] == '-')
			name += 2;
		why[0] = '\0';
		if (set(arg, name, *value != '\0' ? value : NULL, why,
		    sizeof why) != 0) {
			snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
			goto fail;
		}
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		goto fail;
	}
	fclose(f);
	return (0);

fail:
	fclose(f);
	return (-1);
}
