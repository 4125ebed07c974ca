/*
 * profd.c -- the profd collector: main(), options and the main loop.
 *
 * One thread, the event loop: it accepts agents and profctl on two Unix
 * sockets in the runtime directory, merges samples into the store and
 * answers control requests.
 */

#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "settings.h"
#include "log.h"
#include "proto.h"
#include "rundir.h"
#include "server.h"

enum {
	OPT_MAX_AGENTS = 256,
	OPT_MAX_CONTROLS,
	OPT_MAX_IDS,
	OPT_MAX_GONE,
	OPT_MAX_STACKS,
	OPT_MAX_STORE_MB,
};

static const struct option profd_options[] = {
	{ "runtime-dir", required_argument, NULL, 'r' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "max-agents", required_argument, NULL, OPT_MAX_AGENTS },
	{ "max-controls", required_argument, NULL, OPT_MAX_CONTROLS },
	{ "max-ids", required_argument, NULL, OPT_MAX_IDS },
	{ "max-gone", required_argument, NULL, OPT_MAX_GONE },
	{ "max-stacks", required_argument, NULL, OPT_MAX_STACKS },
	{ "max-store-mb", required_argument, NULL, OPT_MAX_STORE_MB },
	{ NULL, 0, NULL, 0 }
};

/* Prints the usage. */
static void
profd_usage(FILE *f)
{
	fprintf(f,
"usage: profd [-v] [-r DIR] [--max-agents N] [--max-controls N]\n"
"             [--max-stacks N] [--max-store-mb N] [--max-gone N] [--max-ids N]\n"
"\n"
"Collects samples from profagent processes and answers profctl.\n"
"Runs in the foreground and logs to stderr.\n"
"\n"
"  -r, --runtime-dir DIR  where agent.sock and control.sock live (default:\n"
"                         $%s, else %s for root,\n"
"                         else $XDG_RUNTIME_DIR/profd, else /tmp/profd-$UID)\n"
"  -v, --verbose          log more\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n"
"  --max-agents N         connected agents (default %d)\n"
"  --max-controls N       open profctl connections (default %d)\n"
"  --max-stacks N         distinct stacks kept (default %u)\n"
"  --max-store-mb N       memory for the merged profile (default %d)\n"
"  --max-gone N           disconnected agents kept for status (default %d)\n"
"  --max-ids N            ids of one kind per agent connection (default %u)\n",
	    RUNDIR_ENV, RUNDIR_SYSTEM, DEFAULT_MAX_AGENTS,
	    DEFAULT_MAX_CONTROLS, DEFAULT_MAX_STACKS, DEFAULT_MAX_STORE_MB,
	    DEFAULT_MAX_GONE, DEFAULT_MAX_IDS);
}

/* Parses a limit option's number, or exits. */
static size_t
profd_number(const char *name, const char *s, size_t min, size_t max)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min ||
	    v > max) {
		fprintf(stderr, "profd: --%s wants a number from %zu to %zu, "
		    "not '%s'\n", name, min, max, s);
		exit(2);
	}
	return ((size_t)v);
}

/* Creates the runtime directory and its parents (mode 0755). */
static int
profd_mkdir(const char *dir)
{
	char		path[SERVER_RUNDIR_MAX];
	struct stat	sb;
	size_t		i, len;

	if (stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode))
		goto owner;
	len = strlen(dir);
	if (len == 0 || len >= sizeof path) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	memcpy(path, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return (-1);
		path[i] = i == len ? '\0' : '/';
	}
	if (stat(dir, &sb) != 0)
		return (-1);
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return (-1);
	}

owner:
	/* Someone else's directory (say a planted /tmp/profd-UID) could
	 * hand our sockets to them; root's is fine (systemd makes it). */
	if (sb.st_uid != geteuid() && sb.st_uid != 0) {
		errno = EPERM;
		return (-1);
	}
	return (0);
}

/* TERM/INT: stop cleanly; HUP: nothing to reload yet. */
static void
profd_signal(evutil_socket_t sig, short events, void *arg)
{
	struct event_base	*base = arg;

	if (sig == SIGHUP) {
		log_info("SIGHUP: nothing to reload");
		return;
	}
	log_info("%s: shutting down", strsignal((int)sig));
	sd_notify(0, "STOPPING=1");
	event_base_loopbreak(base);
}

/* Parses options, binds or inherits the sockets and runs the loop. */
int
main(int argc, char **argv)
{
	struct server_limits	 lim;
	struct event_base	*base;
	struct event		*sigs[3];
	const int		 signums[3] = { SIGTERM, SIGINT, SIGHUP };
	const char		*flag = NULL;
	char			 rundir[SERVER_RUNDIR_MAX], err[512];
	int			 ch, i;

	server_limits_default(&lim);
	while ((ch = getopt_long(argc, argv, "r:vhV", profd_options,
	    NULL)) != -1) {
		switch (ch) {
		case 'r':
			flag = optarg;
			break;
		case 'v':
			log_verbose = 1;
			break;
		case 'h':
			profd_usage(stdout);
			return (0);
		case 'V':
			printf("profd %s (protocol %d)\n", PROFD_VERSION,
			    PROTO_VERSION);
			return (0);
		case OPT_MAX_AGENTS:
			lim.max_agents = profd_number("max-agents", optarg, 1,
			    1u << 20);
			break;
		case OPT_MAX_CONTROLS:
			lim.max_controls = profd_number("max-controls", optarg,
			    1, 1u << 16);
			break;
		case OPT_MAX_IDS:
			lim.max_ids = profd_number("max-ids", optarg, 1,
			    PROTO_MAX_ID);
			break;
		case OPT_MAX_GONE:
			lim.max_gone = profd_number("max-gone", optarg, 0,
			    1u << 20);
			break;
		case OPT_MAX_STACKS:
			lim.max_stacks = profd_number("max-stacks", optarg, 1,
			    PROTO_MAX_ID);
			break;
		case OPT_MAX_STORE_MB:
			lim.max_store_bytes = profd_number("max-store-mb",
			    optarg, 1, 1u << 20) << 20;
			break;
		default:
			profd_usage(stderr);
			return (2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "profd: unexpected argument '%s'\n",
		    argv[optind]);
		profd_usage(stderr);
		return (2);
	}

	if (rundir_resolve(flag, rundir, sizeof rundir) != 0)
		fatal("runtime directory name too long");
	if (profd_mkdir(rundir) != 0)
		fatal("cannot use runtime directory %s: %s", rundir,
		    errno == EPERM ? "owned by another user" :
		    strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if (server_init(base, &lim, rundir) != 0)
		fatal("cannot start: runtime directory path %s too long or "
		    "out of memory", rundir);
	if (server_listen(err, sizeof err) != 0) {
		server_free();
		fatal("%s", err);
	}
	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(base, signums[i], profd_signal, base);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) != 0)
			fatal("cannot handle signal %d", signums[i]);
	}

	sd_notify(0, "READY=1");
	log_info("profd %s ready in %s (pid %ld)", PROFD_VERSION, rundir,
	    (long)getpid());
	event_base_dispatch(base);

	server_free();
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_base_free(base);
	libevent_global_shutdown();
	log_info("stopped");
	return (0);
}
