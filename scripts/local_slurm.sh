#!/usr/bin/env bash
# A real SLURM cluster on this one machine, for trying and testing the cluster path: one slurmctld and
# N slurmd ("node1".."nodeN", all on this host), each node declaring M fake GPUs (character devices, so
# SLURM binds and exports them exactly as on a GPU cluster; compute stays on the CPU) and one CPU per
# fake GPU (so each engine step gets one CPU: processes side by side never oversubscribe the cores).
#
#   scripts/local_slurm.sh start [NODES] [GPUS_PER_NODE]   default 2 nodes x 4 GPUs; needs root
#   scripts/local_slurm.sh stop                            ends exactly the daemons `start` started
#   scripts/local_slurm.sh status                          sinfo, or exit 1 when it is not running
#   scripts/local_slurm.sh env                             the line to use it: export SLURM_CONF=...
#
# Everything lives in $LOCAL_SLURM_DIR (default /tmp/selfplay-slurm): slurm.conf, gres.conf, the fake
# devices, state, logs and pid files; the SLURM commands find it through SLURM_CONF, so a real SLURM
# configuration in /etc/slurm is never touched. `start` installs slurm-wlm and munge with apt where
# they are missing, starts munged if none runs, and adds "127.0.0.1 node1 node2 ..." to /etc/hosts
# (one marked line, removed by `stop`) so that the node names resolve as on a cluster.
set -euo pipefail

DIR="${LOCAL_SLURM_DIR:-/tmp/selfplay-slurm}"
CTLD_PORT="${LOCAL_SLURM_PORT:-16817}"
MARK="# selfplay-local-slurm"

die() { echo "local_slurm: $*" >&2; exit 1; }

install_packages() {
    command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && return
    [ "$(id -u)" = 0 ] || die "slurm-wlm and munge are not installed and installing them needs root"
    command -v apt-get >/dev/null || die "slurm-wlm and munge are not installed and there is no apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >"$DIR/apt.log" 2>&1 \
        || die "apt-get install slurm-wlm munge failed (see $DIR/apt.log)"
}

start_munge() {
    if munge -n >/dev/null 2>&1 </dev/null; then return; fi  # a munged already answers
    [ -f /etc/munge/munge.key ] || {
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
        chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
    }
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid" \
        || die "munged did not start (see /var/log/munge/munged.log)"
    cp /run/munge/munged.pid "$DIR/munged.pid"  # started by us: stop ends it
    for _ in $(seq 50); do munge -n >/dev/null 2>&1 </dev/null && return; sleep 0.1; done
    die "munged started but does not answer"
}

write_config() {
    local nodes=$1 gpus=$2 last=$((gpus - 1))
    mkdir -p "$DIR/state" "$DIR/dev" "$DIR/log"
    for i in $(seq 0 "$last"); do
        [ -c "$DIR/dev/gpu$i" ] || mknod "$DIR/dev/gpu$i" c 1 3  # like /dev/null: SLURM wants a device
    done
    for n in $(seq 1 "$nodes"); do mkdir -p "$DIR/spool/node$n"; done
    cat >"$DIR/slurm.conf" <<EOF
# Written by scripts/local_slurm.sh: $nodes nodes x $gpus fake GPUs on this one host.
ClusterName=selfplay-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
AuthType=auth/munge
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
GresTypes=gpu
ReturnToService=2
JobRequeue=1
KillWait=10
SchedulerParameters=defer
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
MinJobAge=300
NodeName=node[1-$nodes] NodeHostname=localhost NodeAddr=127.0.0.1 Port=[17001-$((17000 + nodes))] CPUs=$gpus RealMemory=4096 Gres=gpu:$gpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
EOF
    cat >"$DIR/gres.conf" <<EOF
AutoDetect=off
NodeName=node[1-$nodes] Name=gpu File=$DIR/dev/gpu[0-$last]
EOF
    echo "$nodes $gpus" >"$DIR/shape"
}

add_hosts() {
    local nodes=$1 names=""
    for n in $(seq 1 "$nodes"); do names="$names node$n"; done
    sed -i "/$MARK\$/d" /etc/hosts
    echo "127.0.0.1$names $MARK" >>/etc/hosts
}

running() { [ -f "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; }

start() {
    local nodes=${1:-2} gpus=${2:-4}
    [ "$(id -u)" = 0 ] || die "needs root (slurmd runs jobs as their users; munged needs its own user)"
    mkdir -p "$DIR"
    if running; then
        [ "$(cat "$DIR/shape" 2>/dev/null)" = "$nodes $gpus" ] && { echo "local_slurm: already running"; return; }
        die "already running with another shape ($(cat "$DIR/shape")); stop it first"
    fi
    local t0=$SECONDS
    install_packages
    start_munge
    write_config "$nodes" "$gpus"
    add_hosts "$nodes"
    export SLURM_CONF="$DIR/slurm.conf"
    rm -rf "$DIR/state"/*  # a fresh cluster: no jobs of an earlier one
    slurmctld -f "$SLURM_CONF" -i || die "slurmctld did not start (see $DIR/log/slurmctld.log)"
    for n in $(seq 1 "$nodes"); do
        slurmd -f "$SLURM_CONF" -N "node$n" || die "slurmd node$n did not start (see $DIR/log/slurmd-node$n.log)"
    done
    for _ in $(seq 120); do
        local idle
        idle=$(sinfo -h -N -t idle -o %N 2>/dev/null | sort -u | wc -l)
        if [ "$idle" -ge "$nodes" ]; then
            echo "local_slurm: $nodes nodes x $gpus GPUs idle after $((SECONDS - t0)) s; use: export SLURM_CONF=$SLURM_CONF"
            return
        fi
        sleep 0.5
    done
    sinfo -N >&2 || true
    die "nodes not idle after 60 s (see $DIR/log/)"
}

stop_pidfile() {
    local f=$1
    [ -f "$f" ] || return 0
    local pid; pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$f"
}

stop() {
    export SLURM_CONF="$DIR/slurm.conf"
    if running; then scancel --quiet --full "--user=$(id -un)" 2>/dev/null || true; fi
    for f in "$DIR"/slurmd-*.pid; do stop_pidfile "$f"; done
    stop_pidfile "$DIR/slurmctld.pid"
    stop_pidfile "$DIR/munged.pid"
    sed -i "/$MARK\$/d" /etc/hosts 2>/dev/null || true
    echo "local_slurm: stopped"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) stop ;;
    status) running || die "not running"; SLURM_CONF="$DIR/slurm.conf" sinfo -N ;;
    env) echo "export SLURM_CONF=$DIR/slurm.conf" ;;
    *) die "usage: $0 start [NODES] [GPUS_PER_NODE] | stop | status | env" ;;
esac
