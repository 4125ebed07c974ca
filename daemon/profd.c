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
#include "units.h"
#include "log.h"
#include "proto.h"
#include "rundir.h"
#include "server.h"

enum {
	OPT_MAX_AGENTS = 256,
	OPT_MAX_CONTROLS,
	OPT_MAX_IDS,
	OPT_MAX_GONE,
	OPT_MAX_MEMORY,
	OPT_BUCKET,
	OPT_RETENTION,
	OPT_PERSIST_INTERVAL,
	OPT_SWEEP_INTERVAL,
	OPT_RESYNC_IDS,
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
	{ "state-dir", required_argument, NULL, 's' },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "bucket", required_argument, NULL, OPT_BUCKET },
	{ "retention", required_argument, NULL, OPT_RETENTION },
	{ "persist-interval", required_argument, NULL, OPT_PERSIST_INTERVAL },
	{ "sweep-interval", required_argument, NULL, OPT_SWEEP_INTERVAL },
	{ "resync-ids", required_argument, NULL, OPT_RESYNC_IDS },
	{ NULL, 0, NULL, 0 }
};

/* Prints the usage. */
static void
profd_usage(FILE *f)
{
	fprintf(f,
"usage: profd [-v] [-r DIR] [-s DIR] [--max-memory SIZE] [--retention TIME]\n"
"             [--bucket TIME] [--persist-interval TIME] [--max-agents N]\n"
"             [--max-controls N] [--max-gone N] [--max-ids N]\n"
"\n"
"Collects samples from profagent processes, keeps them in time buckets and\n"
"answers profctl.  Runs in the foreground and logs to stderr.\n"
"\n"
"  -r, --runtime-dir DIR  where agent.sock and control.sock live (default:\n"
"                         $%s, else %s for root,\n"
"                         else $XDG_RUNTIME_DIR/profd, else /tmp/profd-$UID)\n"
"  -s, --state-dir DIR    keep the store on disk in DIR/profd.db (SQLite) and\n"
"                         load it at start (default: memory only)\n"
"  -v, --verbose          log more\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n"
"  --max-memory SIZE      memory for the whole daemon, e.g. 64M, 2G; past it\n"
"                         the oldest samples go first (default %zuM)\n"
"  --retention TIME       keep samples this long, e.g. 12h, 7d (default %ud)\n"
"  --bucket TIME          finest time resolution (default %us); older data\n"
"                         rolls up into 1 min buckets after 1 h and 1 h\n"
"                         buckets after 1 d\n"
"  --persist-interval TIME  with -s, write the newest samples this often;\n"
"                         kill -9 loses at most this much (default %us)\n"
"  --sweep-interval TIME  free definitions no sample uses this often\n"
"                         (default %us; sooner when memory is short)\n"
"  --resync-ids N         ask an agent to redefine its ids when it holds\n"
"                         this many that no sample uses (default %u)\n"
"  --max-agents N         connected agents (default %d)\n"
"  --max-controls N       open profctl connections (default %d)\n"
"  --max-gone N           disconnected agents kept for status (default %d)\n"
"  --max-ids N            ids of one kind per agent connection (default %u)\n"
"\n"
"TIME is a number with s, m, h, d or w; SIZE a number with K, M, G or T.\n",
	    RUNDIR_ENV, RUNDIR_SYSTEM, DEFAULT_MAX_MEMORY >> 20,
	    DEFAULT_RETENTION_S / 86400, DEFAULT_BUCKET_S, DEFAULT_PERSIST_S,
	    DEFAULT_SWEEP_S, DEFAULT_RESYNC_IDS, DEFAULT_MAX_AGENTS, DEFAULT_MAX_CONTROLS, DEFAULT_MAX_GONE,
	    DEFAULT_MAX_IDS);
}

/* Parses a duration option, or exits. */
static uint64_t
profd_duration(const char *name, const char *s, uint64_t min, uint64_t max)
{
	uint64_t	v;

	if (units_duration(s, &v) != 0 || v < min || v > max) {
		fprintf(stderr, "profd: --%s wants a time from %llus to %llus "
		    "(like 30s, 5m, 2h, 7d), not '%s'\n", name,
		    (unsigned long long)min, (unsigned long long)max, s);
		exit(2);
	}
	return (v);
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
	uint64_t		 size;
	int			 ch, i;

	server_limits_default(&lim);
	while ((ch = getopt_long(argc, argv, "r:s:vhV", profd_options,
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
		case 's':
			lim.state_dir = optarg;
			break;
		case OPT_MAX_MEMORY:
			if (units_size(optarg, &size) != 0 ||
			    size < PROFD_MIN_MEMORY) {
				fprintf(stderr, "profd: --max-memory wants a "
				    "size of at least %zuM (like 64M or 2G), "
				    "not '%s'\n", PROFD_MIN_MEMORY >> 20,
				    optarg);
				return (2);
			}
			lim.max_memory = (size_t)size;
			break;
		case OPT_BUCKET:
			lim.bucket_s = profd_duration("bucket", optarg, 1,
			    3600);
			break;
		case OPT_RETENTION:
			lim.retention_s = profd_duration("retention", optarg,
			    60, 366 * 86400);
			break;
		case OPT_SWEEP_INTERVAL:
			lim.sweep_s = profd_duration("sweep-interval", optarg,
			    1, 86400);
			break;
		case OPT_RESYNC_IDS:
			lim.resync_ids = profd_number("resync-ids", optarg, 16,
			    PROTO_MAX_ID);
			break;
		case OPT_PERSIST_INTERVAL:
			lim.persist_s = profd_duration("persist-interval",
			    optarg, 1, 3600);
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
	if (lim.state_dir != NULL && profd_mkdir(lim.state_dir) != 0)
		fatal("cannot use state directory %s: %s", lim.state_dir,
		    errno == EPERM ? "owned by another user" :
		    strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if (server_init(base, &lim, rundir, err, sizeof err) != 0)
		fatal("cannot start: %s", err);
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
