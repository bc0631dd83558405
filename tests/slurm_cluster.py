"""A one-node SLURM cluster on localhost for the integration tests (notes section 4).

State, spool, logs and pid files live under one temporary directory. The configuration
goes to the default place, /etc/slurm (job steps started by ``srun`` inside a job look
only there; the executor plugin does not pass SLURM_CONF on); files already there are
backed up and restored at the end. The node declares one fake GPU
(gres.conf ``File=/dev/null``) so GPU rules are scheduled and get CUDA_VISIBLE_DEVICES.
Partitions ``cpu`` and ``gpu`` both contain the node, matching the repository's profile.
Daemons are stopped by pid at the end. ``unavailable()`` says why the cluster cannot run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

BINARIES = ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "munged")


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "starting SLURM daemons needs root"
    missing = [b for b in BINARIES if shutil.which(b) is None and not Path(f"/usr/sbin/{b}").exists()]
    if missing:
        return f"SLURM is not installed (missing {', '.join(missing)}; Debian: apt-get install slurmctld slurmd slurm-client munge)"
    return None


def _sbin(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


class LocalSlurm:
    ETC = Path("/etc/slurm")

    def __init__(self, root: Path, min_job_age: int = 3600):
        self.root = root
        self.conf = self.ETC / "slurm.conf"
        self.env = dict(os.environ, SLURM_CONF=str(self.conf))
        self.min_job_age = min_job_age
        self.started_munge = False
        self.backups: dict[Path, Path | None] = {}

    def _install(self, name: str, text: str) -> None:
        dst = self.ETC / name
        self.ETC.mkdir(parents=True, exist_ok=True)
        if dst not in self.backups:
            if dst.exists():
                bak = self.root / f"{name}.orig"
                shutil.copy2(dst, bak)
                self.backups[dst] = bak
            else:
                self.backups[dst] = None
        dst.write_text(text)

    def _restore_etc(self) -> None:
        for dst, bak in self.backups.items():
            if bak is None:
                dst.unlink(missing_ok=True)
            else:
                shutil.copy2(bak, dst)
        self.backups.clear()

    def _node_line(self) -> str:
        out = subprocess.run([_sbin("slurmd"), "-C"], capture_output=True, text=True).stdout
        fields = dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
        cpus = fields.get("CPUs", "2")
        mem = max(1000, int(fields.get("RealMemory", "4000")) - 512)
        topo = " ".join(f"{k}={fields[k]}" for k in ("Boards", "SocketsPerBoard", "CoresPerSocket", "ThreadsPerCore") if k in fields)
        return f"NodeName=localhost CPUs={cpus} {topo} RealMemory={mem} Gres=gpu:2 State=UNKNOWN"

    def write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "log"):
            (r / d).mkdir(parents=True, exist_ok=True)
        self._install("slurm.conf", f"""ClusterName=recontest
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
GresTypes=gpu
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge={self.min_job_age}
SchedulerParameters=defer
{self._node_line()}
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost MaxTime=INFINITE State=UP
""")
        # two fake GPUs (device files that exist): GPU rules are scheduled, a 2-GPU training job too
        self._install("gres.conf", "NodeName=localhost Name=gpu File=/dev/null\nNodeName=localhost Name=gpu File=/dev/zero\n")

    def _munge(self) -> None:
        ok = subprocess.run("munge -n | unmunge", shell=True, capture_output=True, text=True)
        if "Success" in ok.stdout:
            return
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", _sbin("munged")], check=True)
        self.started_munge = True
        for _ in range(50):
            if "Success" in subprocess.run("munge -n | unmunge", shell=True, capture_output=True, text=True).stdout:
                return
            time.sleep(0.1)
        raise RuntimeError("munged did not start")

    def start(self) -> None:
        self.write_config()
        self._munge()
        subprocess.run([_sbin("slurmctld"), "-c", "-f", str(self.conf)], env=self.env, check=True)
        subprocess.run([_sbin("slurmd"), "-f", str(self.conf)], env=self.env, check=True)
        deadline = time.time() + 60
        while time.time() < deadline:
            p = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
            states = p.stdout.split()
            if states and all(s in ("idle", "mix", "alloc") for s in states):
                return
            if any(s.startswith(("down", "drain")) for s in states):
                subprocess.run(["scontrol", "update", "nodename=localhost", "state=resume"], env=self.env)
            time.sleep(0.5)
        raise RuntimeError(f"SLURM node did not become idle: {p.stdout} {p.stderr}; see {self.root}/log")

    def stop(self) -> None:
        for name in ("slurmd.pid", "slurmctld.pid"):
            pid = self.root / name
            if pid.exists():
                try:
                    os.kill(int(pid.read_text().strip()), signal.SIGTERM)
                except (ProcessLookupError, ValueError):
                    pass
        if self.started_munge and Path("/run/munge/munged.pid").exists():
            try:
                os.kill(int(Path("/run/munge/munged.pid").read_text().strip()), signal.SIGTERM)
            except (ProcessLookupError, ValueError):
                pass
        time.sleep(1)
        self._restore_etc()

    def jobs(self) -> list[dict]:
        """Every job the controller still remembers, as scontrol's key=value records."""
        p = subprocess.run(["scontrol", "show", "job", "-o"], env=self.env, capture_output=True, text=True)
        out = []
        for line in p.stdout.splitlines():
            if line.strip() and "No jobs" not in line:
                out.append(dict(kv.split("=", 1) for kv in line.split() if "=" in kv))
        return out
