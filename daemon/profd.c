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
#include "access.h"
#include "config.h"
#include "units.h"
#include "log.h"
#include "persist.h"
#include "proto.h"
#include "rundir.h"
#include "server.h"

enum {
	OPT_MAX_AGENTS = 256,
	OPT_MAX_AGENTS_PER_UID,
	OPT_MAX_CONTROLS,
	OPT_MAX_IDS,
	OPT_MAX_GONE,
	OPT_MAX_MEMORY,
	OPT_BUCKET,
	OPT_RETENTION,
	OPT_MAX_DISK,
	OPT_PERSIST_INTERVAL,
	OPT_SYNC,
	OPT_SWEEP_INTERVAL,
	OPT_RESYNC_IDS,
	OPT_ALLOW_USER,
	OPT_ALLOW_GROUP,
	OPT_ALLOW_READ_USER,
	OPT_ALLOW_READ_GROUP,
	OPT_AGENT_SOCKET_MODE,
	OPT_CONTROL_SOCKET_MODE,
	OPT_SOCKET_GROUP,
	OPT_HELLO_TIMEOUT,
	OPT_FRAME_TIMEOUT,
	OPT_CONTROL_TIMEOUT,
	OPT_QUERY_TIMEOUT,
	OPT_MAX_QUERIES,
};

static const struct option profd_options[] = {
	{ "runtime-dir", required_argument, NULL, 'r' },
	{ "state-dir", required_argument, NULL, 's' },
	{ "config", required_argument, NULL, 'c' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ "max-agents", required_argument, NULL, OPT_MAX_AGENTS },
	{ "max-agents-per-uid", required_argument, NULL,
	  OPT_MAX_AGENTS_PER_UID },
	{ "max-controls", required_argument, NULL, OPT_MAX_CONTROLS },
	{ "max-ids", required_argument, NULL, OPT_MAX_IDS },
	{ "max-gone", required_argument, NULL, OPT_MAX_GONE },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "bucket", required_argument, NULL, OPT_BUCKET },
	{ "retention", required_argument, NULL, OPT_RETENTION },
	{ "max-disk", required_argument, NULL, OPT_MAX_DISK },
	{ "persist-interval", required_argument, NULL, OPT_PERSIST_INTERVAL },
	{ "sync", required_argument, NULL, OPT_SYNC },
	{ "sweep-interval", required_argument, NULL, OPT_SWEEP_INTERVAL },
	{ "resync-ids", required_argument, NULL, OPT_RESYNC_IDS },
	{ "allow-user", required_argument, NULL, OPT_ALLOW_USER },
	{ "allow-group", required_argument, NULL, OPT_ALLOW_GROUP },
	{ "allow-read-user", required_argument, NULL, OPT_ALLOW_READ_USER },
	{ "allow-read-group", required_argument, NULL, OPT_ALLOW_READ_GROUP },
	{ "agent-socket-mode", required_argument, NULL,
	  OPT_AGENT_SOCKET_MODE },
	{ "control-socket-mode", required_argument, NULL,
	  OPT_CONTROL_SOCKET_MODE },
	{ "socket-group", required_argument, NULL, OPT_SOCKET_GROUP },
	{ "hello-timeout", required_argument, NULL, OPT_HELLO_TIMEOUT },
	{ "frame-timeout", required_argument, NULL, OPT_FRAME_TIMEOUT },
	{ "control-timeout", required_argument, NULL, OPT_CONTROL_TIMEOUT },
	{ "query-timeout", required_argument, NULL, OPT_QUERY_TIMEOUT },
	{ "max-queries", required_argument, NULL, OPT_MAX_QUERIES },
	{ NULL, 0, NULL, 0 }
};

/* Everything the command line and the config file set. */
struct profd_opts {
	struct server_limits	lim;
	struct access_config	acc;
	char			rundir[SERVER_RUNDIR_MAX];
	char			state_dir[SERVER_RUNDIR_MAX];
	char			config[SERVER_RUNDIR_MAX];
	int			config_given;	/* -c: must exist */
	int			verbose;
};

/* The options in effect, and the command line to apply again on reload. */
static struct profd_opts	 profd_opts;
static int			 profd_argc;
static char			**profd_argv;

/* Prints the usage. */
static void
profd_usage(FILE *f)
{
	fprintf(f,
"usage: profd [-v] [-c FILE] [-r DIR] [-s DIR] [--max-memory SIZE]\n"
"             [--retention TIME] [--bucket TIME] [--allow-group GROUP] ...\n"
"\n"
"Collects samples from profagent processes, keeps them in time buckets and\n"
"answers profctl.  Runs in the foreground and logs to stderr.\n"
"\n"
"  -c, --config FILE      read settings from FILE, one 'name value' a line\n"
"                         named as the long flags (default: %s, if it\n"
"                         exists); flags given here win\n"
"  -r, --runtime-dir DIR  where agent.sock and control.sock live (default:\n"
"                         $%s, else %s for root,\n"
"                         else $XDG_RUNTIME_DIR/profd, else /tmp/profd-$UID)\n"
"  -s, --state-dir DIR    keep the store on disk in DIR/profd.db (SQLite) and\n"
"                         load it at start (default: memory only)\n"
"  -v, --verbose          log more\n"
"  -h, --help             this help\n"
"  -V, --version          print the version\n"
"\n"
"Access (checked against the kernel's credentials of every connection):\n"
"  root and profd's own user may do everything with profctl.\n"
"  --allow-user USER      may also start, stop, reset and reload (repeat)\n"
"  --allow-group GROUP    members may too (repeat)\n"
"  --allow-read-user USER may use status, show and ps, without argv (repeat)\n"
"  --allow-read-group GROUP  members may too (repeat)\n"
"  --agent-socket-mode MODE  of agent.sock when profd creates it (default\n"
"                         %04o: any local process may send samples, filed\n"
"                         under its own kernel-checked pid)\n"
"  --control-socket-mode MODE  of control.sock (default %04o; the allow\n"
"                         lists decide who gets an answer)\n"
"  --socket-group GROUP   group of both sockets when profd creates them\n"
"  --max-agents-per-uid N agent connections of one user other than root\n"
"                         and profd's own (default %d)\n"
"\n"
"Store and limits:\n"
"  --max-memory SIZE      memory for the whole daemon, e.g. 64M, 2G; past it\n"
"                         the oldest samples leave memory first: with -s\n"
"                         they stay on disk, where shows read them; without,\n"
"                         they are dropped (default %zuM)\n"
"  --retention TIME       keep samples this long, e.g. 12h, 30d (default %ud)\n"
"  --max-disk SIZE        with -s, past this size of the file the oldest\n"
"                         samples only on disk go first; 0: no bound but the\n"
"                         retention (default %zuG)\n"
"  --bucket TIME          finest time resolution (default %us); older data\n"
"                         rolls up into 1 min buckets after 1 h and 1 h\n"
"                         buckets after 1 d\n"
"  --persist-interval TIME  with -s, write the newest samples this often;\n"
"                         kill -9 loses at most this much (default %us)\n"
"  --sync interval|none   with -s: interval (default) fsyncs each write, so\n"
"                         what agents were told is kept survives a power\n"
"                         cut; none leaves it to the OS (survives kill -9)\n"
"  --sweep-interval TIME  free definitions no sample uses this often\n"
"                         (default %us; sooner when memory is short)\n"
"  --resync-ids N         ask an agent to redefine its ids when it holds\n"
"                         this many that no sample uses (default %u)\n"
"  --max-agents N         connected agents (default %d)\n"
"  --max-controls N       open profctl connections (default %d)\n"
"  --max-gone N           disconnected agents kept for status, and processes\n"
"                         no sample names kept by the store (default %d)\n"
"  --max-ids N            ids of one kind per agent connection (default %u)\n"
"  --hello-timeout TIME   an agent must say hello this soon after connecting\n"
"                         (default %us)\n"
"  --frame-timeout TIME   a message, once begun, must be whole this soon, on\n"
"                         both sockets (default %us)\n"
"  --control-timeout TIME profctl connections: closed after this long\n"
"                         without a request, or with a reply unread\n"
"                         (default %us)\n"
"  --query-timeout TIME   a show not answered this soon is ended with an\n"
"                         error saying how to narrow it (default %us)\n"
"  --max-queries N        shows reading the store at once; more wait their\n"
"                         turn (default %d)\n"
"\n"
"TIME is a number with s, m, h, d or w; SIZE a number with K, M, G or T;\n"
"MODE an octal file mode.  SIGHUP or `profctl reload` reads the config\n"
"file and the flags again: access settings and connection limits apply at\n"
"once, the others at the next start.\n",
	    DEFAULT_CONFIG, RUNDIR_ENV, RUNDIR_SYSTEM,
	    DEFAULT_AGENT_SOCKET_MODE, DEFAULT_CONTROL_SOCKET_MODE,
	    DEFAULT_MAX_AGENTS_PER_UID, DEFAULT_MAX_MEMORY >> 20,
	    DEFAULT_RETENTION_S / 86400, (size_t)(DEFAULT_MAX_DISK >> 30),
	    DEFAULT_BUCKET_S, DEFAULT_PERSIST_S,
	    DEFAULT_SWEEP_S, DEFAULT_RESYNC_IDS, DEFAULT_MAX_AGENTS,
	    DEFAULT_MAX_CONTROLS, DEFAULT_MAX_GONE, DEFAULT_MAX_IDS,
	    DEFAULT_HELLO_TIMEOUT_S, DEFAULT_FRAME_TIMEOUT_S,
	    DEFAULT_CONTROL_TIMEOUT_S, DEFAULT_QUERY_TIMEOUT_S,
	    DEFAULT_MAX_QUERIES);
}

/* Writes seconds in the largest unit that holds them whole (90s, 1m,
 * 366d). */
static void
profd_seconds(uint64_t v, char *buf, size_t len)
{
	static const struct {
		uint64_t	s;
		char		unit;
	} units[] = { { 86400, 'd' }, { 3600, 'h' }, { 60, 'm' } };
	size_t	i;

	for (i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (v >= units[i].s && v % units[i].s == 0) {
			snprintf(buf, len, "%llu%c",
			    (unsigned long long)(v / units[i].s), units[i].unit);
			return;
		}
	}
	snprintf(buf, len, "%llus", (unsigned long long)v);
}

/* Parses a duration. */
static int
profd_duration(const char *name, const char *s, uint64_t min, uint64_t max,
    uint64_t *to, char *err, size_t errlen)
{
	static const char *const examples[] = {
		"1s", "30s", "5m", "2h", "1d", "7d", "30d"
	};
	char		lo[32], hi[32], like[64];
	uint64_t	v, e;
	size_t		i, n = 0, len = 0;

	if (units_duration(s, &v) != 0 || v < min || v > max) {
		profd_seconds(min, lo, sizeof lo);
		profd_seconds(max, hi, sizeof hi);
		like[0] = '\0';
		for (i = 0; i < sizeof examples / sizeof examples[0] && n < 3;
		    i++) {
			if (units_duration(examples[i], &e) != 0 || e < min ||
			    e > max || len >= sizeof like)
				continue;
			len += (size_t)snprintf(like + len, sizeof like - len,
			    "%s%s", n++ > 0 ? ", " : "", examples[i]);
		}
		snprintf(err, errlen, "--%s wants a time from %s to %s (like "
		    "%s), not '%s'", name, lo, hi, like, s);
		return (-1);
	}
	*to = v;
	return (0);
}

/* Parses a limit's number. */
static int
profd_number(const char *name, const char *s, size_t min, size_t max,
    size_t *to, char *err, size_t errlen)
{
	unsigned long long	 v;
	char			*end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || *s == '-' || v < min ||
	    v > max) {
		snprintf(err, errlen, "--%s wants a number from %zu to %zu, "
		    "not '%s'", name, min, max, s);
		return (-1);
	}
	*to = (size_t)v;
	return (0);
}

/* Parses an octal file mode for a socket. */
static int
profd_mode(const char *name, const char *s, mode_t *to, char *err,
    size_t errlen)
{
	unsigned long	 v;
	char		*end;

	errno = 0;
	v = strtoul(s, &end, 8);
	if (errno != 0 || end == s || *end != '\0' || v > 0777 ||
	    (v & 0600) != 0600) {
		snprintf(err, errlen, "--%s wants an octal mode from 0600 to "
		    "0777 (like 0660), not '%s'", name, s);
		return (-1);
	}
	*to = (mode_t)v;
	return (0);
}

/* Copies a path option. */
static int
profd_path(const char *name, const char *s, char *to, size_t len, char *err,
    size_t errlen)
{
	if (*s == '\0' || strlen(s) >= len) {
		snprintf(err, errlen, "--%s wants a path shorter than %zu "
		    "bytes", name, len);
		return (-1);
	}
	memcpy(to, s, strlen(s) + 1);
	return (0);
}

/* Sets one option by its long name (command line and config file). */
static int
profd_set(void *arg, const char *name, const char *v, char *err,
    size_t errlen)
{
	struct profd_opts	*o = arg;
	struct server_limits	*lim = &o->lim;
	struct access_config	*ac = &o->acc;
	const struct option	*opt;
	size_t			 n;
	gid_t			 gid;
	uint64_t		 size;

	for (opt = profd_options; opt->name != NULL; opt++)
		if (strcmp(opt->name, name) == 0)
			break;
	if (opt->name == NULL || opt->val == 'h' || opt->val == 'V' ||
	    opt->val == 'c') {
		snprintf(err, errlen, "unknown setting '%s' (see profd "
		    "--help)", name);
		return (-1);
	}
	if ((opt->has_arg == required_argument) != (v != NULL)) {
		snprintf(err, errlen, v == NULL ? "'%s' needs a value" :
		    "'%s' takes no value", name);
		return (-1);
	}
	switch (opt->val) {
	case 'r':
		return (profd_path(name, v, o->rundir, sizeof o->rundir, err,
		    errlen));
	case 's':
		if (profd_path(name, v, o->state_dir, sizeof o->state_dir,
		    err, errlen) != 0)
			return (-1);
		lim->state_dir = o->state_dir;
		return (0);
	case 'v':
		o->verbose = 1;
		return (0);
	case OPT_MAX_AGENTS:
		return (profd_number(name, v, 1, 1u << 20, &lim->max_agents,
		    err, errlen));
	case OPT_MAX_AGENTS_PER_UID:
		return (profd_number(name, v, 1, 1u << 20,
		    &lim->max_agents_per_uid, err, errlen));
	case OPT_MAX_CONTROLS:
		return (profd_number(name, v, 1, 1u << 16, &lim->max_controls,
		    err, errlen));
	case OPT_MAX_IDS:
		return (profd_number(name, v, 1, PROTO_MAX_ID, &lim->max_ids,
		    err, errlen));
	case OPT_MAX_GONE:
		return (profd_number(name, v, 0, 1u << 20, &lim->max_gone,
		    err, errlen));
	case OPT_MAX_MEMORY:
		if (units_size(v, &size) != 0 || size < PROFD_MIN_MEMORY) {
			snprintf(err, errlen, "--max-memory wants a size of at "
			    "least %zuM (like 64M or 2G), not '%s'",
			    PROFD_MIN_MEMORY >> 20, v);
			return (-1);
		}
		lim->max_memory = (size_t)size;
		return (0);
	case OPT_BUCKET:
		return (profd_duration(name, v, 1, 3600, &lim->bucket_s, err,
		    errlen));
	case OPT_MAX_DISK:
		if (units_size(v, &size) != 0 || (size != 0 &&
		    size < PROFD_MIN_DISK)) {
			snprintf(err, errlen, "--max-disk wants 0 (no bound) or "
			    "a size of at least %zuM (like 512M or 10G), not "
			    "'%s'", (size_t)(PROFD_MIN_DISK >> 20), v);
			return (-1);
		}
		lim->max_disk = size;
		return (0);
	case OPT_RETENTION:
		return (profd_duration(name, v, 60, 366 * 86400,
		    &lim->retention_s, err, errlen));
	case OPT_SWEEP_INTERVAL:
		return (profd_duration(name, v, 1, 86400, &lim->sweep_s, err,
		    errlen));
	case OPT_RESYNC_IDS:
		if (profd_number(name, v, 16, PROTO_MAX_ID, &n, err,
		    errlen) != 0)
			return (-1);
		lim->resync_ids = n;
		return (0);
	case OPT_PERSIST_INTERVAL:
		return (profd_duration(name, v, 1, 3600, &lim->persist_s, err,
		    errlen));
	case OPT_SYNC:
		if (strcmp(v, "interval") == 0)
			lim->sync = PERSIST_SYNC_INTERVAL;
		else if (strcmp(v, "none") == 0)
			lim->sync = PERSIST_SYNC_NONE;
		else {
			snprintf(err, errlen, "--sync wants interval or none, "
			    "not '%s'", v);
			return (-1);
		}
		return (0);
	case OPT_HELLO_TIMEOUT:
		return (profd_duration(name, v, 1, 3600,
		    &lim->hello_timeout_s, err, errlen));
	case OPT_FRAME_TIMEOUT:
		return (profd_duration(name, v, 1, 3600,
		    &lim->frame_timeout_s, err, errlen));
	case OPT_CONTROL_TIMEOUT:
		return (profd_duration(name, v, 1, 86400,
		    &lim->control_timeout_s, err, errlen));
	case OPT_QUERY_TIMEOUT:
		return (profd_duration(name, v, 1, 3600,
		    &lim->query_timeout_s, err, errlen));
	case OPT_MAX_QUERIES:
		return (profd_number(name, v, 1, 1024, &lim->max_queries, err,
		    errlen));
	case OPT_ALLOW_USER:
		return (access_add_user(ac->users, &ac->nusers, v, err,
		    errlen));
	case OPT_ALLOW_GROUP:
		return (access_add_group(ac->groups, &ac->ngroups, v, err,
		    errlen));
	case OPT_ALLOW_READ_USER:
		return (access_add_user(ac->read_users, &ac->nread_users, v,
		    err, errlen));
	case OPT_ALLOW_READ_GROUP:
		return (access_add_group(ac->read_groups, &ac->nread_groups,
		    v, err, errlen));
	case OPT_AGENT_SOCKET_MODE:
		return (profd_mode(name, v, &lim->agent_mode, err, errlen));
	case OPT_CONTROL_SOCKET_MODE:
		return (profd_mode(name, v, &lim->control_mode, err, errlen));
	case OPT_SOCKET_GROUP:
		n = 0;
		if (access_add_group(&gid, &n, v, err, errlen) != 0)
			return (-1);
		lim->socket_gid = gid;
		return (0);
	}
	snprintf(err, errlen, "unknown setting '%s'", name);
	return (-1);
}

/*
 * Reads the config file, then the command line over it, into *o.
 * Returns 0, or -1 with err set.
 */
static int
profd_load(struct profd_opts *o, int argc, char **argv, char *err,
    size_t errlen)
{
	const char	*config = DEFAULT_CONFIG;
	char		 why[512];
	int		 ch, given = 0;

	memset(o, 0, sizeof *o);
	server_limits_default(&o->lim);
	/* First the file the command line names, if any. */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "r:s:c:vhV", profd_options,
	    NULL)) != -1) {
		if (ch == 'c') {
			config = optarg;
			given = 1;
		}
	}
	snprintf(o->config, sizeof o->config, "%s", config);
	o->config_given = given;
	if (config_load(config, !given, profd_set, o, err, errlen) == -1)
		return (-1);
	/* Then every flag over it. */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "r:s:c:vhV", profd_options,
	    NULL)) != -1) {
		const struct option	*opt;

		if (ch == 'c' || ch == 'h' || ch == 'V')
			continue;
		if (ch == '?' || ch == ':') {
			snprintf(err, errlen, "unknown option or missing "
			    "value: %s", argv[optind - 1]);
			return (-1);
		}
		for (opt = profd_options; opt->name != NULL; opt++)
			if (opt->val == ch)
				break;
		why[0] = '\0';
		if (profd_set(o, opt->name, opt->has_arg ? optarg : NULL,
		    why, sizeof why) != 0) {
			snprintf(err, errlen, "%s", why);
			return (-1);
		}
	}
	if (optind != argc) {
		snprintf(err, errlen, "unexpected argument '%s'",
		    argv[optind]);
		return (-1);
	}
	return (0);
}

/* Lists the settings a reload cannot change, comparing old and new. */
static void
profd_reload_note(const struct profd_opts *was, const struct profd_opts *now)
{
	const struct server_limits *a = &was->lim, *b = &now->lim;

#define PROFD_SAME(f, name) do {					\
	if (a->f != b->f)						\
		log_warn("reload: %s changed; it takes effect when profd " \
		    "restarts", name);					\
} while (0)
	PROFD_SAME(max_ids, "max-ids");
	PROFD_SAME(max_gone, "max-gone");
	PROFD_SAME(max_memory, "max-memory");
	PROFD_SAME(bucket_s, "bucket");
	PROFD_SAME(retention_s, "retention");
	PROFD_SAME(max_disk, "max-disk");
	PROFD_SAME(persist_s, "persist-interval");
	PROFD_SAME(sync, "sync");
	PROFD_SAME(sweep_s, "sweep-interval");
	PROFD_SAME(resync_ids, "resync-ids");
	PROFD_SAME(agent_mode, "agent-socket-mode");
	PROFD_SAME(control_mode, "control-socket-mode");
	PROFD_SAME(socket_gid, "socket-group");
#undef PROFD_SAME
	if (strcmp(was->rundir, now->rundir) != 0)
		log_warn("reload: runtime-dir changed; it takes effect when "
		    "profd restarts");
	if (strcmp(was->state_dir, now->state_dir) != 0)
		log_warn("reload: state-dir changed; it takes effect when "
		    "profd restarts");
}

/* Reads the config file and flags again (SIGHUP, `profctl reload`). */
static int
profd_reload(char *err, size_t errlen)
{
	static struct profd_opts	 o;

	if (profd_load(&o, profd_argc, profd_argv, err, errlen) != 0) {
		log_warn("reload: %s; keeping the settings in effect", err);
		return (-1);
	}
	profd_reload_note(&profd_opts, &o);
	access_config = o.acc;
	log_verbose = o.verbose;
	server_limits.max_agents = o.lim.max_agents;
	server_limits.max_agents_per_uid = o.lim.max_agents_per_uid;
	server_limits.max_controls = o.lim.max_controls;
	/* Deadlines: from the next one armed. */
	server_limits.hello_timeout_s = o.lim.hello_timeout_s;
	server_limits.frame_timeout_s = o.lim.frame_timeout_s;
	server_limits.control_timeout_s = o.lim.control_timeout_s;
	server_limits.query_timeout_s = o.lim.query_timeout_s;
	server_limits.max_queries = o.lim.max_queries;
	/* What the reload could not apply stays as it was. */
	o.lim = profd_opts.lim;
	o.lim.max_agents = server_limits.max_agents;
	o.lim.max_agents_per_uid = server_limits.max_agents_per_uid;
	o.lim.max_controls = server_limits.max_controls;
	o.lim.hello_timeout_s = server_limits.hello_timeout_s;
	o.lim.frame_timeout_s = server_limits.frame_timeout_s;
	o.lim.control_timeout_s = server_limits.control_timeout_s;
	o.lim.query_timeout_s = server_limits.query_timeout_s;
	o.lim.max_queries = server_limits.max_queries;
	memcpy(o.rundir, profd_opts.rundir, sizeof o.rundir);
	memcpy(o.state_dir, profd_opts.state_dir, sizeof o.state_dir);
	o.lim.state_dir = profd_opts.lim.state_dir;
	profd_opts = o;
	log_info("reloaded %s%s: %zu users and %zu groups may control, %zu "
	    "and %zu may read", profd_opts.config, profd_opts.config_given ?
	    "" : " (if present) and the flags", access_config.nusers,
	    access_config.ngroups, access_config.nread_users,
	    access_config.nread_groups);
	snprintf(err, errlen, "%s", profd_opts.config);
	return (0);
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

/* TERM/INT: stop cleanly; HUP: read the config again. */
static void
profd_signal(evutil_socket_t sig, short events, void *arg)
{
	struct event_base	*base = arg;
	char			 err[512];

	if (sig == SIGHUP) {
		log_info("SIGHUP: reloading");
		(void)profd_reload(err, sizeof err);
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
	struct event_base	*base;
	struct event		*sigs[3];
	const int		 signums[3] = { SIGTERM, SIGINT, SIGHUP };
	struct server_limits	*lim = &profd_opts.lim;
	char			 rundir[SERVER_RUNDIR_MAX], err[1024];
	int			 ch, i;

	/* -h and -V first, whatever else is there. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "r:s:c:vhV", profd_options,
	    NULL)) != -1) {
		if (ch == 'h') {
			profd_usage(stdout);
			return (0);
		}
		if (ch == 'V') {
			printf("profd %s (protocol %d)\n", PROFD_VERSION,
			    PROTO_VERSION);
			return (0);
		}
	}
	profd_argc = argc;
	profd_argv = argv;
	if (profd_load(&profd_opts, argc, argv, err, sizeof err) != 0) {
		fprintf(stderr, "profd: %s\n", err);
		profd_usage(stderr);
		return (2);
	}
	access_config = profd_opts.acc;
	log_verbose = profd_opts.verbose;
	server_reload_hook = profd_reload;
	snprintf(server_config_path, sizeof server_config_path, "%s",
	    profd_opts.config);

	if (rundir_resolve(profd_opts.rundir[0] != '\0' ? profd_opts.rundir :
	    NULL, rundir, sizeof rundir) != 0)
		fatal("runtime directory name too long");
	if (profd_mkdir(rundir) != 0)
		fatal("cannot use runtime directory %s: %s", rundir,
		    errno == EPERM ? "owned by another user" :
		    strerror(errno));
	if (rundir_check(rundir, 1, err, sizeof err) != 0)
		fatal("cannot use runtime directory: %s", err);
	if (lim->state_dir != NULL && (profd_mkdir(lim->state_dir) != 0 ||
	    rundir_check(lim->state_dir, 1, err, sizeof err) != 0))
		fatal("cannot use state directory %s: %s", lim->state_dir,
		    errno == EPERM ? "owned by another user or writable by "
		    "others" : strerror(errno));
	signal(SIGPIPE, SIG_IGN);

	if ((base = event_base_new()) == NULL)
		fatal("cannot create the event loop");
	if (server_init(base, lim, rundir, err, sizeof err) != 0)
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
