"""A private single-node SLURM cluster for the tests: slurmctld + slurmd on this machine.

Everything lives under one temp directory (munge key and socket, ``slurm.conf``, state, spool,
logs); the daemons are started by this module and stopped by PID, so nothing of the machine's
own SLURM or munge setup is touched. Clients (``sbatch``, ``squeue``, ``scontrol``) find the
cluster through ``SLURM_CONF``. Debian's ``slurm-wlm`` and ``munge`` are installed when missing
(CI runs as root and reaches Debian's archive).

The generated ``slurm.conf`` is the working example docs/sweeps.md shows. There is no
accounting database (``sacct`` answers "accounting storage is disabled"): submitit then learns
that a job is over from its result file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.debian import CannotInstall, ensure_debian_packages

PACKAGES = ["slurm-wlm", "munge"]
DAEMONS = ["munged", "slurmctld", "slurmd"]


class CannotStart(Exception):
    """The cluster truly cannot start here (not root, no apt): the tests say why and skip."""


def slurm_conf(root: Path, host: str, cpus: int, memory_mb: int, port: int) -> str:
    """The cluster's slurm.conf: one node (this machine, sized from its cores and memory),
    one default partition, no cgroups (a container has none to give), requeue allowed. A
    requeued job waits out its credential's lifetime before it starts again (cred_expire:
    120 s by default); 20 s is plenty on one machine, and the requeue test waits that less."""
    return f"""\
ClusterName=cnnlab-test
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
SlurmctldPort={port}
SlurmdPort={port + 1}
AuthType=auth/munge
AuthInfo=socket={root}/munge/munge.socket,cred_expire=20
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobRequeue=1
ReturnToService=2
KillWait=5
InactiveLimit=0
MinJobAge=300
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
NodeName={host} CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def free_port_pair() -> int:
    """A port p with p and p + 1 free (slurmctld and slurmd)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65000 and _port_free(port + 1):
            return port
    raise CannotStart("no two free neighbouring TCP ports")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ensure_packages() -> None:
    """Install slurm-wlm and munge from Debian when their daemons are missing."""
    try:
        ensure_debian_packages(PACKAGES, DAEMONS)
    except CannotInstall as e:
        raise CannotStart(str(e)) from None


@dataclass
class SlurmCluster:
    """A running cluster; ``env`` is what a client process needs to talk to it."""

    root: Path
    host: str
    cpus: int
    env: dict[str, str] = field(default_factory=dict)
    pids: list[int] = field(default_factory=list)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A SLURM client command against this cluster."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check)

    def jobs(self) -> list[str]:
        """``squeue`` lines ``<job id> <state>`` of the jobs still queued or running (none if
        the controller does not answer)."""
        done = self.run("squeue", "-h", "-o", "%i %T", check=False)
        return done.stdout.split("\n")[:-1] if done.returncode == 0 else []

    def log(self) -> str:
        """Both daemons' logs, for a failing test's message."""
        return "\n".join(
            (self.root / "log" / name).read_text(errors="replace")[-4000:]
            for name in ("slurmctld.log", "slurmd.log")
            if (self.root / "log" / name).is_file()
        )

    def stop(self) -> None:
        """Cancel what still runs (a failed test's jobs), then stop the daemons."""
        self.run("scancel", "--full", "--quiet", *(line.split()[0] for line in self.jobs()),
                 check=False)  # fmt: skip
        deadline = time.monotonic() + 30
        while self.jobs() and time.monotonic() < deadline:
            time.sleep(0.5)
        for pid in reversed(self.pids):
            _stop(pid)
        self.pids.clear()


def start_cluster(root: Path) -> SlurmCluster:
    """Write the config and start munged, slurmctld and slurmd; wait until the node is idle."""
    if os.geteuid() != 0:
        raise CannotStart("slurmctld/slurmd run as root in this single-node cluster")
    ensure_packages()
    for sub in ("munge", "state", "spool", "log"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    host = socket.gethostname().split(".")[0]
    cpus = os.cpu_count() or 1
    memory_mb = int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20 * 0.9)
    (root / "slurm.conf").write_text(slurm_conf(root, host, cpus, memory_mb, free_port_pair()))
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    cluster = SlurmCluster(root, host, cpus, env=env)
    try:
        cluster.pids.append(_start_munged(root / "munge"))
        for daemon in ("slurmctld", "slurmd"):
            cluster.pids.append(_start_daemon(root, daemon, cluster.env))
        _wait_for_idle_node(cluster)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start_munged(munge: Path) -> int:
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    subprocess.run(
        ["munged", "--force", f"--key-file={key}", f"--socket={munge}/munge.socket",
         f"--pid-file={munge}/munged.pid", f"--log-file={munge}/munged.log",
         f"--seed-file={munge}/munged.seed"],
        check=True, capture_output=True,
    )  # fmt: skip
    return _read_pid(munge / "munged.pid")


def _start_daemon(root: Path, daemon: str, env: dict[str, str]) -> int:
    done = subprocess.run([daemon, "-f", str(root / "slurm.conf")], env=env, capture_output=True)
    if done.returncode != 0:
        raise CannotStart(f"{daemon} did not start: {done.stderr.decode(errors='replace')}")
    return _read_pid(root / f"{daemon}.pid")


def _read_pid(path: Path, timeout_s: float = 10) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.is_file() and path.read_text().strip():
            return int(path.read_text())
        time.sleep(0.1)
    raise CannotStart(f"{path.name} was not written")


def _wait_for_idle_node(cluster: SlurmCluster, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done = cluster.run("sinfo", "-h", "-o", "%T", check=False)
        if done.returncode == 0 and done.stdout.strip() == "idle":
            return
        time.sleep(0.5)
    raise CannotStart(f"the node did not come up idle:\n{cluster.log()}")


def _stop(pid: int, timeout_s: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
