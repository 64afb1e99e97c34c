#!/usr/bin/env bash
# Start a single-node SLURM cluster (munge, slurmctld, slurmd from Debian's slurm-wlm) on this machine, as
# root, without systemd or cgroups, for the SLURM tests (tests/test_slurm.py) or to try hydra/launcher=slurm:
#   sudo scripts/slurm_cluster.sh        # prints the partition name when the node is idle
# Idempotent: daemons already running are left alone. The daemons (and so the jobs) run under nice 19.
# Exit status 3: this machine cannot host it (not root, or no apt-get); 1: it failed (see the log lines).
set -euo pipefail

PARTITION=${SLURM_TEST_PARTITION:-debug}
LOG=/var/log/slurm

say() { echo "slurm_cluster: $*" >&2; }

# up: idle, or running jobs (mix, alloc)
up() { sinfo -h -p "$PARTITION" -o %t 2>/dev/null | grep -qxE 'idle|mix|alloc|comp'; }

if command -v sinfo >/dev/null && up; then
  echo "$PARTITION"
  exit 0
fi
[ "$(id -u)" = 0 ] || { say "needs root (it installs packages and starts daemons)"; exit 3; }
command -v apt-get >/dev/null || { say "needs apt-get (a Debian or Ubuntu machine)"; exit 3; }

if ! dpkg -s slurmctld slurmd slurm-client munge >/dev/null 2>&1; then
  say "installing slurmctld slurmd slurm-client munge"
  export DEBIAN_FRONTEND=noninteractive
  nice -n 19 apt-get update -qq >/dev/null
  nice -n 19 apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

host=$(hostname -s)
getent hosts "$host" >/dev/null || echo "127.0.0.1 $host" >>/etc/hosts

# munge: the package made /etc/munge/munge.key; it runs as the munge user
mkdir -p /run/munge && chown munge:munge /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- nice -n 19 munged --num-threads=10
  for _ in $(seq 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
fi

mkdir -p /var/spool/slurmctld /var/spool/slurmd "$LOG" /run/slurm
chown slurm:slurm /var/spool/slurmctld /var/spool/slurmd "$LOG" /run/slurm
# the node as slurmd sees it (its cores and memory)
node=$(slurmd -C | head -1)
cat >/etc/slurm/slurm.conf <<EOF
# written by sac_runner's scripts/slurm_cluster.sh: one node, no accounting, no cgroups
ClusterName=sac
SlurmctldHost=$host
SlurmUser=slurm
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
KillWait=30
$node
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

pgrep -u slurm -x slurmctld >/dev/null || nice -n 19 slurmctld
pgrep -x slurmd >/dev/null || nice -n 19 slurmd
for _ in $(seq 60); do
  state=$(sinfo -h -p "$PARTITION" -o %t 2>/dev/null || true)
  if up; then echo "$PARTITION"; exit 0; fi
  [ "$state" = "down" ] || [ "$state" = "drain" ] && scontrol update nodename="$host" state=resume 2>/dev/null || true
  sleep 0.5
done
say "the node did not become idle (sinfo: ${state:-nothing}); see $LOG/slurmctld.log and $LOG/slurmd.log"
exit 1
