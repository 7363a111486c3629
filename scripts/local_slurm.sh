#!/usr/bin/env bash
# A one-node SLURM cluster on this machine, for the suite's SLURM tests and for trying the SLURM path:
#   scripts/local_slurm.sh up       install slurm-wlm + munge where missing (apt, as root), write slurm.conf,
#                                   start munged, slurmctld and slurmd, wait until the node is idle
#   scripts/local_slurm.sh down     stop what `up` started
#   scripts/local_slurm.sh status   what runs, and sinfo
# Accounting, so that `sacct` works as on a real site: Debian's SLURM keeps it only through slurmdbd and a
# MariaDB server, both installed and started here too (HIH_SLURM_ACCOUNTING=0: without; then, or where
# they do not start, `sacct` answers "accounting storage is disabled").
# State: $HIH_SLURM_DIR (default /tmp/hih-slurm: slurm.conf, slurmdbd.conf, spool, state, logs, pid files),
# the daemons' own /run/munge, /run/mysqld and MariaDB's database hih_slurm_acct, and links
# /etc/slurm/slurm.conf and slurmdbd.conf to our files (where the SLURM commands look for them; files
# there that are not ours are never touched).
# Environment: HIH_SLURM_DIR, HIH_SLURM_CPUS (default: the cores slurmd finds), HIH_SLURM_MEM_MB
# (default: 90% of this machine's memory), HIH_SLURM_PARTITION (default: debug), HIH_SLURM_ACCOUNTING.
set -euo pipefail

DIR=${HIH_SLURM_DIR:-/tmp/hih-slurm}
CONF_LINK=/etc/slurm/slurm.conf
DBD_LINK=/etc/slurm/slurmdbd.conf
ACCOUNTING=${HIH_SLURM_ACCOUNTING:-1}
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
    if [ "$ACCOUNTING" = 1 ]; then
        command -v slurmdbd >/dev/null || missing+=(slurmdbd)
        command -v mariadbd >/dev/null || missing+=(mariadb-server)
    fi
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
    local storage=$1 # accounting_storage/slurmdbd or accounting_storage/none
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
# Written by scripts/local_slurm.sh: one node, one partition.
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
AccountingStorageType=$storage
AccountingStorageHost=localhost
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

link_conf() { # link_conf <link> <our file>
    mkdir -p "$(dirname "$1")"
    if [ -e "$1" ] || [ -L "$1" ]; then
        [ "$(readlink "$1" || true)" = "$2" ] ||
            die "$1 exists and is not ours: a real SLURM is configured here; not touching it"
    else
        ln -s "$2" "$1"
    fi
}

unlink_conf() { if [ "$(readlink "$1" 2>/dev/null || true)" = "$2" ]; then rm -f "$1"; fi; }

# MariaDB (its packaged database folder), slurmdbd and the cluster's record; returns 1 where they do not start.
start_accounting() {
    if ! mariadb -e "select 1" >/dev/null 2>&1; then
        install -d -o mysql -g mysql -m 0755 /run/mysqld
        runuser -u mysql -- mariadbd --bind-address=127.0.0.1 >"$DIR/log/mariadb.log" 2>&1 &
        local up=0
        for _ in $(seq 100); do
            if mariadb -e "select 1" >/dev/null 2>&1; then up=1 && break; fi
            sleep 0.2
        done
        [ $up = 1 ] || { echo "local_slurm: MariaDB did not start ($DIR/log/mariadb.log)" >&2; return 1; }
        cp /run/mysqld/mysqld.pid "$DIR/mariadb.pid" # ours to stop on `down`
    fi
    printf '%s\n' "AuthType=auth/munge" "DbdHost=localhost" "SlurmUser=root" "StorageType=accounting_storage/mysql" \
        "StorageHost=localhost" "StorageUser=root" "StorageLoc=hih_slurm_acct" "PidFile=$DIR/slurmdbd.pid" \
        "LogFile=$DIR/log/slurmdbd.log" >"$DIR/slurmdbd.conf"
    chmod 600 "$DIR/slurmdbd.conf"
    link_conf "$DBD_LINK" "$DIR/slurmdbd.conf"
    running "$DIR/slurmdbd.pid" || slurmdbd
    local clusters
    for _ in $(seq 100); do
        if clusters=$(sacctmgr --noheader list cluster format=cluster 2>/dev/null); then
            grep -qw hih-local <<<"$clusters" || sacctmgr --immediate add cluster hih-local >/dev/null
            return 0
        fi
        sleep 0.2
    done
    echo "local_slurm: slurmdbd does not answer ($DIR/log/slurmdbd.log)" >&2
    return 1
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
    link_conf "$CONF_LINK" "$DIR/slurm.conf"
    if running "$DIR/slurmctld.pid" && running "$DIR/slurmd.pid"; then
        wait_idle 30
        echo "local_slurm: already up ($HOST, partition $PARTITION)"
        return 0
    fi
    start_munge
    local accounting=none
    if [ "$ACCOUNTING" = 1 ]; then
        write_conf accounting_storage/slurmdbd # sacctmgr reads it
        if start_accounting; then accounting=slurmdbd; else echo "local_slurm: going on without accounting" >&2; fi
    fi
    write_conf "accounting_storage/$accounting"
    running "$DIR/slurmctld.pid" || slurmctld
    running "$DIR/slurmd.pid" || slurmd
    wait_idle 60
    scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true # a node left down by an earlier run
    echo "local_slurm: up in $((SECONDS - t0)) s: node $HOST, partition $PARTITION" \
        "($(sinfo -h -o '%c CPUs, %m MB')), accounting: $accounting"
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
    stop_pid "$DIR/slurmdbd.pid"
    stop_pid "$DIR/mariadb.pid" # only a MariaDB that `up` started
    stop_pid "$DIR/munged.pid"  # likewise
    unlink_conf "$CONF_LINK" "$DIR/slurm.conf"
    unlink_conf "$DBD_LINK" "$DIR/slurmdbd.conf"
    echo "local_slurm: down (logs kept in $DIR/log/)"
}

status() {
    local name
    for name in munged mariadb slurmdbd slurmctld slurmd; do
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
