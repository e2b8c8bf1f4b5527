#!/usr/bin/env bash
# Single-node SLURM cluster on this machine, for lesionqsm's SLURM tests (tests/slurm/).
#
#   bash .ci/slurm.sh up              install (apt, --no-install-recommends), configure, start,
#                                     wait until the node is idle; idempotent
#   eval "$(bash .ci/slurm.sh env)"   export SLURM_CONF (and LOGNAME, which nipype's SLURM
#                                     plugin reads) into the calling shell
#   bash .ci/slurm.sh status          daemons started by this script, sinfo, squeue
#   bash .ci/slurm.sh stop            stop the daemons this script started, by their PIDs
#
# Everything (slurm.conf, state, spool, logs, PID files) lives under $LESIONQSM_SLURM_PREFIX
# (default /tmp/lesionqsm-slurm); nothing is written to /etc/slurm and systemd is not used.
# Needs root (apt-get, munge key, daemons running as root), as in the CI container.
set -euo pipefail

PREFIX="${LESIONQSM_SLURM_PREFIX:-/tmp/lesionqsm-slurm}"
CONF="$PREFIX/slurm.conf"
RUN="$PREFIX/run"
LOGS="$PREFIX/log"
NODE=localhost

say() { printf '[slurm.sh] %s\n' "$*" >&2; }

running() {  # running NAME: the PID recorded in $RUN/NAME.pid is alive
    local f="$RUN/$1.pid"
    [[ -s $f ]] && kill -0 "$(<"$f")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS CMD...: poll CMD every 0.2 s
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

show_logs() {
    local f
    for f in "$LOGS/slurmctld.log" "$LOGS/slurmd.log" /var/log/munge/munged.log; do
        [[ -f $f ]] || continue
        printf '\n===== tail -n 40 %s =====\n' "$f" >&2
        tail -n 40 "$f" >&2
    done
}

fail() {
    say "ERROR: $*"
    show_logs
    exit 1
}

install_packages() {
    local missing=0 cmd
    for cmd in slurmctld slurmd sbatch sinfo munged; do
        command -v "$cmd" >/dev/null || [[ -x /usr/sbin/$cmd ]] || missing=1
    done
    if ((missing == 0)); then
        return 0
    fi
    say 'installing slurmctld slurmd slurm-client munge (Debian packages)'
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The postinst scripts try to start the services; without systemd that is refused, harmlessly.
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null \
        || fail 'apt-get install failed'
}

write_config() {
    # A running cluster keeps its configuration: rewriting it under live daemons would make
    # `up` non-idempotent.
    if [[ -f $CONF ]] && running slurmctld; then
        return 0
    fi
    mkdir -p "$PREFIX/state" "$PREFIX/spool" "$LOGS" "$RUN"
    local cpus mem_mb
    cpus=$(nproc)
    # RealMemory may not exceed what slurmd detects; declare 90 % of MemTotal (MB).
    mem_mb=$(awk '/^MemTotal:/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    cat >"$CONF" <<EOF
# Written by lesionqsm .ci/slurm.sh: a one-node test cluster.
ClusterName=lesionqsm
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$PREFIX/state
SlurmdSpoolDir=$PREFIX/spool
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
# Cores and memory are both consumable, so the --cpus-per-task and --mem that lesionqsm
# derives from each node's n_procs and mem_gb are enforced by the scheduler as on a real cluster.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
MinJobAge=300
InactiveLimit=0
KillWait=5
Waittime=0
SchedulerParameters=sched_interval=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    say "wrote $CONF (CPUs=$cpus, RealMemory=${mem_mb} MB)"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if running munged; then
        return 0
    fi
    if munge_works; then
        say 'a munged not started by this script is running; using it (stop will leave it alone)'
        return 0
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then  # normally made by munge's postinst
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key
        else
            head -c 1024 /dev/urandom >/etc/munge/munge.key
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    chmod 0700 /var/log/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || fail 'munged did not start'
    wait_for 10 test -s /run/munge/munged.pid || fail 'munged wrote no PID file'
    cp /run/munge/munged.pid "$RUN/munged.pid"
    wait_for 10 munge_works || fail 'munge -n | unmunge fails'
    say "munged started (pid $(<"$RUN/munged.pid"))"
}

start_daemon() {  # start_daemon NAME ARGS...
    local name=$1
    shift
    if running "$name"; then
        return 0
    fi
    rm -f "$RUN/$name.pid"
    "/usr/sbin/$name" -f "$CONF" "$@" || fail "$name did not start"
    wait_for 15 running "$name" || fail "$name wrote no live PID file"
    say "$name started (pid $(<"$RUN/$name.pid"))"
}

node_state() { sinfo -h -n "$NODE" -o %t 2>/dev/null || true; }

node_idle() { [[ $(node_state) == idle ]]; }

cmd_up() {
    install_packages
    write_config
    export SLURM_CONF=$CONF
    start_munge
    start_daemon slurmctld -c  # -c: clean state; this is a throwaway cluster
    start_daemon slurmd -N "$NODE"
    if ! wait_for 30 node_idle; then
        say "node state is '$(node_state)'; trying scontrol update state=resume"
        scontrol update nodename="$NODE" state=resume 2>/dev/null || true
        wait_for 15 node_idle || fail "node $NODE is '$(node_state)', not idle"
    fi
    # A real job end to end: submission, munge credentials, slurmd launch, exit code.
    local out jid
    out=$(mktemp "$PREFIX/smoke.XXXXXX")
    jid=$(sbatch --parsable --output="$out" --time=1 --mem=50 --wrap='echo ok') \
        || fail 'sbatch of a smoke-test job failed'
    wait_for 60 bash -c "! squeue -h -j $jid 2>/dev/null | grep -q ." \
        || fail "smoke-test job $jid did not finish in 60 s"
    wait_for 10 grep -qx ok "$out" || fail "smoke-test job $jid wrote no 'ok' to $out"
    rm -f "$out"
    sinfo
    say "cluster up; SLURM_CONF=$CONF"
}

stop_daemon() {  # stop the PID this script recorded, SIGKILL after 10 s
    local name=$1 pid
    if ! running "$name"; then
        rm -f "$RUN/$name.pid"
        return 0
    fi
    pid=$(<"$RUN/$name.pid")
    kill "$pid" 2>/dev/null || true
    if ! wait_for 10 bash -c "! kill -0 $pid 2>/dev/null"; then
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
    say "stopped $name (pid $pid)"
}

cmd_stop() {
    stop_daemon slurmd
    stop_daemon slurmctld
    stop_daemon munged
}

cmd_status() {
    local name
    for name in munged slurmctld slurmd; do
        if running "$name"; then
            echo "$name: running, pid $(<"$RUN/$name.pid")"
        else
            echo "$name: not running (or not started by this script)"
        fi
    done
    if [[ -f $CONF ]]; then
        SLURM_CONF=$CONF sinfo || true
        SLURM_CONF=$CONF squeue || true
    else
        echo "no $CONF: run 'bash .ci/slurm.sh up' first"
    fi
}

cmd_env() {
    printf "export SLURM_CONF='%s'\n" "$CONF"
    # shellcheck disable=SC2016  # expanded by the shell that evals this
    printf 'export LOGNAME="${LOGNAME:-$(id -un)}"\n'
}

case "${1:-}" in
    up) cmd_up ;;
    stop) cmd_stop ;;
    env) cmd_env ;;
    status) cmd_status ;;
    logs) show_logs ;;
    *)
        echo "usage: bash $0 {up|stop|env|status|logs}" >&2
        exit 2
        ;;
esac
