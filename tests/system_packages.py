"""Install the Debian packages the tests need and this machine lacks (part of the test
command, before pytest: ``.venv/bin/python tests/system_packages.py``).

The cluster launcher test drives ``ray up`` over SSH on this machine: it needs sshd, the ssh
client and rsync. Each package is installed with apt-get (through ``sudo -n`` when not root)
only when one of its tools is missing, so a second run installs nothing. Prints one line per
package installed, or "all present". Where it cannot install (no apt-get, no sudo without a
password, apt-get failing) it warns on stderr and exits 0: the tests that need a missing tool
then fail, each naming the tool and this script.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

# Debian package -> the tools of it the tests run (a path, or a command looked up on PATH).
PACKAGES = {
    "openssh-server": ("/usr/sbin/sshd",),
    "openssh-client": ("ssh", "ssh-keygen"),
    "rsync": ("rsync",),
}
SCRIPT = "tests/system_packages.py"


def _present(tool: str) -> bool:
    return os.access(tool, os.X_OK) if os.sep in tool else shutil.which(tool) is not None


def missing_tools() -> dict[str, str]:
    """Tool -> its package, for every tool of PACKAGES this machine lacks."""
    return {t: pkg for pkg, tools in PACKAGES.items() for t in tools if not _present(t)}


def require_tools(*tools: str) -> str | None:
    """None when every tool is here, else one line naming what is missing and the fix."""
    known = {t for ts in PACKAGES.values() for t in ts}
    assert set(tools) <= known, f"not in PACKAGES: {sorted(set(tools) - known)}"
    missing = {t: p for t, p in missing_tools().items() if t in tools}
    if not missing:
        return None
    named = ", ".join(f"{t} (Debian package {p})" for t, p in missing.items())
    return f"missing {named}: run `.venv/bin/python {SCRIPT}` (the test command does)"


def _warn(message: str) -> int:
    print(f"warning: {message}; the tests that need them will fail", file=sys.stderr)
    return 0


def main() -> int:
    wanted = sorted(set(missing_tools().values()))
    if not wanted:
        print("system packages: all present")
        return 0
    apt = shutil.which("apt-get")
    if apt is None:
        return _warn(f"cannot install {' '.join(wanted)}: no apt-get on this machine")
    sudo: list[str] = []
    if os.geteuid() != 0:
        sudo_path = shutil.which("sudo")
        if sudo_path is None or subprocess.run([sudo_path, "-n", "true"],
                                               capture_output=True).returncode != 0:  # fmt: skip
            return _warn(f"cannot install {' '.join(wanted)}: not root and no sudo without a "
                         "password")  # fmt: skip
        sudo = [sudo_path, "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, apt, "install", "-y", "-qq", "--no-install-recommends", *wanted]
    done = subprocess.run(install, capture_output=True, text=True, env=env)
    if done.returncode != 0:  # stale package lists: refresh them once and retry
        subprocess.run([*sudo, apt, "update", "-qq"], capture_output=True, env=env)
        done = subprocess.run(install, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return _warn(f"apt-get could not install {' '.join(wanted)} ({tail[0]})")
    still = sorted(set(missing_tools().values()))
    for pkg in wanted:
        if pkg not in still:
            print(f"system packages: installed {pkg}")
    if still:
        return _warn(f"{' '.join(still)} installed but its tools are still missing")
    return 0


if __name__ == "__main__":
    sys.exit(main())
