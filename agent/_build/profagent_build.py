"""profagent_build -- the agent's in-tree PEP 517 build backend.

pip (any version that builds local directories in place, 21.3 or newer)
calls build_wheel; it runs `make -f agent/agent.mk` from the profd source
tree -- the very flags of `make agent` -- for the interpreter running it,
then writes the wheel (a zip with the package, METADATA, WHEEL and RECORD).
No setuptools, no wheel package, no network.  `make wheels` calls
build_wheel directly, once per interpreter.
"""
import base64
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

AGENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(AGENT)


def _project():
    """name, version, description, requires-python from pyproject.toml's
    [project] table (a few plain `key = "value"` lines: no tomllib on 3.9)."""
    with open(os.path.join(AGENT, "pyproject.toml")) as f:
        text = f.read()
    table = text.split("[project]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"', table, re.M))


def _tags():
    impl = "cp%d%d" % sys.version_info[:2]
    plat = re.sub(r"[^\w]", "_", sysconfig.get_platform())
    return impl, impl + getattr(sys, "abiflags", ""), plat


def _wheel_name(p):
    return "%s-%s-%s-%s-%s.whl" % ((p["name"], p["version"]) + _tags())


def _dist_info(p):
    return "%s-%s.dist-info" % (p["name"], p["version"])


def _metadata(p):
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: %s\n"
            "Requires-Python: %s\n" % (p["name"], p["version"],
                                       p["description"], p["requires-python"]))


def _wheel_file():
    return ("Wheel-Version: 1.0\nGenerator: profagent_build\n"
            "Root-Is-Purelib: false\nTag: %s-%s-%s\n" % _tags())


def _compile(outdir):
    """Builds profagent/ (Python files and the extension) into outdir."""
    mk = os.path.join(AGENT, "agent.mk")
    if not (os.path.exists(mk) and
            os.path.exists(os.path.join(ROOT, "proto", "proto.h"))):
        raise RuntimeError(
            "profagent_build: %s is not inside the profd source tree "
            "(needs ../proto and agent.mk); install from a clone with "
            "`pip install --no-build-isolation ./agent` and pip >= 21.3, "
            "which builds in place" % AGENT)
    cmd = ["make", "--no-print-directory", "-f", "agent/agent.mk",
           "PYTHON=" + sys.executable, "AGENTDIR=" + outdir]
    # make's output to stderr: pip reads the hook's stdout for nothing,
    # but keeps both for its log.
    subprocess.check_call(cmd, cwd=ROOT, stdout=sys.stderr)
    return os.path.join(outdir, "profagent")


def _record_line(arc, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest())
    return "%s,sha256=%s,%d" % (arc, digest.rstrip(b"=").decode(), len(data))


def get_requires_for_build_wheel(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    d = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w") as f:
        f.write(_metadata(p))
    with open(os.path.join(d, "WHEEL"), "w") as f:
        f.write(_wheel_file())
    return _dist_info(p)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    p = _project()
    name = _wheel_name(p)
    tmp = tempfile.mkdtemp(prefix="profagent-build-")
    try:
        pkg = _compile(tmp)
        files = []
        for dirpath, dirnames, filenames in os.walk(pkg):
            dirnames.sort()
            for fn in sorted(filenames):
                if fn.endswith(".pyc"):
                    continue
                path = os.path.join(dirpath, fn)
                arc = os.path.relpath(path, tmp).replace(os.sep, "/")
                with open(path, "rb") as f:
                    files.append((arc, f.read()))
        di = _dist_info(p)
        files.append((di + "/METADATA", _metadata(p).encode()))
        files.append((di + "/WHEEL", _wheel_file().encode()))
        files.append((di + "/top_level.txt", b"profagent\n"))
        record = "".join(_record_line(a, d) + "\n" for a, d in files)
        record += di + "/RECORD,,\n"
        files.append((di + "/RECORD", record.encode()))
        os.makedirs(wheel_directory, exist_ok=True)
        out = os.path.join(wheel_directory, name)
        with zipfile.ZipFile(out + ".part", "w", zipfile.ZIP_DEFLATED) as z:
            for arc, data in files:
                info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if arc.endswith(".so") else
                                      0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, data)
        os.replace(out + ".part", out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return name


if __name__ == "__main__":
    # python agent/_build/profagent_build.py DIR: a wheel into DIR.
    print(os.path.join(sys.argv[1], build_wheel(sys.argv[1])))
