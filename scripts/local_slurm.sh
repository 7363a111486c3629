#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the suite's SLURM tests and for trying the SLURM path:
#   scripts/local_slurm.sh up       install slurm-wlm + munge where missing (apt, as root), write slurm.conf,
#                                   start munged, slurmctld and slurmd, wait until the node is idle
#   scripts/local_slurm.sh down     stop what `up` started
#   scripts/local_slurm.sh status   what runs, and sinfo
# State: $HIH_SLURM_DIR (default /tmp/hih-slurm: slurm.conf, spool, state, logs, pid files), munged's own
# /run/munge, and /etc/slurm/slurm.conf as a link to our slurm.conf (where the SLURM commands look for it;
# a slurm.conf that is not ours is never touched). No accounting: Debian's SLURM keeps it only through
# slurmdbd and a MySQL/MariaDB server, so `sacct` answers "accounting storage is disabled" here.
# Environment: HIH_SLURM_DIR, HIH_SLURM_CPUS (default: the cores slurmd finds), HIH_SLURM_MEM_MB
# (default: 90% of this machine's memory), HIH_SLURM_PARTITION (default: debug).
set -euo pipefail

DIR=${HIH_SLURM_DIR:-/tmp/hih-slurm}
CONF_LINK=/etc/slurm/slurm.conf
PARTITION=${HIH_SLURM_PARTITION:-debug}
HOST=$(hostname -s)

die() { echo "local_slurm: $*" >&2; exit 1; }

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install_packages() {
    local missing=()
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    command -v munged >/dev/null || missing+=(munge)
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "needs ${missing[*]} (Debian packages); run as root to install them, or install them yourself"
    command -v apt-get >/dev/null || die "needs ${missing[*]} and finds no apt-get to install them; install SLURM and munge yourself"
    echo "local_slurm: installing ${missing[*]} (apt-get)"
    local log="$DIR/log/apt.log"
    if ! { apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 ||
        { apt-get update -q >>"$log" 2>&1 &&
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; }; then
        die "apt-get could not install ${missing[*]}: see $log"
    fi
}

write_conf() {
    # The node as slurmd sees it (sockets, cores, threads), with the cores and memory it may grant.
    local node cpus mem
    node=$(slurmd -C | head -1)
    cpus=${HIH_SLURM_CPUS:-$(sed -n 's/.* CPUs=\([0-9]*\).*/\1/p' <<<"$node")}
    mem=${HIH_SLURM_MEM_MB:-$(($(sed -n 's/.* RealMemory=\([0-9]*\).*/\1/p' <<<"$node") * 9 / 10))}
    if [ -n "${HIH_SLURM_CPUS:-}" ]; then
        node="NodeName=$HOST CPUs=$cpus"
    else
        node=$(sed -e 's/ RealMemory=[0-9]*//' -e "s/^NodeName=[^ ]*/NodeName=$HOST/" <<<"$node")
    fi
    cat >"$DIR/slurm.conf" <<EOF
# Written by scripts/local_slurm.sh: one node, one partition, no accounting.
ClusterName=hih-local
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
# CPUs (not whole cores) and memory are what jobs consume; a job without --mem gets DefMemPerCPU.
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=1024
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
JobRequeue=1
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
MessageTimeout=20
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
$node RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

link_conf() {
    mkdir -p "$(dirname "$CONF_LINK")"
    if [ -e "$CONF_LINK" ] || [ -L "$CONF_LINK" ]; then
        [ "$(readlink "$CONF_LINK" || true)" = "$DIR/slurm.conf" ] ||
            die "$CONF_LINK exists and is not ours: a real SLURM is configured here; not touching it"
    else
        ln -s "$DIR/slurm.conf" "$CONF_LINK"
    fi
}

start_munge() {
    if munge -n </dev/null >/dev/null 2>&1; then return 0; fi # a munged answers already (the system's or ours)
    [ -f /etc/munge/munge.key ] || die "no /etc/munge/munge.key (the munge package creates it)"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    runuser -u munge -- munged
    for _ in $(seq 50); do
        if munge -n </dev/null >/dev/null 2>&1; then
            cp /run/munge/munged.pid "$DIR/munged.pid" # ours to stop on `down`
            return 0
        fi
        sleep 0.1
    done
    die "munged did not start (see /var/log/munge/munged.log)"
}

wait_idle() {
    local state=""
    for _ in $(seq "$1"); do
        state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -1 || true)
        case "$state" in
        idle | mixed | allocated) return 0 ;;
        esac
        sleep 1
    done
    die "node $HOST is '${state:-not answering}' after $1 s (logs: $DIR/log/)"
}

up() {
    local t0=$SECONDS
    mkdir -p "$DIR/log" "$DIR/state" "$DIR/spool"
    install_packages
    link_conf
    if running "$DIR/slurmctld.pid" && running "$DIR/slurmd.pid"; then
        wait_idle 30
        echo "local_slurm: already up ($HOST, partition $PARTITION)"
        return 0
    fi
    write_conf
    start_munge
    running "$DIR/slurmctld.pid" || slurmctld -c # -c: a fresh job list on every start
    running "$DIR/slurmd.pid" || slurmd
    wait_idle 60
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true # a node left down by an earlier run
    echo "local_slurm: up in $((SECONDS - t0)) s: node $HOST, partition $PARTITION ($(sinfo -h -o '%c CPUs, %m MB'))"
}

stop_pid() {
    local pidfile=$1 pid
    running "$pidfile" || { rm -f "$pidfile"; return 0; }
    pid=$(cat "$pidfile")
    kill "$pid"
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
    rm -f "$pidfile"
}

down() {
    if running "$DIR/slurmctld.pid"; then
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true # our jobs end with the cluster
    fi
    stop_pid "$DIR/slurmd.pid"
    stop_pid "$DIR/slurmctld.pid"
    stop_pid "$DIR/munged.pid" # only a munged that `up` started
    if [ "$(readlink "$CONF_LINK" 2>/dev/null || true)" = "$DIR/slurm.conf" ]; then rm -f "$CONF_LINK"; fi
    echo "local_slurm: down (logs kept in $DIR/log/)"
}

status() {
    local name
    for name in munged slurmctld slurmd; do
        if running "$DIR/$name.pid"; then echo "$name: running (pid $(cat "$DIR/$name.pid"))"; else echo "$name: not started here"; fi
    done
    sinfo || exit 1
}

case "${1:-}" in
up) up ;;
down) down ;;
status) status ;;
*) die "usage: $0 up|down|status" ;;
esac
