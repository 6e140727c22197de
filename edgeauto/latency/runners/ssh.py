"""The ``ssh`` runner: any Linux board reachable with the system ``ssh`` client.

Each call is one SSH connection: a tar stream on stdin carries the timing script
(``remote_timer.py``) and the models into a fresh directory under the profile's ``workdir``;
the board's Python runs the script with the profile's threads, and the directory is removed.
One connection per batch needs no SFTP subsystem on the board and no state between calls, so
a cut connection loses at most the batch in flight.

Security: host-key checking is always on (``StrictHostKeyChecking=yes``, the profile's
``known_hosts`` or ``~/.ssh/known_hosts``), ``BatchMode=yes`` (never a password prompt), and
every remote argument is quoted with :func:`shlex.quote`, because ssh joins the remote command
into one string that the board's shell parses. Profile fields that ssh could read as options
(a leading ``-``) are rejected when the profile is validated.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
import uuid
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from edgeauto.devices.profile import DeviceProfile
from edgeauto.errors import ConfigError, RunnerError
from edgeauto.latency.runners.base import (
    RUNNERS,
    DeviceInfo,
    Runner,
    check_counts,
    last_line,
    runtime_of,
)
from edgeauto.timing import LatencyStat

CONNECT_TIMEOUT_S = 10
#: ssh gives up on a silent connection after ALIVE_INTERVAL_S x ALIVE_COUNT seconds.
ALIVE_INTERVAL_S, ALIVE_COUNT = 5, 3
#: Wall-clock limit of one remote call (a batch of blocks on a slow board).
CALL_TIMEOUT_S = 3600
SCRIPT = "edgeauto_timer.py"
# Exit codes of the remote shell command (see _remote_command) and of remote_timer.py.
RC_MKDIR, RC_TAR, RC_NO_PYTHON, RC_MISSING, RC_BAD_MODEL, RC_SSH = 90, 91, 127, 3, 4, 255
#: The runtime packages named in messages, per runtime.
INSTALL_HINT = {
    "litert": "pip install ai-edge-litert (or tflite-runtime)",
    "onnxruntime": "pip install onnxruntime",
}


def timer_script() -> bytes:
    """The stand-alone timing script shipped with the package."""
    return resources.files("edgeauto.latency.runners").joinpath("remote_timer.py").read_bytes()


@RUNNERS.register("ssh")
class SshRunner(Runner):
    """Times artifacts on a Linux board over SSH with the board's LiteRT or ONNX Runtime."""

    kind = "ssh"

    def __init__(self, profile: DeviceProfile) -> None:
        super().__init__(profile)
        self.conn = profile.connection
        self.target = self.conn.target()
        known = self.conn.known_hosts or "~/.ssh/known_hosts"
        self.known_hosts = Path(known).expanduser()
        self._info: DeviceInfo | None = None
        if self.conn.key and not Path(self.conn.key).expanduser().is_file():
            raise ConfigError(
                f"connection.key {self.conn.key!r} is not a file; fix --key or connection.key "
                "(the private key, not the .pub)"
            )
        if any(c.isspace() or c == '"' for c in str(self.known_hosts)):
            # ssh reads UserKnownHostsFile as a space-separated list of files
            raise ConfigError(
                f"connection.known_hosts must be a path without spaces or quotes, got "
                f"{str(self.known_hosts)!r}; move the file"
            )

    # -- the ssh command line ----------------------------------------------------------------
    def ssh_argv(self, remote_command: str) -> list[str]:
        """The ``ssh`` argument list that runs ``remote_command`` (already quoted) on the board."""
        c = self.conn
        argv = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        argv += ["-o", f"UserKnownHostsFile={self.known_hosts}"]
        argv += ["-o", f"ConnectTimeout={CONNECT_TIMEOUT_S}"]
        argv += ["-o", f"ServerAliveInterval={ALIVE_INTERVAL_S}"]
        argv += ["-o", f"ServerAliveCountMax={ALIVE_COUNT}", "-p", str(c.port)]
        if c.key:
            argv += ["-i", str(Path(c.key).expanduser()), "-o", "IdentitiesOnly=yes"]
        if c.user:
            argv += ["-l", c.user]
        return [*argv, "--", str(c.host), remote_command]

    def _remote_command(self, python_args: Sequence[str]) -> str:
        """``sh -c`` text: unpack stdin into a fresh dir, run ``python ARGS``, remove the dir."""
        d = f"{self.conn.workdir.rstrip('/')}/edgeauto-{uuid.uuid4().hex[:12]}"
        q = shlex.quote
        run = " ".join(q(a) for a in (self.conn.python, *python_args))
        body = (
            f"mkdir -p {q(d)} && cd {q(d)} || exit {RC_MKDIR}; tar -xf - || exit {RC_TAR}; "
            f"{run}; rc=$?; cd / && rm -rf {q(d)}; exit $rc"
        )
        # The login shell may not be POSIX (fish, csh): hand the body to sh as one argument.
        return f"sh -c {q(body)}"

    # -- calls -----------------------------------------------------------------------------
    def call(
        self, script_args: Sequence[str], files: dict[str, Path] | None = None
    ) -> dict[str, Any]:
        """Run the timing script with ``script_args`` beside ``files`` (name on the board ->
        local path); return its JSON answer."""
        payload = {SCRIPT: timer_script(), **_contents(files or {})}
        proc = self._exec([SCRIPT, *script_args], payload)
        stderr = proc.stderr.decode(errors="replace")
        answer = _json_line(proc.stdout.decode(errors="replace"))
        if proc.returncode != 0:
            raise RunnerError(self._explain(proc.returncode, stderr, answer))
        if answer is None:
            raise RunnerError(
                f"the timing script on {self.target} printed no JSON (stderr: "
                f"{last_line(stderr)!r}); check connection.python points at a working Python"
            )
        return answer

    def run_python(self, args: Sequence[str], files: dict[str, Path]) -> str:
        """``python ARGS`` on the board (``connection.python``) beside ``files``."""
        proc = self._exec(args, _contents(files))
        if proc.returncode != 0:
            stderr = proc.stderr.decode(errors="replace")
            raise RunnerError(self._explain(proc.returncode, stderr, None, task=args[0]))
        return proc.stdout.decode(errors="replace")

    def _exec(
        self, python_args: Sequence[str], files: dict[str, bytes]
    ) -> subprocess.CompletedProcess[bytes]:
        """One connection: ``files`` (name -> bytes) tarred over stdin into a fresh dir where
        ``python ARGS`` runs; the finished process."""
        argv = self.ssh_argv(self._remote_command(python_args))
        try:
            return subprocess.run(
                argv, input=_tar(files), capture_output=True, timeout=CALL_TIMEOUT_S
            )
        except FileNotFoundError:
            raise RunnerError(
                f"cannot reach {self.target}: no ssh client on this machine; install OpenSSH "
                "(Debian: apt-get install openssh-client)"
            ) from None
        except subprocess.TimeoutExpired:
            raise RunnerError(
                f"{self.target} did not answer within {CALL_TIMEOUT_S} s; check the board's "
                "load, or time fewer or smaller models per call"
            ) from None

    def describe(self) -> DeviceInfo:
        """Ask the board for its CPU and runtimes (once); a missing runtime fails here, early."""
        if self._info is None:
            self._info = self._describe()
        return self._info

    def _describe(self) -> DeviceInfo:
        info = self.call(["describe"])
        runtime = self.profile.runtime
        found = (info.get("runtimes") or {}).get(runtime)
        if not info.get("numpy") or not found:
            raise RunnerError(self._missing_runtime(runtime if info.get("numpy") else "numpy"))
        canonical = found["package"] in ("ai-edge-litert", "onnxruntime")
        version = found["version"] if canonical else f"{found['package']} {found['version']}"
        return DeviceInfo(str(info.get("cpu_model", "unknown")), version, info.get("python"))

    def measure_many(
        self, artifacts: Sequence[Path], threads: int, runs: int, warmup: int, rounds: int = 1
    ) -> list[LatencyStat]:
        check_counts(runs, warmup, rounds)
        if not artifacts:
            return []
        for a in artifacts:
            runtime_of(Path(a))  # unknown suffixes fail before anything is sent
        # Names on the board are ours (m0.tflite, ...): local names may clash or need quoting.
        staged = {f"m{i}{Path(a).suffix}": Path(a) for i, a in enumerate(artifacts)}
        args = ["time", "--threads", str(threads), "--runs", str(runs), "--warmup", str(warmup)]
        if self.cores:  # the script pins itself (os.sched_setaffinity), as taskset -c would
            args += ["--cores", ",".join(map(str, self.cores))]
        answer = self.call([*args, "--rounds", str(rounds), *staged], staged)
        return self._stats(answer, list(staged), runs)

    # -- errors ----------------------------------------------------------------------------
    def _missing_runtime(self, what: str) -> str:
        hint = INSTALL_HINT.get(what, "pip install numpy")
        return (
            f"{self.target} has no {what} for {self.conn.python}; install it on the board "
            f"({hint}) or set connection.python to an interpreter that has it"
        )

    def _explain(
        self, rc: int, stderr: str, answer: dict[str, Any] | None, task: str = "timing"
    ) -> str:
        """One line naming the board, what went wrong and the fix."""
        if rc == RC_SSH:
            return explain_ssh_failure(self.target, stderr, self.known_hosts, self.conn.port)
        if answer and answer.get("error") == "missing_runtime":
            return f"{self.target}: {answer['message']} on the board for {self.conn.python}"
        if answer and answer.get("error") == "bad_cores":
            return (
                f"{self.target}: {answer['message']}; fix cpu_affinity in the profile to cores "
                "the board has"
            )
        if answer and answer.get("error") == "bad_model":
            return f"{self.target} cannot run {answer['message']}; re-export the model"
        if rc == RC_NO_PYTHON:
            return (
                f"{self.target} has no {self.conn.python!r}; install Python 3 on the board or "
                "set connection.python to its interpreter"
            )
        if rc in (RC_MKDIR, RC_TAR):
            what = "create" if rc == RC_MKDIR else "unpack files into"
            return (
                f"{self.target} cannot {what} {self.conn.workdir} ({last_line(stderr)}); set "
                "connection.workdir to a writable directory (tar must be installed)"
            )
        return f"{task} on {self.target} failed (exit {rc}): {last_line(stderr)}"

    def _stats(self, answer: dict[str, Any], names: list[str], runs: int) -> list[LatencyStat]:
        """One stat per file; the samples arrive round after round, ``runs`` per round."""
        results = answer.get("results")
        if not isinstance(results, list) or [r.get("file") for r in results] != names:
            raise RunnerError(
                f"the timing script on {self.target} answered for other files than sent; "
                "check that nothing else writes into connection.workdir"
            )
        return [LatencyStat.from_rounds(_chunks(r["samples_ms"], runs)) for r in results]


# -- helpers ---------------------------------------------------------------------------------


def _contents(files: dict[str, Path]) -> dict[str, bytes]:
    """Name on the board -> the bytes of the local file."""
    return {name: Path(path).read_bytes() for name, path in files.items()}


def _tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of ``files`` (flat names), built in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _json_line(stdout: str) -> dict[str, Any] | None:
    """The last line of ``stdout`` parsed as a JSON object, or None."""
    lines = [ln for ln in stdout.splitlines() if ln.strip()]
    try:
        obj = json.loads(lines[-1]) if lines else None
    except json.JSONDecodeError:
        return None
    return obj if isinstance(obj, dict) else None


def explain_ssh_failure(target: str, stderr: str, known_hosts: Path, port: int) -> str:
    """One line for an ssh client failure (exit 255), from what ssh printed."""
    host = target.rsplit(":", 1)[0].split("@")[-1]
    entry = host if port == 22 else f"[{host}]:{port}"
    if "REMOTE HOST IDENTIFICATION HAS CHANGED" in stderr or "has changed and you have" in stderr:
        return (
            f"the host key of {target} has changed since it was recorded in {known_hosts} "
            f"(REMOTE HOST IDENTIFICATION HAS CHANGED): if the board was reinstalled, verify the "
            f"new key, remove the old one with ssh-keygen -R '{entry}' -f {known_hosts} and "
            f"connect once with ssh to record it; otherwise do not connect"
        )
    if "Host key verification failed" in stderr or "host key is known" in stderr:
        return (
            f"the host key of {target} is not in {known_hosts} (Host key verification failed); "
            f"connect once with ssh -p {port} {target.rsplit(':', 1)[0]} and check the "
            "fingerprint, or set connection.known_hosts / --known-hosts"
        )
    if "Permission denied" in stderr or "Too many authentication failures" in stderr:
        return (
            f"{target} refused the SSH login ({last_line(stderr)}); set connection.key / --key "
            "to a private key whose public key is in the board's ~/.ssh/authorized_keys "
            "(ssh-copy-id), and check connection.user"
        )
    return (
        f"cannot reach {target} over SSH ({last_line(stderr)}); check that the board is on "
        "and runs sshd, and that host and port are right (--host user@host:port)"
    )


def _chunks(samples: list[float], size: int) -> list[list[float]]:
    return [samples[i : i + size] for i in range(0, len(samples), size)]
