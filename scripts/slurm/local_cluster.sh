#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for trying and testing the SLURM
# profile (workflow/profiles/slurm) without a real cluster.
#
#   scripts/slurm/local_cluster.sh up [DIR]       install (if missing), configure and start munged, slurmctld, slurmd
#   scripts/slurm/local_cluster.sh status [DIR]   what runs, the node and its partition
#   scripts/slurm/local_cluster.sh env [DIR]      prints `export SLURM_CONF=...` (eval it before sbatch/snakemake)
#   scripts/slurm/local_cluster.sh down [DIR]     stop exactly the daemons `up` started (by their recorded PIDs)
#   scripts/slurm/local_cluster.sh live [DIR]     exit 0 while a daemon recorded under DIR still runs as that program
#   scripts/slurm/local_cluster.sh prove          the whole proof, in a few minutes: bring a cluster up in a
#                                                 temporary DIR, run the test configuration through the SLURM
#                                                 profile, check the GPU requests (SLURM's records and the jobs'
#                                                 environments) and that results equal a local run, bring it
#                                                 down (tests/test_slurm.py; PYTHON picks the interpreter)
#
# DIR (or $SLURM_LOCAL_DIR; default: <project>/.slurm) holds everything: the
# configuration (etc/slurm.conf, etc/gres.conf), the munge key and socket, the
# controller's state, slurmd's spool, the logs (log/) and the PID of every daemon
# started (run/<daemon>.pid). Outside DIR, `up` only makes /etc/slurm/slurm.conf a
# symbolic link to DIR/etc/slurm.conf, and only where that path is free: no file,
# or a stale link (dangling, or to a cluster none of whose daemons still runs, as
# after a reboot). The SLURM executor plugin strips SLURM_* variables, SLURM_CONF
# included, before the `srun` inside each job, so the job's srun can only find
# the cluster at the default path. `down` removes the link if it is still ours.
# Where /etc/slurm/slurm.conf is a running cluster's, or a real file, `up` refuses.
#
# The cluster: controller and node on loopback (127.0.0.1), one node `localnode`
# with this machine's CPUs and memory (from `slurmd -C`) and one GPU declared in
# gres.conf (File=/dev/null: there need not be a real GPU; SLURM only books it
# and sets CUDA_VISIBLE_DEVICES/SLURM_JOB_GPUS in the jobs that ask for it),
# partition `debug` (Default=YES), accounting off (so only `squeue` can tell job
# states; MinJobAge=3600 keeps finished jobs visible to it for a whole run, however slow the machine).
#
# Environment: SLURM_LOCAL_DIR, SLURM_LOCAL_PARTITION (debug), SLURM_LOCAL_CTLD_PORT
# (6817), SLURM_LOCAL_SLURMD_PORT (6818). Must run as root (the daemons and apt-get).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PROJECT="$(cd "$HERE/../.." && pwd)"
CMD="${1:-}"
DIR="${2:-${SLURM_LOCAL_DIR:-$PROJECT/.slurm}}"
PARTITION="${SLURM_LOCAL_PARTITION:-debug}"
CTLD_PORT="${SLURM_LOCAL_CTLD_PORT:-6817}"
SLURMD_PORT="${SLURM_LOCAL_SLURMD_PORT:-6818}"
NODE=localnode
DAEMONS=(slurmd slurmctld munged)   # stop order; start order is the reverse

say() { printf 'local_cluster: %s\n' "$*"; }
die() { printf 'local_cluster: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-2}"
}

mkdir_dir() {  # absolute DIR, created if needed
    mkdir -p "$DIR"
    DIR="$(cd "$DIR" && pwd)"
    CONF="$DIR/etc/slurm.conf"
    SOCKET="$DIR/munge/munge.socket.2"
}

resolve_dir() {  # absolute DIR without creating it
    if [[ -d "$DIR" ]]; then DIR="$(cd "$DIR" && pwd)"; fi
    CONF="$DIR/etc/slurm.conf"
    SOCKET="$DIR/munge/munge.socket.2"
}

pidfile() { echo "$DIR/run/$1.pid"; }

ETC_CONF=/etc/slurm/slurm.conf

# /etc/slurm/slurm.conf -> DIR/etc/slurm.conf (see the header); refuses to replace anything else
link_etc() {
    if [[ -L "$ETC_CONF" ]]; then
        local target
        target="$(readlink "$ETC_CONF")"
        if [[ "$target" == "$CONF" ]]; then
            return 0
        elif [[ -e "$ETC_CONF" ]] && daemons_live "$(dirname "$(dirname "$target")")"; then
            die "$ETC_CONF links to $target, a local cluster that is up; run 'down' for that one"
        fi
        # stale: left by a cluster whose directory is gone or whose daemons have all ended
        rm -f "$ETC_CONF"
        say "removed the stale link $ETC_CONF -> $target"
    elif [[ -e "$ETC_CONF" ]]; then
        die "$ETC_CONF exists and is not this script's: this machine already has a SLURM configuration"
    fi
    mkdir -p "$(dirname "$ETC_CONF")"
    ln -s "$CONF" "$ETC_CONF"
    echo "$ETC_CONF" > "$DIR/run/etc_link"
    say "linked $ETC_CONF -> $CONF"
}

unlink_etc() {
    if [[ -L "$ETC_CONF" && "$(readlink "$ETC_CONF")" == "$CONF" ]]; then
        rm -f "$ETC_CONF"
        say "removed the link $ETC_CONF"
    fi
    rm -f "$DIR/run/etc_link"
}

# PID of a daemon we started, if it still runs and is that program (guards against PID reuse)
live_pid() {
    local f pid
    f="$(pidfile "$1")"
    [[ -s "$f" ]] || return 1
    pid="$(tr -dc '0-9' < "$f")"
    [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$1" ]] || return 1
    echo "$pid"
}

# true when any daemon recorded under the cluster directory $1 still runs as that program
daemons_live() (
    DIR="$1"
    for name in "${DAEMONS[@]}"; do live_pid "$name" > /dev/null && exit 0; done
    exit 1
)

slurm() { SLURM_CONF="$CONF" "$@"; }

# ---------------------------------------------------------------- install
install_packages() {
    local missing=() pkg bin
    for pkg in munge:munged slurmctld:slurmctld slurmd:slurmd slurm-client:sbatch; do
        bin="${pkg#*:}"
        command -v "$bin" > /dev/null 2>&1 || [[ -x "/usr/sbin/$bin" ]] || missing+=("${pkg%%:*}")
    done
    if ((${#missing[@]} == 0)); then
        say "packages present (munge, slurmctld, slurmd, slurm-client)"
        return
    fi
    command -v apt-get > /dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
    say "installing ${missing[*]} (apt-get)"
    # keep the packages' postinst from starting system-wide daemons: this script runs its own
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && made_policy=1
    fi
    local rc=0
    if [[ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null)" ]] \
        || ! apt-cache show "${missing[@]}" > /dev/null 2>&1; then
        apt-get update -qq || rc=$?
    fi
    if ((rc == 0)); then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            > "${TMPDIR:-/tmp}/local_cluster_apt.log" 2>&1 || rc=$?
    fi
    ((made_policy)) && rm -f "$policy"
    ((rc == 0)) || die "apt-get failed (rc $rc); see ${TMPDIR:-/tmp}/local_cluster_apt.log"
}

# ---------------------------------------------------------------- configuration
write_config() {
    mkdir -p "$DIR"/{etc,munge,state,spool,log,run}
    chmod 755 "$DIR/munge"
    local hw cpus boards sockets cores threads mem host
    hw="$(slurmd -C | head -1)"
    field() { sed -n "s/.*[[:space:]]$1=\([0-9]*\).*/\1/p" <<< "$hw"; }
    cpus="$(field CPUs)"; boards="$(field Boards)"; sockets="$(field SocketsPerBoard)"
    cores="$(field CoresPerSocket)"; threads="$(field ThreadsPerCore)"; mem="$(field RealMemory)"
    [[ -n "$cpus" && -n "$mem" ]] || die "could not read this machine's CPUs/memory from 'slurmd -C': $hw"
    host="$(hostname -s 2>/dev/null || hostname)"
    cat > "$CONF" << EOF
# Written by scripts/slurm/local_cluster.sh: a single-node cluster on loopback.
ClusterName=localcluster
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${SOCKET}
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool
SlurmctldPidFile=${DIR}/run/slurmctld.daemon.pid
SlurmdPidFile=${DIR}/run/slurmd.daemon.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
# jobs waiting for the one GPU must not hold up CPU-only jobs behind them for the default 30 s
SchedulerParameters=bf_interval=1,bf_continue
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
ReturnToService=2
# finished jobs stay visible to squeue (the only status source without accounting)
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=${NODE} NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=${cpus} Boards=${boards:-1} SocketsPerBoard=${sockets:-1} CoresPerSocket=${cores:-$cpus} ThreadsPerCore=${threads:-1} RealMemory=${mem} Gres=gpu:1 State=UNKNOWN
PartitionName=${PARTITION} Nodes=${NODE} Default=YES MaxTime=INFINITE State=UP
EOF
    # one GPU: SLURM books it and exports CUDA_VISIBLE_DEVICES; the device file is a stand-in
    cat > "$DIR/etc/gres.conf" << EOF
NodeName=${NODE} Name=gpu File=/dev/null
EOF
    if [[ ! -s "$DIR/munge/munge.key" ]]; then
        if command -v mungekey > /dev/null 2>&1 || [[ -x /usr/sbin/mungekey ]]; then
            PATH="$PATH:/usr/sbin" mungekey --create --keyfile="$DIR/munge/munge.key" > /dev/null
        else
            dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
        fi
    fi
    chmod 600 "$DIR/munge/munge.key"
    say "configuration: $CONF (node ${NODE}: ${cpus} CPUs, ${mem} MB, gpu:1; partition ${PARTITION})"
}

# ---------------------------------------------------------------- daemons
start_daemon() {  # name, command...; runs in the foreground mode of the daemon, in its own session
    local name="$1"; shift
    setsid "$@" < /dev/null >> "$DIR/log/$name.out" 2>&1 &
    echo "$!" > "$(pidfile "$name")"
    sleep 0.5
    live_pid "$name" > /dev/null || {
        tail -n 20 "$DIR/log/$name.out" "$DIR/log/$name.log" >&2 2>/dev/null || true
        die "$name exited at once (logs above; $DIR/log/)"
    }
    say "started $name (pid $(cat "$(pidfile "$name")"))"
}

wait_for() {  # seconds, description, command...
    local secs="$1" what="$2"; shift 2
    local i
    for ((i = 0; i < secs * 2; i++)); do
        if "$@" > /dev/null; then return 0; fi
        sleep 0.5
    done
    return 1
}

controller_up() {
    live_pid slurmctld > /dev/null || die "slurmctld exited (see $DIR/log/slurmctld.log, $DIR/log/slurmctld.out)"
    slurm scontrol ping 2> /dev/null | grep -q UP
}

node_ready() {
    live_pid slurmd > /dev/null || return 1
    local state
    state="$(slurm sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1)"
    [[ "$state" == idle* || "$state" == mixed* || "$state" == allocated* ]]
}

cmd_up() {
    [[ "$(id -u)" == 0 ]] || die "must run as root (it starts munged, slurmctld and slurmd)"
    mkdir_dir
    ((${#SOCKET} < 100)) || die "path too long for a unix socket: $SOCKET (use a shorter DIR)"
    if live_pid munged > /dev/null && live_pid slurmctld > /dev/null && live_pid slurmd > /dev/null \
        && node_ready; then
        link_etc
        say "already up ($DIR)"
        cmd_env_hint
        return 0
    fi
    # a partial earlier start: stop what is left of it, then start afresh
    stop_all quiet
    install_packages
    write_config
    link_etc
    start_daemon munged munged -F --force --key-file="$DIR/munge/munge.key" --socket="$SOCKET" \
        --pid-file="$DIR/run/munged.daemon.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed"
    wait_for 10 "munge socket" test -S "$SOCKET" || die "munged did not create $SOCKET (see $DIR/log/munged.log)"
    # -c: start from a clean state (no jobs or node states from an earlier run)
    start_daemon slurmctld slurmctld -D -c -f "$CONF"
    wait_for 30 controller controller_up || die "slurmctld does not answer (see $DIR/log/slurmctld.log)"
    start_daemon slurmd slurmd -D -N "$NODE" -f "$CONF"
    local i
    for ((i = 0; i < 150; i++)); do
        node_ready && break
        live_pid slurmd > /dev/null || {
            tail -n 20 "$DIR/log/slurmd.out" >&2 || true
            die "slurmd exited (see $DIR/log/slurmd.log)"
        }
        # a node that registered DOWN/DRAIN (e.g. after an unclean stop): resume it once
        ((i == 40)) && { slurm scontrol update NodeName="$NODE" State=RESUME > /dev/null 2>&1 || true; }
        sleep 0.5
    done
    node_ready || {
        slurm sinfo -N -l >&2 || true
        die "node $NODE did not become idle in 75 s (see $DIR/log/slurmd.log, $DIR/log/slurmctld.log)"
    }
    slurm scontrol show node "$NODE" | grep -q 'Gres=gpu:1' \
        || die "node $NODE registered without Gres=gpu:1 (see $DIR/log/slurmd.log)"
    say "up: node $NODE idle with Gres=gpu:1, partition $PARTITION (default)"
    cmd_env_hint
}

stop_pid() {  # name pid
    local name="$1" pid="$2" i
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 40; i++)); do
        [[ -d "/proc/$pid" ]] || break
        sleep 0.25
    done
    if [[ -d "/proc/$pid" ]]; then
        say "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
}

stop_all() {  # [quiet]
    local name pid stopped=0
    # jobs first, while the controller still runs (their slurmstepd processes end with them)
    if live_pid slurmctld > /dev/null && [[ -s "$CONF" ]]; then
        if [[ -n "$(slurm squeue -h -o %i 2>/dev/null)" ]]; then
            say "cancelling the cluster's jobs"
            slurm scancel --full $(slurm squeue -h -o %i) > /dev/null 2>&1 || true
            wait_for 20 "jobs to end" bash -c "[[ -z \"\$(SLURM_CONF='$CONF' squeue -h -t R,CG -o %i 2>/dev/null)\" ]]" || true
        fi
    fi
    for name in "${DAEMONS[@]}"; do
        if pid="$(live_pid "$name")"; then
            stop_pid "$name" "$pid"
            say "stopped $name (pid $pid)"
            stopped=1
        elif [[ -e "$(pidfile "$name")" && "${1:-}" != quiet ]]; then
            say "$name was not running (stale $(pidfile "$name"))"
        fi
        rm -f "$(pidfile "$name")"
    done
    unlink_etc
    if ((stopped == 0)) && [[ "${1:-}" != quiet ]]; then
        say "nothing of ours was running ($DIR)"
    fi
    return 0
}

cmd_down() {
    resolve_dir
    if [[ ! -d "$DIR/run" ]]; then
        say "nothing to stop: $DIR/run does not exist"
        return 0
    fi
    stop_all
    say "down"
}

cmd_status() {
    resolve_dir
    local name pid up=1
    for name in munged slurmctld slurmd; do
        if pid="$(live_pid "$name")"; then
            say "$name running (pid $pid)"
        else
            say "$name not running"
            up=0
        fi
    done
    if ((up)); then
        slurm sinfo -N -o '%N %P %T %c %m %G' || true
        slurm scontrol show node "$NODE" | grep -E 'Gres=|CfgTRES' || true
        cmd_env_hint
        return 0
    fi
    return 3
}

cmd_env_hint() {
    say "SLURM commands reach it through $ETC_CONF (or: export SLURM_CONF=$CONF)"
    say "stop it with: $0 down $DIR"
}

cmd_env() {
    resolve_dir
    echo "export SLURM_CONF=$CONF"
}

cmd_prove() {
    cd "$PROJECT"
    ADJOINT_META_SLURM_PROOF=1 exec "${PYTHON:-python3}" -m pytest -q -p no:cacheprovider tests/test_slurm.py -rs
}

case "$CMD" in
    prove) cmd_prove ;;
    up) cmd_up ;;
    down) cmd_down ;;
    live) resolve_dir; daemons_live "$DIR" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    -h | --help | help) usage 0 ;;
    *) usage 2 ;;
esac
