"""pytag.py -- prints the name of the agent's build directory for the
Python running it: python3.X-HASH, HASH from the interpreter's real path,
include directory and full version, so two interpreters of one version
(a pyenv build and Debian's) never share an agent built against the other's
headers.  profagent/_boot/sitecustomize.py computes the same name."""
import hashlib
import os
import sys
import sysconfig

key = "\0".join((os.path.realpath(sys.executable),
                 sysconfig.get_paths()["include"], sys.version))
print("python%d.%d-%s" % (sys.version_info[0], sys.version_info[1],
                          hashlib.sha1(key.encode()).hexdigest()[:8]))
