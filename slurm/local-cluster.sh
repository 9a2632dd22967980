#!/usr/bin/env bash
# A throwaway single-node SLURM cluster (with accounting and 2 fake GPUs) for tests.
#
#   slurm/local-cluster.sh packages       Debian packages needed, on one line:
#       apt-get install -y --no-install-recommends $(slurm/local-cluster.sh packages)
#   sudo slurm/local-cluster.sh start     start it (idempotent)
#   eval "$(slurm/local-cluster.sh env)"  point sbatch, sacct, scontrol... at it (SLURM_CONF)
#   sudo slurm/local-cluster.sh status    daemons + sinfo; exit 1 unless healthy
#   sudo slurm/local-cluster.sh stop      stop the daemons, keep the state dir
#   sudo slurm/local-cluster.sh stop --purge   ... and remove the state dir
#
# Runs as root, without systemd or cgroups, and keeps to itself, so it runs beside a site's
# own SLURM and munge: everything lives under one folder, ${APPS_HPC_SLURM_DIR:-/tmp/apps-hpc-slurm}
# (its slurm.conf, gres.conf and slurmdbd.conf in etc/, its munge key and socket, the
# MariaDB data and socket, state, spool, logs, pid files, the fake GPU device files).
# Nothing is written to /etc; daemons get `-f etc/slurm.conf` and every client the script
# runs gets SLURM_CONF (slurmdbd finds slurmdbd.conf beside it). Ports: slurmctld
# ${APPS_HPC_SLURM_PORT:-16817}, slurmd the next one, slurmdbd the one after (a site's
# SLURM uses 6817-6819). Daemons listen on unix sockets and on 127.0.0.1 (on all interfaces,
# with a warning, if /etc/hosts does not map $(hostname) to 127.x: SLURM binds to that
# name's address or to none). Cluster "appshpc", one node ($(hostname -s)) with 4 CPUs and
# gpu:2, one partition "debug".
#
# Several nodes on this one machine: APPS_HPC_SLURM_NODES=N (default 1) starts N slurmd
# (`slurmd -N <node>`), nodes <host>-n1 ... <host>-nN, each with 4 CPUs, gpu:2, its own
# port (${APPS_HPC_SLURM_PORT:-16817} + 2 + i), spool folder, log and pid file; all of
# them have NodeAddr 127.0.0.1, which `scontrol show node` gives for the rendezvous.
set -euo pipefail

DIR=${APPS_HPC_SLURM_DIR:-/tmp/apps-hpc-slurm}
CLUSTER=appshpc
ETC=$DIR/etc
MARKER="# Written by apps-hpc slurm/local-cluster.sh"
PACKAGES="munge slurm-client slurmctld slurmd slurmdbd mariadb-server"
# Stop order; start order is the reverse.
DAEMONS=(slurmd slurmctld slurmdbd mariadbd munged)
WAIT_S=${APPS_HPC_SLURM_WAIT_S:-60}
PORT=${APPS_HPC_SLURM_PORT:-16817}
NODES=${APPS_HPC_SLURM_NODES:-1}

# The daemons and mknod live in /usr/sbin, which "su" (without -) leaves out of PATH.
export PATH=$PATH:/usr/sbin:/sbin
# Daemons and clients read this config, never /etc/slurm (nor a DNS SRV record).
export SLURM_CONF=$ETC/slurm.conf
# The MariaDB client library (mariadb CLI and slurmdbd's plugin) uses this socket.
export MYSQL_UNIX_PORT=$DIR/mysql/mysqld.sock
MUNGE_SOCKET=$DIR/munge/munge.socket
MUNGE_KEY=$DIR/munge/munge.key

die() {
    echo "local-cluster: error: $*" >&2
    exit 1
}

say() {
    echo "local-cluster: $*"
}

usage() {
    echo "usage: $0 {start|stop [--purge]|status|env|packages}" >&2
    exit 2
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (runs mknod, starts daemons as other users)"
}

# Root runs daemons from configs in $DIR and kills the PIDs recorded there: refuse a folder
# (e.g. a name in /tmp taken first) that another user could have written to.
check_dir_owner() {
    [[ -e $DIR ]] || return 0
    [[ -d $DIR && ! -L $DIR ]] || die "$DIR is not a folder"
    local owner mode
    read -r owner mode < <(stat -c '%u %a' "$DIR")
    if [[ $owner != 0 ]] || ((8#$mode & 8#022)); then
        die "$DIR belongs to uid $owner with mode $mode: it must be root's and writable" \
            "only by root (remove it, or set APPS_HPC_SLURM_DIR to another folder)"
    fi
}

check_port() {
    if ! [[ $PORT =~ ^[0-9]+$ ]] || ((PORT < 1024 || PORT > 65533)); then
        die "APPS_HPC_SLURM_PORT=$PORT: give a port from 1024 to 65533 (it uses 3 ports)"
    fi
    if ! [[ $NODES =~ ^[0-9]+$ ]] || ((NODES < 1 || NODES > 16)); then
        die "APPS_HPC_SLURM_NODES=$NODES: give a number of nodes from 1 to 16"
    fi
}

need_packages() {
    local missing=() cmd
    for cmd in munged mungekey mariadbd mariadb-install-db mariadb slurmdbd slurmctld slurmd \
        sbatch sacctmgr scontrol sinfo squeue scancel setpriv mknod hostname; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if ((${#missing[@]})); then
        die "missing commands: ${missing[*]}; install them with:" \
            "apt-get install -y --no-install-recommends $PACKAGES"
    fi
}

# --- pid bookkeeping --------------------------------------------------------------------

pid_of() {
    local f=$DIR/pids/$1.pid
    [[ -s $f ]] && cat "$f"
}

# True if the recorded PID of daemon $1 is alive and still runs that program.
alive() {
    local pid exe
    pid=$(pid_of "$1") || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    # Debian's /usr/sbin/slurmctld is a link to slurmctld-wlm (same for slurmd, slurmdbd).
    [[ $exe == "$(readlink -f "/usr/sbin/${1%%@*}")" ]]
}

# The node names: this host alone, or <host>-n1 ... <host>-nN (APPS_HPC_SLURM_NODES=N).
node_names() {
    local host=$1 i
    if ((NODES == 1)); then
        echo "$host"
        return
    fi
    for ((i = 1; i <= NODES; i++)); do
        echo "$host-n$i"
    done
}

# The slurmd daemons to start or stop: "slurmd", and one "slurmd@<node>" per started node.
slurmd_daemons() {
    local f
    if ((NODES == 1)); then
        echo slurmd
    fi
    for f in "$DIR"/pids/slurmd@*.pid; do
        [[ -e $f ]] && basename "$f" .pid
    done
    return 0
}

# NodeName lines: one node, or N nodes on this host, each with a port of its own.
node_lines() {
    local host=$1 mem=$2 name i=0
    if ((NODES == 1)); then
        echo "NodeName=$host NodeAddr=127.0.0.1 CPUs=4 RealMemory=$mem Gres=gpu:2 State=UNKNOWN"
        return
    fi
    for name in $(node_names "$host"); do
        i=$((i + 1))
        echo "NodeName=$name NodeHostname=$host NodeAddr=127.0.0.1 Port=$((PORT + 2 + i))" \
            "CPUs=4 RealMemory=$((mem / NODES)) Gres=gpu:2 State=UNKNOWN"
    done
}

# Start daemon $1 in the foreground mode of "$@" (after $1), detached, and record its PID.
launch() {
    local name=$1
    shift
    setsid "$@" </dev/null >>"$DIR/log/$name.out" 2>&1 &
    local pid=$! n=0
    echo "$pid" >"$DIR/pids/$name.pid"
    # The PID is that of a shell until setsid (and setpriv) exec the daemon.
    until alive "$name"; do
        if ! kill -0 "$pid" 2>/dev/null || ((++n > 100)); then
            tail_log "$DIR/log/$name.out"
            die "$name did not start (logs above)"
        fi
        sleep 0.05
    done
}

tail_log() {
    local f
    for f in "$@"; do
        [[ -s $f ]] || continue
        echo "--- last lines of $f:" >&2
        tail -n 15 "$f" >&2
    done
}

# wait_for NAME LOG... -- COMMAND: poll COMMAND until it succeeds, the daemon dies, or time out.
wait_for() {
    local name=$1 logs=()
    shift
    while [[ $1 != -- ]]; do
        logs+=("$1")
        shift
    done
    shift
    local deadline=$((SECONDS + WAIT_S))
    until "$@" >/dev/null 2>&1; do
        if ! alive "$name"; then
            tail_log "${logs[@]}"
            die "$name exited during start-up (logs above)"
        fi
        if ((SECONDS >= deadline)); then
            tail_log "${logs[@]}"
            die "$name not ready after ${WAIT_S}s (logs above)"
        fi
        sleep 0.5
    done
}

# --- configuration ----------------------------------------------------------------------

write_configs() {
    local node=$1 mem=$2 nodes slurmd_files
    nodes=$(node_names "$node" | paste -sd,)
    slurmd_files="SlurmdSpoolDir=$DIR/slurmd
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmdLogFile=$DIR/log/slurmd.log"
    if ((NODES > 1)); then
        slurmd_files="SlurmdSpoolDir=$DIR/slurmd/%n
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmdLogFile=$DIR/log/slurmd-%n.log"
    fi
    if [[ -e $ETC/slurm.conf ]] && ! grep -qF "$MARKER" "$ETC/slurm.conf"; then
        die "$ETC/slurm.conf exists and was not written by this script;" \
            "set APPS_HPC_SLURM_DIR to a folder of its own"
    fi
    install -d -m 755 "$DIR" "$ETC"

    # With NoInAddrAny/NoCtldInAddrAny, daemons and clients bind to the address that
    # gethostname() resolves to instead of to all interfaces: use them when /etc/hosts maps
    # the hostname to a loopback address (no DNS look-up: read the file itself).
    local host addr COMM_PARAMS
    host=$(hostname)
    addr=$(awk -v h="$host" '$1 ~ /^[0-9.]+$/ { for (i = 2; i <= NF && $i !~ /^#/; i++)
        if ($i == h) { print $1; exit } }' /etc/hosts)
    if [[ $addr == 127.* ]]; then
        COMM_PARAMS="# Bind to $addr (/etc/hosts: $host), not to all interfaces.
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny"
    else
        COMM_PARAMS="# $host is not a loopback name in /etc/hosts: bind to all interfaces."
        echo "local-cluster: warning: /etc/hosts does not map '$host' to 127.x, so slurmctld," \
            "slurmd and slurmdbd listen on all interfaces (ports $PORT-$((PORT + 2)))" >&2
    fi

    cat >"$ETC/slurm.conf.new" <<EOF
$MARKER: a throwaway test cluster.
# Clients: export SLURM_CONF=$ETC/slurm.conf
# State, logs and pid files are under $DIR.
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=10,socket=$MUNGE_SOCKET
# Connections to slurmdbd take their munge socket from here, not from AuthInfo.
AccountingStoragePass=$MUNGE_SOCKET
$COMM_PARAMS
StateSaveLocation=$DIR/slurmctld
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
$slurmd_files
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups here.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
MinJobAge=600
# More CPUs than the machine has, so that a few small jobs run at once.
SlurmdParameters=config_overrides
# Fast scheduling (a requeued job restarts in ~13 s instead of ~154 s).
SchedulerParameters=sched_interval=2,bf_interval=1
# Accounting: sacct must know final states (CANCELLED, ...).
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$((PORT + 2))
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/log/jobcomp.txt
GresTypes=gpu
$(node_lines "$node" "$mem")
PartitionName=debug Nodes=$nodes Default=YES MaxTime=INFINITE State=UP
EOF

    cat >"$ETC/gres.conf.new" <<EOF
$MARKER: two fake GPUs per node (dummy character devices, never opened).
NodeName=$nodes Name=gpu File=$DIR/dev/nvidia[0-1]
EOF

    (
        umask 077
        cat >"$ETC/slurmdbd.conf.new" <<EOF
$MARKER
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
$COMM_PARAMS
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$((PORT + 2))
SlurmUser=slurm
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StorageLoc=slurm_acct_db
EOF
    )
    chmod 644 "$ETC/slurm.conf.new" "$ETC/gres.conf.new"
    chmod 600 "$ETC/slurmdbd.conf.new"
    chown slurm:slurm "$ETC/slurmdbd.conf.new"
    local f
    for f in slurm.conf gres.conf slurmdbd.conf; do
        mv -f "$ETC/$f.new" "$ETC/$f"
    done
}

# --- start ------------------------------------------------------------------------------

# The nodes' states, each once: "idle", or e.g. "idle" and "unk" while one starts.
node_state() {
    sinfo -h -N -o %t 2>/dev/null | sort -u
}

node_count() {
    sinfo -h -N -o %N 2>/dev/null | sort -u | wc -l
}

# True if every line of $1 is one of the states in the regex $2.
all_states() {
    local line
    [[ -n $1 ]] || return 1
    while read -r line; do
        [[ $line =~ ^($2)$ ]] || return 1
    done <<<"$1"
}

healthy() {
    local d state
    for d in $(slurmd_daemons) "${DAEMONS[@]:1}"; do
        alive "$d" || return 1
    done
    scontrol ping >/dev/null 2>&1 || return 1
    [[ $(node_count) == "$NODES" ]] || return 1
    state=$(node_state) || return 1
    all_states "$state" 'idle|mix|alloc|comp'
}

make_dirs() {
    install -d -m 755 "$DIR"
    install -d -m 755 "$DIR/pids" "$DIR/slurmd" "$DIR/dev"
    local name
    if ((NODES > 1)); then
        for name in $(node_names "$(hostname -s)"); do
            install -d -m 755 "$DIR/slurmd/$name"
        done
    fi
    install -d -m 755 -o slurm -g slurm "$DIR/log" "$DIR/run"
    install -d -m 755 -o munge -g munge "$DIR/munge"
    install -d -m 755 -o mysql -g mysql "$DIR/mysql"
    local i
    for i in 0 1; do
        [[ -c $DIR/dev/nvidia$i ]] || mknod -m 666 "$DIR/dev/nvidia$i" c 195 "$i"
    done
}

start_munge() {
    if alive munged; then
        return
    fi
    # A key of its own: a site's munged (its /etc/munge/munge.key and /run/munge socket)
    # is neither used nor touched.
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating $MUNGE_KEY"
        mungekey --create --keyfile="$MUNGE_KEY"
        chown munge:munge "$MUNGE_KEY"
        chmod 400 "$MUNGE_KEY"
    fi
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    launch munged setpriv --reuid=munge --regid=munge --init-groups \
        /usr/sbin/munged --foreground --key-file="$MUNGE_KEY" \
        --socket="$MUNGE_SOCKET" --log-file="$DIR/munge/munged.log" \
        --pid-file="$DIR/munge/munged.pid" --seed-file="$DIR/munge/munged.seed"
    wait_for munged "$DIR/munge/munged.log" "$DIR/log/munged.out" -- test -S "$MUNGE_SOCKET"
}

mysql_root() {
    mariadb --no-defaults --socket="$MYSQL_UNIX_PORT" -u root "$@"
}

start_mariadb() {
    local fresh_state=$1
    if ! alive mariadbd; then
        if [[ ! -d $DIR/mysql/data/mysql ]]; then
            say "initialising the MariaDB data dir"
            rm -rf "$DIR/mysql/data"
            mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql/data" \
                --auth-root-authentication-method=socket --skip-test-db \
                >"$DIR/log/mariadb-install-db.out" 2>&1 \
                || {
                    tail_log "$DIR/log/mariadb-install-db.out"
                    die "mariadb-install-db failed"
                }
        fi
        rm -f "$MYSQL_UNIX_PORT"
        # slurmdbd still logs "not recommended values: innodb_buffer_pool_size": harmless.
        launch mariadbd /usr/sbin/mariadbd --no-defaults --user=mysql \
            --datadir="$DIR/mysql/data" --skip-networking --socket="$MYSQL_UNIX_PORT" \
            --pid-file="$DIR/mysql/mariadbd.pid" --log-error="$DIR/mysql/mariadbd.err" \
            --innodb-buffer-pool-size=256M --innodb-lock-wait-timeout=900 \
            --innodb-flush-log-at-trx-commit=2
        wait_for mariadbd "$DIR/mysql/mariadbd.err" "$DIR/log/mariadbd.out" -- \
            mysql_root -e 'SELECT 1'
    fi
    # slurmdbd runs as "slurm" and logs in over the socket as that OS user, no password.
    mysql_root -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED VIA unix_socket;
        GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
    if [[ $fresh_state == 1 ]] && ! alive slurmdbd; then
        # New slurmctld state: job ids restart at 1, so old accounting rows must go.
        mysql_root -e 'DROP DATABASE IF EXISTS slurm_acct_db'
    fi
}

start_slurmdbd() {
    if ! alive slurmdbd; then
        launch slurmdbd /usr/sbin/slurmdbd -D
    fi
    wait_for slurmdbd "$DIR/log/slurmdbd.log" "$DIR/log/slurmdbd.out" -- \
        sacctmgr -n list cluster
    if ! sacctmgr -n -P list cluster format=Cluster | grep -qx "$CLUSTER"; then
        sacctmgr -i add cluster "$CLUSTER" >/dev/null
    fi
}

node_ready() {
    [[ $(node_count) == "$NODES" ]] && all_states "$(node_state)" 'idle|mix|alloc'
}

start_slurmds() {
    local node=$1 name
    if ((NODES == 1)); then
        alive slurmd || launch slurmd /usr/sbin/slurmd -D -f "$SLURM_CONF"
        return
    fi
    for name in $(node_names "$node"); do
        alive "slurmd@$name" \
            || launch "slurmd@$name" /usr/sbin/slurmd -D -N "$name" -f "$SLURM_CONF"
    done
}

start() {
    need_root
    check_dir_owner
    check_port
    need_packages
    if healthy; then
        say "already running and healthy (state dir $DIR)"
        exit 0
    fi
    local t0=$SECONDS node mem total fresh_state=0
    node=$(hostname -s)
    # slurmd -C only prints this machine's hardware: it reads no config and talks to no one.
    total=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    [[ $total =~ ^[0-9]+$ ]] || die "cannot read RealMemory from 'slurmd -C'"
    mem=$((total * 9 / 10))
    [[ -d $DIR/slurmctld ]] || fresh_state=1

    # The configs first: a slurm client without one looks up the controller in DNS.
    write_configs "$node" "$mem"
    make_dirs
    install -d -m 700 -o slurm -g slurm "$DIR/slurmctld"
    cd "$DIR" # the daemons' working directory: not the caller's

    start_munge
    start_mariadb "$fresh_state"
    start_slurmdbd
    if ! alive slurmctld; then
        launch slurmctld /usr/sbin/slurmctld -D -f "$SLURM_CONF"
    fi
    wait_for slurmctld "$DIR/log/slurmctld.log" "$DIR/log/slurmctld.out" -- scontrol ping
    start_slurmds "$node"
    local first
    first=$(slurmd_daemons | head -n 1)
    wait_for "$first" "$DIR"/log/slurmd*.log "$DIR"/log/slurmd*.out "$DIR/log/slurmctld.log" -- \
        node_ready
    say "started in $((SECONDS - t0))s: cluster $CLUSTER, $NODES node(s)" \
        "$(node_names "$node" | paste -sd,) (CPUs=4, gpu:2 each), partition debug," \
        "port $PORT; state dir $DIR"
    say "clients need: export SLURM_CONF=$SLURM_CONF   (or: eval \"\$($0 env)\")"
}

# The line that points a shell's sbatch, sacct, scontrol, submitit... at this cluster.
print_env() {
    [[ -e $SLURM_CONF ]] || say "not started yet: $SLURM_CONF does not exist" >&2
    printf 'export SLURM_CONF=%q\n' "$SLURM_CONF"
}

# --- stop / status ----------------------------------------------------------------------

stop_daemon() {
    local name=$1 pid deadline
    if ! alive "$name"; then
        rm -f "$DIR/pids/$name.pid"
        return
    fi
    pid=$(pid_of "$name")
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + 30))
    while alive "$name"; do
        if ((SECONDS >= deadline)); then
            say "$name (pid $pid) ignored SIGTERM for 30s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$((SECONDS + 10))
        fi
        sleep 0.2
    done
    rm -f "$DIR/pids/$name.pid"
    say "stopped $name (pid $pid)"
}

stop() {
    local purge=0
    case ${1:-} in
        "") ;;
        --purge) purge=1 ;;
        *) usage ;;
    esac
    need_root
    check_dir_owner
    if ((purge)) && alive slurmctld && [[ -e $SLURM_CONF ]]; then
        # Leave no job steps behind in a state dir that is about to disappear.
        local ids
        ids=$(squeue -h -o %A 2>/dev/null | tr '\n' ' ') || true
        if [[ -n ${ids// /} ]]; then
            # shellcheck disable=SC2086 # one argument per job id
            scancel $ids 2>/dev/null || true
            local deadline=$((SECONDS + 15))
            while [[ -n $(squeue -h -t R,CG -o %A 2>/dev/null) ]] && ((SECONDS < deadline)); do
                sleep 0.5
            done
        fi
    fi
    local d
    for d in $(slurmd_daemons) "${DAEMONS[@]:1}"; do
        stop_daemon "$d"
    done
    if ((purge)); then
        rm -rf "$DIR"
        say "removed $DIR"
    fi
}

status() {
    need_root
    check_dir_owner
    local d rc=0
    for d in $(slurmd_daemons) "${DAEMONS[@]:1}"; do
        if alive "$d"; then
            printf '%-10s running (pid %s)\n' "$d" "$(pid_of "$d")"
        else
            printf '%-10s NOT running\n' "$d"
            rc=1
        fi
    done
    if [[ -e $SLURM_CONF ]] && alive slurmctld; then
        sinfo || rc=1
    fi
    if ((rc == 0)) && healthy; then
        say "healthy (state dir $DIR)"
    else
        say "NOT healthy (state dir $DIR)"
        rc=1
    fi
    return "$rc"
}

case ${1:-} in
    start) start ;;
    stop)
        shift
        stop "$@"
        ;;
    status) status ;;
    env) print_env ;;
    packages) echo "$PACKAGES" ;;
    *) usage ;;
esac
