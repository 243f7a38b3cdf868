#!/usr/bin/env bash
# Single-node Slurm on localhost for CI (Debian 12 / slurm-wlm 22.05, no systemd, run as root).
#   slurm-ci.sh install   # apt packages (once per fresh machine)
#   slurm-ci.sh up        # write configs, start daemons, wait for node idle
#   slurm-ci.sh down      # stop daemons started by `up` (by PID file)
#   slurm-ci.sh status    # exit 0 if the node is up and idle/mixed/allocated
# Accounting (MariaDB + slurmdbd, so that `sacct` works) is ON by default: submitit polls sacct,
# and without it a job that dies without writing its result pickle (timeout, OOM kill, scancel,
# os._exit) makes the launcher wait forever; gdepth also reads the job's end state from sacct.
# SLURM_CI_ACCOUNTING=0 skips it (faster, but then the fault tests cannot pass).
set -euo pipefail
ACCT=${SLURM_CI_ACCOUNTING:-1}

wait_for() {  # $1 = tries (x0.1 s), rest = command
  local n=$1; shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "timeout waiting for: $*" >&2; return 1
}

stop_pid() {  # $1 = pid file; SIGTERM, wait up to 10 s, then SIGKILL
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$f"
}

do_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # minimal set (8 packages); `slurm-wlm munge` also works but pulls 43 packages
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
  if [ "$ACCT" = 1 ]; then
    apt-get install -y -qq --no-install-recommends slurmdbd mariadb-server >/dev/null
  fi
}

is_up() {
  sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'
}

do_up() {
  if is_up; then sinfo; return 0; fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  mem=$(( mem - 512 ))   # a little below what slurmd detects, else node is drained (Low RealMemory)
  mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /var/run/munge

  local acct_lines="AccountingStorageType=accounting_storage/none"
  if [ "$ACCT" = 1 ]; then
    acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost"
  fi

  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=localci
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
${acct_lines}
JobCompType=jobcomp/none
SchedulerType=sched/backfill
# default batch_sched_delay=3 adds ~3 s between a job ending and the next array task starting
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without DefMemPerCPU a job that passes no --mem gets ALL node memory -> jobs run one at a time
DefMemPerCPU=1024
MailProg=/bin/true
# scancel: SIGTERM, then SIGKILL after KillWait s (default 30; submitit ignores SIGTERM)
KillWait=5
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/var/run/slurmctld.pid
SlurmdPidFile=/var/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

  # munge (the Debian postinst creates /etc/munge/munge.key; make one if it is missing)
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --force
    chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key
  fi
  chown munge:munge /var/run/munge
  runuser -u munge -- munged        # writes /var/run/munge/munged.pid
  wait_for 50 bash -c 'munge -n | unmunge'

  if [ "$ACCT" = 1 ]; then
    mkdir -p /var/run/mysqld && chown mysql:mysql /var/run/mysqld
    # the Debian postinst initialises /var/lib/mysql; redo it if that was wiped
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql >/dev/null
    mariadbd --user=mysql --bind-address=127.0.0.1 >>/var/log/mariadbd.out 2>&1 &
    echo $! > /var/run/slurm-ci-mariadbd.pid
    wait_for 100 mariadb -uroot -e 'select 1'
    mariadb -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmci';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
SQL
    cat > /etc/slurm/slurmdbd.conf <<CONF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurmci
StorageLoc=slurm_acct_db
LogFile=/var/log/slurm/slurmdbd.log
PidFile=/var/run/slurmdbd.pid
CONF
    chmod 600 /etc/slurm/slurmdbd.conf
    slurmdbd
    wait_for 100 sacctmgr -n list cluster
    sacctmgr -i add cluster localci >/dev/null 2>&1 || true
  fi

  slurmctld
  slurmd
  wait_for 300 bash -c "sinfo -h -o '%T' | grep -qE '^(idle|mixed|allocated|completing)'"
  sinfo
}

do_down() {
  # each daemon needs ~1-3 s to exit on SIGTERM, so stop them in two parallel waves
  stop_pid /var/run/slurmd.pid & stop_pid /var/run/slurmctld.pid & wait
  stop_pid /var/run/slurmdbd.pid & stop_pid /var/run/slurm-ci-mariadbd.pid & stop_pid /var/run/munge/munged.pid & wait
}

case "${1:-}" in
  install) do_install ;;
  up) do_up ;;
  down) do_down ;;
  status) is_up ;;
  *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
