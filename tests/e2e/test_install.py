"""make install / uninstall into a DESTDIR, the man pages, bash completion,
and the agent installed by pip (in-tree PEP 517 backend) and from the
wheels of `make wheels`, each in a fresh venv with no network."""
import os
import re
import subprocess

from harness import BIN, ROOT, WORKLOADS, check, once, wait_until

COMMANDS = ["status", "start", "stop", "show", "flamegraph", "ps", "reset",
            "reload"]


def run(args, timeout=600, **kw):
    return subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout, **kw)


def make(ctx, *args):
    r = run(["make", "--no-print-directory", "-s", "-C", ROOT,
             "SANITIZE=%s" % ("1" if ctx.sanitize else ""),
             "PYTHON=" + ctx.python, "AGENTDIR=" + ctx.agent_dir] + list(args))
    check(r.returncode == 0, "make %s: %s" % (" ".join(args), r.stdout[-2000:]))
    return r


def files_under(d):
    out = set()
    for dirpath, _, names in os.walk(d):
        for n in names:
            out.add(os.path.relpath(os.path.join(dirpath, n), d))
    return out


@once
def test_make_install_and_uninstall_with_destdir(ctx):
    dest = os.path.join(ctx.tmp, "dest")
    make(ctx, "install", "PREFIX=/usr", "DESTDIR=" + dest)
    # Debian's python3 with PREFIX=/usr: its system dist-packages, where
    # it looks first (its default scheme is /usr/local's).
    r = run([ctx.python, "-c", "import sysconfig; s = sysconfig.get_scheme_"
             "names(); print(sysconfig.get_path('platlib', 'deb_system') if "
             "'deb_system' in s else sysconfig.get_path('platlib')); "
             "print(sysconfig.get_config_var('EXT_SUFFIX')); "
             "print('deb_system' in s)"])
    site, ext, debian = r.stdout.split()
    site = site.lstrip("/")
    if debian == "True":
        check(site == "usr/lib/python3/dist-packages", "Debian's python3 "
              "with PREFIX=/usr installs into /%s" % site)
    want = {"usr/sbin/profd", "usr/bin/profctl",
            "usr/lib/systemd/system/profd.service",
            "usr/lib/systemd/system/profd.socket",
            "usr/lib/systemd/system/profd-control.socket",
            "usr/lib/sysusers.d/profd.conf", "usr/lib/tmpfiles.d/profd.conf",
            "usr/share/man/man1/profctl.1", "usr/share/man/man8/profd.8",
            "usr/share/bash-completion/completions/profctl",
            "usr/share/doc/profd/profd.conf.example",
            site + "/profagent/__init__.py", site + "/profagent/__main__.py",
            site + "/profagent/_boot/sitecustomize.py",
            site + "/profagent/_profagent" + ext}
    got = files_under(dest)
    check(got == want, "installed files: missing %s, extra %s"
          % (sorted(want - got), sorted(got - want)))

    # The units name the installed profd; the installed programs run.
    with open(os.path.join(dest, "usr/lib/systemd/system/profd.service")) as f:
        check("ExecStart=/usr/sbin/profd " in f.read(), "ExecStart= not /usr/sbin")
    r = run([os.path.join(dest, "usr/bin/profctl"), "--help"])
    check(r.returncode == 0 and "usage: profctl" in r.stdout, r.stdout)
    r = run([os.path.join(dest, "usr/sbin/profd"), "--version"])
    check(r.returncode == 0 and r.stdout.startswith("profd "), r.stdout)
    env = ctx.agent_env()    # with the sanitizer's runtime under SANITIZE=1
    env["PYTHONPATH"] = os.path.join(dest, site)
    r = run([ctx.python, "-s", "-c", "import profagent, profagent._profagent;"
             " print(profagent.__file__)"], env=env)
    check(r.returncode == 0 and r.stdout.startswith(dest),
          "installed agent: %s" % r.stdout)

    # Both pages render without a groff warning.
    for page in ("usr/share/man/man1/profctl.1", "usr/share/man/man8/profd.8"):
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z",
                            os.path.join(dest, page)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, universal_newlines=True,
                           timeout=60)
        check(r.returncode == 0 and not r.stderr, "%s: %s" % (page, r.stderr))
        r = run(["man", "-l", os.path.join(dest, page)],
                env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
        check(r.returncode == 0 and "SYNOPSIS" in r.stdout, r.stdout[:300])

    # sysusers.d and tmpfiles.d as systemd reads them, on the DESTDIR.
    if os.geteuid() == 0:
        os.makedirs(os.path.join(dest, "etc"))
        r = run(["systemd-sysusers", "--root=" + dest])
        check(r.returncode == 0, "systemd-sysusers: %s" % r.stdout)
        with open(os.path.join(dest, "etc/group")) as f:
            check(re.search(r"^profd:", f.read(), re.M), "no group profd")
        r = run(["systemd-tmpfiles", "--root=" + dest, "--create"])
        check(r.returncode == 0, "systemd-tmpfiles: %s" % r.stdout)
        st = os.stat(os.path.join(dest, "var/lib/profd"))
        check(st.st_mode & 0o777 == 0o700 and st.st_uid != 0,
              "/var/lib/profd mode %o uid %d" % (st.st_mode, st.st_uid))
        for made in ("etc", "run", "var"):
            subprocess.run(["rm", "-rf", os.path.join(dest, made)])

    make(ctx, "uninstall", "PREFIX=/usr", "DESTDIR=" + dest)
    left = files_under(dest)
    check(not left, "left after uninstall: %s" % sorted(left))


def complete(words):
    """What the completion offers for the last word of words."""
    script = ('source %s; COMP_WORDS=(%s); COMP_CWORD=%d; _profctl; '
              'printf "%%s\\n" "${COMPREPLY[@]}"'
              % (os.path.join(ROOT, "completion", "profctl.bash"),
                 " ".join("'%s'" % w for w in words), len(words) - 1))
    r = run(["bash", "--norc", "-c", script])
    check(r.returncode == 0, "completion: %s" % r.stdout)
    return set(r.stdout.split())


@once
def test_completion_offers_every_command_and_flag(ctx):
    help_text = run([os.path.join(BIN, "profctl"), "--help"]).stdout
    cmds = set(re.findall(r"^  ([a-z]+) ", help_text, re.M))
    check(cmds == set(COMMANDS), "profctl --help lists %s" % sorted(cmds))
    check(complete(["profctl", ""]) >= cmds, "commands not offered")
    check(complete(["profctl", "st"]) == {"status", "start", "stop"},
          "prefix st")
    for cmd in COMMANDS:
        text = run([os.path.join(BIN, "profctl"), cmd, "--help"]).stdout
        flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*[a-z])", text))
        flags.discard("--base")    # "the --base-* options"
        offered = complete(["profctl", cmd, "-"])
        check(flags <= offered, "profctl %s: not completed: %s"
              % (cmd, sorted(flags - offered)))
    check(complete(["profctl", "show", "--format", ""]) >=
          {"table", "json", "folded", "speedscope", "pprof", "svg"}, "formats")
    check(complete(["profctl", "start", "--mode", ""]) == {"wall", "cpu", "gil"},
          "modes")


def interpreters():
    """The oldest and the newest interpreter of tests/pythons.sh."""
    r = run(["sh", os.path.join(ROOT, "tests", "pythons.sh")])
    seen = {}
    for line in r.stdout.splitlines():
        label, py = line.split()
        seen.setdefault(label.split("python")[-1], py)
    vs = sorted(seen, key=lambda v: tuple(int(x) for x in v.split(".")))
    return [seen[v] for v in sorted({vs[0], vs[-1]}, key=vs.index)]


def in_tree(py):
    """How to run a venv's python made by py: in tests/pytree.sh's tree when
    py is one of its interpreters (the venv links to the tree's python)."""
    if "/build/pytree/bin/" in py:
        return ["sh", os.path.join(ROOT, "tests", "pytree.sh"), "exec"]
    return []


def profile_from(ctx, vpy, what, pre=()):
    """A short run of the venv's agent against ctx's profd: it must sample."""
    env = {"PATH": os.environ["PATH"], "PROFD_RUNTIME_DIR": ctx.rt,
           "PYTHONUNBUFFERED": "1"}
    pre = list(pre)
    r = run(pre + [vpy, "-c",
                   "import profagent, sys; print(profagent.__file__)"],
            env=env, cwd=ctx.tmp)
    venv = os.path.dirname(os.path.dirname(vpy))
    check(r.returncode == 0 and r.stdout.startswith(venv),
          "%s: profagent from %r" % (what, r.stdout))
    p = ctx.spawn(pre + [vpy, "-m", "profagent", "run", "--service", what, "--",
                   vpy, os.path.join(WORKLOADS, "workload.py"), "--seconds",
                   "30"], env=env, cwd=ctx.tmp)

    def sampled():
        for a in ctx.ctl_json("status")["agents"]:
            if a["service"] == what and a["samples"] > 20:
                return True
        return False
    wait_until(sampled, 60, "samples from the agent of " + what, step=0.2)
    p.kill()
    p.wait(10)


@once
def test_pip_and_wheel_install_in_fresh_venvs(ctx):
    if ctx.sanitize:
        print("  (skipped under SANITIZE=1: builds an uninstrumented agent)")
        return
    pys = interpreters()
    ctx.start_daemon()
    ctx.ctl("start", "--rate", "200")
    wheels = os.path.join(ctx.tmp, "wheels")
    r = run(["make", "--no-print-directory", "-C", ROOT, "wheels",
             "WHEELDIR=" + wheels],
            env=dict(os.environ, PROFD_PYTHONS=" ".join(pys)))
    check(r.returncode == 0, "make wheels: %s" % r.stdout[-2000:])
    built = sorted(os.listdir(wheels))
    check(len(built) == len(pys) and all(w.endswith(".whl") for w in built),
          "make wheels made %s" % built)
    for py in pys:
        v = run([py, "-c", "import sys; print('%d%d' % sys.version_info[:2])"]
                ).stdout.strip()
        venv = os.path.join(ctx.tmp, "venv" + v)
        r = run([py, "-m", "venv", venv])
        check(r.returncode == 0, "venv: %s" % r.stdout)
        vpy = os.path.join(venv, "bin", "python")
        pre = in_tree(py)
        pip = pre + [vpy, "-m", "pip", "--disable-pip-version-check",
                     "--no-cache-dir"]
        r = run(pip + ["install", "--no-build-isolation", "--no-index",
                       os.path.join(ROOT, "agent")], cwd=ctx.tmp)
        check(r.returncode == 0, "pip install ./agent (%s): %s"
              % (py, r.stdout[-2000:]))
        profile_from(ctx, vpy, "pip" + v, pre)
        r = run(pip + ["uninstall", "-y", "profagent"])
        check(r.returncode == 0, "pip uninstall: %s" % r.stdout)
        whl = [w for w in built if "-cp%s-" % v in w]
        check(len(whl) == 1, "no cp%s wheel in %s" % (v, built))
        r = run(pip + ["install", "--no-index", os.path.join(wheels, whl[0])])
        check(r.returncode == 0, "pip install %s: %s" % (whl[0], r.stdout))
        profile_from(ctx, vpy, "wheel" + v, pre)
