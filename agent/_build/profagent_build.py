"""profagent_build -- the agent's in-tree PEP 517 build backend.

pip (any version that builds local directories in place, 21.3 or newer)
calls build_wheel; it runs `make -f agent/agent.mk` from the profd source
tree -- the very flags of `make agent` -- for the interpreter running it,
into build/pip/TAG-HASH (kept: make recompiles only what changed), then
writes the wheel (a zip with the package, METADATA, WHEEL and RECORD).
No setuptools, no wheel package, no network.  `make wheels` calls
build_wheel directly, once per interpreter.
"""
import base64
import hashlib
import os
import re
import subprocess
import sys
import sysconfig
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


def _build_dir():
    """build/pip/TAG-HASH in the source tree, one per interpreter (its
    headers' path): make rebuilds only what changed, so `make wheels` and
    then `pip install ./agent` (a venv of that interpreter) compile once."""
    inc = sysconfig.get_paths()["include"]
    h = hashlib.sha256(inc.encode()).hexdigest()[:8]
    return os.path.join(ROOT, "build", "pip", "%s-%s" % (_tags()[1], h))


def _compile(outdir):
    """Builds outdir/profagent/ (Python files and the extension)."""
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
    return outdir


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
    build = _build_dir()
    _compile(build)
    # The package's .py files as the source tree has them now (a file
    # removed there may linger in the build dir), and this interpreter's
    # extension.
    arcs = []
    src = os.path.join(AGENT, "profagent")
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for fn in sorted(filenames):
            if fn.endswith(".py"):
                arcs.append(os.path.relpath(os.path.join(dirpath, fn), AGENT))
    arcs.append(os.path.join("profagent", "_profagent" +
                             sysconfig.get_config_var("EXT_SUFFIX")))
    files = []
    for arc in arcs:
        with open(os.path.join(build, arc), "rb") as f:
            files.append((arc.replace(os.sep, "/"), f.read()))
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
    return name


if __name__ == "__main__":
    # python agent/_build/profagent_build.py DIR: a wheel into DIR.
    print(os.path.join(sys.argv[1], build_wheel(sys.argv[1])))
