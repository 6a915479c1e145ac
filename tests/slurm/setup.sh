#!/usr/bin/env bash
# A real single-node SLURM on this machine, for tests/test_slurm.py (Debian 12 or a
# similar apt-based system, run as root):
#   1. installs Debian's SLURM (slurmctld, slurmd, slurm-client) and munge with apt-get,
#      unless they are there already;
#   2. starts munged (as the munge user) unless a working one answers;
#   3. writes /etc/slurm/slurm.conf and /etc/slurm/gres.conf from the templates next to
#      this script: this machine's CPUs and RealMemory (from `slurmd -C`), one stand-in
#      GPU through gres (File=/dev/null), no accounting database;
#   4. starts slurmctld and slurmd unless they already run with this configuration
#      (after a configuration change, `scontrol shutdown` stops them first);
#   5. waits for the node to be idle and checks that a `--gpus=1` job runs on it.
# Safe to run again: each step does only what is missing. The daemons are left running.
# Exits non-zero with a message saying what failed.
set -euo pipefail

export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CONF_DIR=/etc/slurm
MARKER="Written by liverseg's tests/slurm/setup.sh"

say() { echo "setup.sh: $*"; }
die() {
    echo "setup.sh: ERROR: $*" >&2
    exit 1
}
log_tail() {  # the end of a daemon's log, to explain a failure
    [[ -f "$1" ]] && { echo "--- last lines of $1:"; tail -n 20 "$1"; } >&2 || true
}

[[ "$(id -u)" -eq 0 ]] || die "must run as root: it installs packages and starts munged, slurmctld and slurmd (try: sudo $0)"

# --- 1. packages -------------------------------------------------------------------------
missing=()
for tool in munged munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo srun; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get is not available, so SLURM and munge cannot be installed (missing: ${missing[*]})"
    say "installing slurmctld slurmd slurm-client munge (missing: ${missing[*]})"
    # keep the packages' service scripts from starting daemons with their default
    # configuration: this script starts them itself (policy-rc.d, as in containers)
    policy_rc=/usr/sbin/policy-rc.d
    own_policy=0
    if [[ ! -e "$policy_rc" ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
        chmod 755 "$policy_rc"
        own_policy=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    status=0
    {
        apt-get update -qq &&
            apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge
    } >/tmp/liverseg-slurm-apt.log 2>&1 || status=$?
    ((own_policy)) && rm -f "$policy_rc"
    if ((status)); then
        tail -n 30 /tmp/liverseg-slurm-apt.log >&2
        die "apt-get could not install slurmctld slurmd slurm-client munge (exit $status; log: /tmp/liverseg-slurm-apt.log)"
    fi
    for tool in "${missing[@]}"; do
        command -v "$tool" >/dev/null 2>&1 || die "'$tool' is still missing after installing the packages"
    done
fi
id munge >/dev/null 2>&1 || die "the 'munge' user does not exist (the munge package creates it)"
id slurm >/dev/null 2>&1 || die "the 'slurm' user does not exist (the slurm packages create it)"

# --- 2. munge ------------------------------------------------------------------------------
munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if munge_works; then
    say "munged is running"
else
    install -d -o munge -g munge -m 0700 /etc/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    install -d -o munge -g munge -m 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null 2>&1; then
            runuser -u munge -- mungekey --create --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    say "starting munged"
    # --force: a socket left behind by a munged that is gone does not block the start
    runuser -u munge -- munged --force || {
        log_tail /var/log/munge/munged.log
        die "munged did not start"
    }
    for _ in $(seq 1 50); do munge_works && break; sleep 0.2; done
    munge_works || {
        log_tail /var/log/munge/munged.log
        die "munged started but 'munge -n | unmunge' fails"
    }
fi

# --- 3. configuration ------------------------------------------------------------------------
HOST="$(hostname -s)"
[[ -n "$HOST" ]] || die "this machine has no host name"
NODE="$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=' || true)"
[[ "$NODE" == "NodeName=$HOST "* ]] ||
    die "'slurmd -C' did not describe this node (host $HOST): got '${NODE:-nothing}'"
[[ "$NODE" == *" CPUs="* && "$NODE" == *" RealMemory="* ]] ||
    die "'slurmd -C' gave no CPUs or RealMemory: '$NODE'"
for template in slurm.conf.in gres.conf.in; do
    [[ -f "$HERE/$template" ]] || die "template $HERE/$template is missing"
done
render() { sed -e "s|@HOST@|$HOST|g" -e "s|@NODE@|$NODE|g" "$HERE/$1"; }

mkdir -p "$CONF_DIR"
changed=0
for name in slurm.conf gres.conf; do
    target="$CONF_DIR/$name"
    new="$(render "$name.in")"
    if [[ -e "$target" ]] && ! grep -qF "$MARKER" "$target"; then
        die "$target exists and was not written by this script: refusing to replace a site's SLURM configuration"
    fi
    if [[ ! -e "$target" ]] || [[ "$(cat "$target")" != "$new" ]]; then
        printf '%s\n' "$new" >"$target.tmp"
        chmod 0644 "$target.tmp"
        mv "$target.tmp" "$target"
        changed=1
        say "wrote $target"
    fi
done
install -d -o slurm -g slurm -m 0755 /var/lib/slurm /var/lib/slurm/slurmctld /var/log/slurm
install -d -o root -g root -m 0755 /var/lib/slurm/slurmd

# --- 4. daemons ----------------------------------------------------------------------------
pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
ctld_up() { pid_alive /run/slurmctld.pid && scontrol ping 2>/dev/null | grep -q 'is UP'; }
slurmd_up() { pid_alive /run/slurmd.pid; }

if ((changed)) && { ctld_up || slurmd_up; }; then
    say "configuration changed: stopping the running SLURM daemons (scontrol shutdown)"
    scontrol shutdown >/dev/null 2>&1 || true
    for _ in $(seq 1 100); do
        pid_alive /run/slurmctld.pid || pid_alive /run/slurmd.pid || break
        sleep 0.2
    done
    ! pid_alive /run/slurmctld.pid && ! pid_alive /run/slurmd.pid ||
        die "the running slurmctld/slurmd did not stop after 'scontrol shutdown'"
fi
if ctld_up; then
    say "slurmctld is running"
else
    say "starting slurmctld"
    slurmctld || {
        log_tail /var/log/slurm/slurmctld.log
        die "slurmctld did not start"
    }
    for _ in $(seq 1 100); do ctld_up && break; sleep 0.2; done
    ctld_up || {
        log_tail /var/log/slurm/slurmctld.log
        die "slurmctld started but 'scontrol ping' does not answer"
    }
fi
if slurmd_up; then
    say "slurmd is running"
else
    say "starting slurmd"
    slurmd || {
        log_tail /var/log/slurm/slurmd.log
        die "slurmd did not start"
    }
fi

# --- 5. the node is up and takes a GPU job ------------------------------------------------------
node_state() { sinfo --noheader --nodes="$HOST" --Node --format=%T 2>/dev/null | head -n1; }
state=""
for _ in $(seq 1 150); do
    state="$(node_state)"
    case "$state" in
    idle | mixed | allocated | completing) break ;;
    down* | drain* | fail*)
        # a node that went down with an earlier configuration: bring it back
        scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
        ;;
    esac
    sleep 0.2
done
case "$state" in
idle | mixed | allocated | completing) ;;
*)
    log_tail /var/log/slurm/slurmd.log
    log_tail /var/log/slurm/slurmctld.log
    die "node $HOST did not become available (state: '${state:-unknown}'; see 'scontrol show node $HOST')"
    ;;
esac
srun_err="$(mktemp)"
trap 'rm -f "$srun_err"' EXIT
gpus="$(timeout 300 srun --quiet --nodes=1 --ntasks=1 --gpus=1 --time=2 --mem=100 \
    sh -c 'echo "${CUDA_VISIBLE_DEVICES:-none}"' 2>"$srun_err")" ||
    die "a test job with --gpus=1 did not run: $(cat "$srun_err")"
[[ "$gpus" == "0" ]] || die "a --gpus=1 job saw CUDA_VISIBLE_DEVICES='$gpus', expected '0'"
say "SLURM is up: node $HOST ($state), $(echo "$NODE" | grep -o 'CPUs=[0-9]*') $(echo "$NODE" | grep -o 'RealMemory=[0-9]*'), Gres=gpu:1 (stand-in)"
