"""A throwaway OpenSSH server on 127.0.0.1, for testing and benchmarking the ``ssh`` runner.

Everything lives in one folder: host key, client key pair, authorized_keys, known_hosts and
sshd_config (``UsePAM no``, ``StrictModes no``, pid file and keys in the folder), so it needs no
system configuration and runs as the current user. The "board" is this machine.

Example:
    >>> with ThrowawaySshd(Path(tempfile.mkdtemp())) as server:
    ...     profile = server.profile(load_profile("host"), python=sys.executable)
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from edgeauto.devices.profile import DeviceProfile

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keygen(path: Path) -> Path:
    """(Re)generate an ed25519 key pair without passphrase at ``path`` / ``path.pub``."""
    path.unlink(missing_ok=True)
    path.with_suffix(".pub").unlink(missing_ok=True)
    argv = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)]
    subprocess.run(argv, check=True, capture_output=True)
    return path


def sshd_unavailable() -> str | None:
    """Why a throwaway sshd cannot run here, or None when it can."""
    if not SSHD.is_file():
        return f"{SSHD} is absent (Debian: apt-get install openssh-server)"
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the ssh client or ssh-keygen is absent (Debian: apt-get install openssh-client)"
    if os.geteuid() == 0 and not Path("/run/sshd").is_dir():
        # sshd started as root needs its privilege-separation directory (the service makes it)
        try:
            Path("/run/sshd").mkdir(mode=0o755, parents=True)
        except OSError as exc:
            return f"sshd as root needs /run/sshd, which cannot be created: {exc}"
    return None


class ThrowawaySshd:
    """sshd in the foreground (``-D -e``) on a free port of 127.0.0.1, configured in ``root``."""

    def __init__(self, root: Path, client_key: Path | None = None) -> None:
        self.root, self.port = root, free_port()
        root.mkdir(parents=True, exist_ok=True)
        self.client_key = client_key or keygen(root / "client_key")
        self.host_key = keygen(root / "host_key")
        shutil.copy(self.client_key.with_suffix(".pub"), root / "authorized_keys")
        self.known_hosts = root / "known_hosts"
        self.record_host_key()
        (root / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {self.host_key}\n"
            f"PidFile {root / 'sshd.pid'}\nAuthorizedKeysFile {root / 'authorized_keys'}\n"
            "UsePAM no\nStrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def record_host_key(self) -> None:
        """Write known_hosts with the current host key (what a first, checked ssh does)."""
        key = " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {key}\n")

    def start(self, timeout_s: float = 10) -> None:
        """Start sshd and wait until it accepts connections."""
        with open(self.root / "sshd.log", "ab") as log:  # sshd keeps its own copy of the fd
            argv = [str(SSHD), "-D", "-e", "-f", str(self.root / "sshd_config")]
            self.proc = subprocess.Popen(argv, stderr=log)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = (self.root / "sshd.log").read_text()[-500:]
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {tail}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within {timeout_s} s")

    def stop(self) -> None:
        """Stop sshd (a cut connection, from the client's side)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def profile(self, base: DeviceProfile, **connection: Any) -> DeviceProfile:
        """``base`` reached over SSH through this server (``connection`` adds or overrides)."""
        fields = {
            "kind": "ssh", "host": "127.0.0.1", "port": self.port, "user": getpass.getuser(),
            "key": str(self.client_key), "known_hosts": str(self.known_hosts), **connection,
        }  # fmt: skip
        data = base.model_dump(mode="json", exclude={"source"})
        return DeviceProfile.model_validate({**data, "connection": fields})

    def __enter__(self) -> ThrowawaySshd:
        self.start()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
