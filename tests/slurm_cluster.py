"""A real one-node SLURM cluster for the tests: Debian's slurm-wlm and munge, run as this user from a
temporary folder, with partitions `cpu` and `gpu` and two fake GPUs as generic resources.

`start_cluster(root)` writes the configuration, starts munged, slurmctld and slurmd in the foreground
as child processes, and waits until the node is idle; `SlurmCluster.stop()` cancels what is left and
stops them. Clients (sbatch, squeue, the Snakemake plugin) find the cluster through `SLURM_CONF` in
`cluster.env`; the `srun` inside each job does not (snakemake-executor-plugin-slurm-jobstep drops every
SLURM_ variable but the job's identity), so the configuration is also installed at the standard path,
/etc/slurm, for the cluster's lifetime; a configuration found there is put back afterwards. Finished jobs stay in the controller (`MinJobAge`), so
`SlurmCluster.jobs()` reads every job's partition, GPU request and state from the scheduler after a run.
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scancel", "scontrol")
CPUS = 2
MEMORY_MB = 8000
READY_TIMEOUT_S = 120

SLURM_CONF = """\
ClusterName=cfttest
SlurmctldHost={host}
SlurmUser={user}
SlurmdUser={user}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/run/munge.socket
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/run/slurmctld.pid
SlurmdPidFile={root}/run/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
# Debian's 22.05 as one unprivileged node: no cgroups, processes tracked by parent id.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
# The node as declared below, whatever the machine has: jobs are scheduled, not confined.
SlurmdParameters=config_overrides
ReturnToService=2
# First in, first out, each job started as soon as the resources it waits for are freed.
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
# Finished jobs stay in the controller for an hour: `scontrol show job` is the scheduler's record of
# each job's partition, GPU request and state after the run (no accounting database here).
MinJobAge=3600
MailProg=/bin/true
MpiDefault=none
NodeName={host} CPUs={cpus} RealMemory={memory} Gres=gpu:2 State=UNKNOWN
PartitionName=cpu Nodes={host} Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes={host} MaxTime=INFINITE State=UP
"""

# A GPU count without device files registers as 0 GPUs and the node goes INVAL; plain files will do.
GRES_CONF = """\
NodeName={host} Name=gpu File={root}/dev/gpu0
NodeName={host} Name=gpu File={root}/dev/gpu1
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def require_slurm() -> None:
    """Skip where SLURM is not installed, except in CI (`CI=true`), where .ci/run installs it and a
    missing scheduler is a failure rather than a silent skip (`unavailable`)."""
    missing = [tool for tool in DAEMONS + CLIENTS if shutil.which(tool) is None
               and not Path("/usr/sbin", tool).exists()]
    if not missing:
        return
    unavailable(f"SLURM is not installed (missing {', '.join(missing)}): "
                "`apt-get install slurm-wlm munge`, as .ci/run does")


def unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def daemon(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


SYSTEM_CONF = Path("/etc/slurm")
CONF_FILES = ("slurm.conf", "gres.conf")


@dataclass
class SlurmCluster:
    root: Path
    env: dict
    processes: list = field(default_factory=list)
    installed: list = field(default_factory=list)

    def install_system_conf(self) -> None:
        """Copy slurm.conf and gres.conf to /etc/slurm, keeping any found there in root/system-conf."""
        if not os.access(SYSTEM_CONF, os.W_OK):
            unavailable(f"the jobs' srun reads {SYSTEM_CONF}/slurm.conf, which this user cannot write "
                        "(run the tests as root, as CI does)")
        for name in CONF_FILES:
            target = SYSTEM_CONF / name
            if target.exists():
                (self.root / "system-conf").mkdir(exist_ok=True)
                shutil.copy2(target, self.root / "system-conf" / name)
            shutil.copy(self.root / name, target)
            self.installed.append(name)

    def restore_system_conf(self) -> None:
        for name in self.installed:
            kept = self.root / "system-conf" / name
            if kept.exists():
                shutil.copy2(kept, SYSTEM_CONF / name)
            else:
                (SYSTEM_CONF / name).unlink(missing_ok=True)
        self.installed.clear()

    def run(self, *command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def log(self, name: str) -> str:
        path = self.root / "log" / name
        return path.read_text() if path.exists() else ""

    def jobs(self) -> dict[str, dict[str, str]]:
        """Every job the controller knows, by job id: JobState, Partition, TresPerJob, Comment, ..."""
        out = self.run("scontrol", "show", "job", "--oneliner").stdout
        jobs = {}
        for line in out.splitlines():
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if "JobId" in fields:
                jobs[fields["JobId"]] = fields
        return jobs

    def stop(self) -> None:
        self.run("scancel", "--user", getpass.getuser(), check=False)
        for process in reversed(self.processes):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self.restore_system_conf()


def start_cluster(root: Path) -> SlurmCluster:
    require_slurm()
    for sub in ("run", "state", "spool", "log", "dev"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for gpu in ("gpu0", "gpu1"):
        (root / "dev" / gpu).touch()
    key = root / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    host = socket.gethostname().split(".")[0]
    settings = dict(host=host, user=getpass.getuser(), root=root, cpus=CPUS, memory=MEMORY_MB,
                    ctld_port=free_port(), slurmd_port=free_port())
    (root / "slurm.conf").write_text(SLURM_CONF.format(**settings))
    (root / "gres.conf").write_text(GRES_CONF.format(**settings))
    env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}
    # The outer environment's allocation, if any, is not this cluster's.
    for name in [name for name in env if name.startswith(("SLURM_", "SBATCH_", "SRUN_")) and name != "SLURM_CONF"]:
        del env[name]
    cluster = SlurmCluster(root, env)

    def launch(name, *args):
        out = open(root / "log" / f"{name}.out", "w")
        cluster.processes.append(subprocess.Popen([daemon(name), *args], env=env, stdout=out,
                                                  stderr=subprocess.STDOUT, start_new_session=True))

    try:
        cluster.install_system_conf()
        # --force: munged refuses a socket folder under a world-writable /tmp otherwise.
        launch("munged", "--foreground", "--force", f"--socket={root}/run/munge.socket",
               f"--key-file={key}", f"--log-file={root}/log/munged.log", f"--pid-file={root}/run/munged.pid",
               f"--seed-file={root}/state/munged.seed")
        launch("slurmctld", "-D", "-i", "-f", str(root / "slurm.conf"))
        launch("slurmd", "-D", "-f", str(root / "slurm.conf"))
        deadline = time.monotonic() + READY_TIMEOUT_S
        state = ""
        while time.monotonic() < deadline:
            exited = [p.args[0] for p in cluster.processes if p.poll() is not None]
            assert not exited, f"{exited} exited: " + "".join(
                cluster.log(f"{Path(name).name}.out")[-2000:] + cluster.log(f"{Path(name).name}.log")[-2000:]
                for name in exited)
            state = cluster.run("sinfo", "--noheader", "--Node", "--format=%T", check=False).stdout.strip()
            if state.startswith("idle"):
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the SLURM node is not idle after {READY_TIMEOUT_S} s (state {state!r}):\n"
                                 + cluster.log("slurmctld.log")[-2000:] + cluster.log("slurmd.log")[-2000:])
    except BaseException:
        cluster.stop()
        raise
    return cluster
