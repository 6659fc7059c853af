#!/usr/bin/env bash
# A cluster of N hosts on this one machine, for the multi-host tests (tests/cluster/) and the
# cluster benchmark (benchmarks/cluster_scaling.py).
#
#   scripts/testcluster.sh up N         make hosts h1..hN (replaces a cluster already up)
#   scripts/testcluster.sh down         remove everything `up` made (safe to repeat)
#   scripts/testcluster.sh status       the hosts, their addresses and sshd processes
#   scripts/testcluster.sh exec HOST CMD [ARG...]
#                                       run CMD on HOST (its network, /etc and local disk),
#                                       in the current directory, with the current environment
#   scripts/testcluster.sh kill HOST    power HOST off: cut its link, then SIGKILL its processes
#   scripts/testcluster.sh cut HOST     set HOST's link down (its processes keep running)
#   scripts/testcluster.sh mend HOST    set HOST's link up again
#   scripts/testcluster.sh limit RATE   limit every host's link to RATE (tc tbf: 1gbit, 10gbit)
#                                       in both directions; `limit none` removes the limit
#
# Each host is a network namespace (fnn-hK) whose eth0 is one end of a veth pair; the other end
# sits on a bridge (fnn-br) in the root namespace, which has the first address of the subnet so
# that this namespace can reach every host too.  Each host runs its own sshd (openssh-server,
# installed from the OS packages when missing) with its own host name (a UTS namespace), its own
# generated host key and key-based root login, listening on its own address only.
# `ip netns exec` binds /etc/netns/fnn-hK/{hosts,ssh} over /etc/hosts and /etc/ssh for
# everything started in the host, so every host has its own /etc/hosts (naming all hosts) and
# its own /etc/ssh (host key, client key, known hosts) while this machine's files stay
# untouched.  The file system is shared (it plays NFS): the project is at the same path on every
# host.  Only $FASTNN_CLUSTER_STATE/local differs: each host mounts its own tmpfs there (its
# private local disk, seen by its sshd and everything started through it), so "a file only on
# h1" can be made real.
#
# Needs root (network namespaces).  Everything is named with the prefix fnn- and the private
# subnet 10.77.16.0/24 (FASTNN_CLUSTER_SUBNET=10.x.y to change it).
set -euo pipefail

PREFIX=fnn
SUBNET=${FASTNN_CLUSTER_SUBNET:-10.77.16}
STATE=${FASTNN_CLUSTER_STATE:-/tmp/fastnn-testcluster}
LOCAL=$STATE/local
BRIDGE=$PREFIX-br
MAX_HOSTS=40

die() { echo "testcluster: $*" >&2; exit 1; }
say() { echo "testcluster: $*" >&2; }

need_root() {
  [ "$(id -u)" = 0 ] || die "needs root to make network namespaces (run as root, or skip the multi-host tests)"
}

ns_of() { echo "$PREFIX-$1"; }                 # h2 -> fnn-h2
index_of() {                                   # h2 -> 2
  [[ $1 =~ ^h([0-9]+)$ ]] || die "no host '$1': hosts are named h1..hN"
  echo "${BASH_REMATCH[1]}"
}
addr_of() { echo "$SUBNET.$((10 + $(index_of "$1")))"; }
veth_of() { echo "$PREFIX-v$(index_of "$1")"; }

host_exists() { ip netns list | awk '{print $1}' | grep -qx "$(ns_of "$1")"; }
up_hosts() { ip netns list | awk '{print $1}' | sed -n "s/^$PREFIX-\(h[0-9]\+\)$/\1/p" | sort -V; }

sshd_pid() {
  local f=$STATE/$1.sshd.pid
  [ -s "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

# ---------------------------------------------------------------------------------- install
# What the cluster needs, by the Debian package that provides it.
PACKAGES="ip:iproute2 tc:iproute2 ssh:openssh-client ssh-keygen:openssh-client
          /usr/sbin/sshd:openssh-server nsenter:util-linux unshare:util-linux mount:mount"

install_missing() {
  local entry tool pkg missing=()
  for entry in $PACKAGES; do
    tool=${entry%%:*}; pkg=${entry#*:}
    command -v "$tool" >/dev/null || [[ " ${missing[*]:-} " == *" $pkg "* ]] || missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return 0
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get: install them by hand"
  say "installing ${missing[*]} (apt-get)"
  # The packages must not start a system-wide sshd here: policy-rc.d (exit 101) forbids service
  # starts during the install; one we add is removed again.
  local added_policy=0 log ok=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
  fi
  log=$(mktemp)
  export DEBIAN_FRONTEND=noninteractive
  # Package lists may be stale on a fresh machine: update once if the first try fails.
  if apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
     || { apt-get update -q >>"$log" 2>&1 \
          && apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; }; then
    ok=1
  fi
  [ $added_policy = 1 ] && rm -f /usr/sbin/policy-rc.d
  if [ $ok != 1 ]; then tail -20 "$log" >&2; rm -f "$log"; die "apt-get could not install ${missing[*]}"; fi
  rm -f "$log"
  for entry in $PACKAGES; do
    command -v "${entry%%:*}" >/dev/null || die "still no ${entry%%:*} after installing ${entry#*:}"
  done
}

# ---------------------------------------------------------------------------------- down
cmd_down() {
  need_root
  local h ns pids pid
  for h in $(up_hosts); do
    ns=$(ns_of "$h")
    # Everything still running in the host (sshd, sessions, workers) goes with it.
    pids=$(ip netns pids "$ns" 2>/dev/null || true)
    [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
  for pid in $(cat "$STATE"/*.sshd.pid 2>/dev/null || true); do kill -9 "$pid" 2>/dev/null || true; done
  local link
  for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | sed 's/@.*//' \
                | grep -E "^$PREFIX-(v[0-9]+|br)$" || true); do
    ip link del "$link" 2>/dev/null || true
  done
  rm -rf /etc/netns/"$PREFIX"-h*
  rmdir /etc/netns 2>/dev/null || true        # only when empty: someone else's stay
  if [ -e "$STATE/made-run-sshd" ]; then rmdir /run/sshd 2>/dev/null || true; fi
  if [ -d "$STATE" ]; then
    umount "$LOCAL" 2>/dev/null || true        # never mounted here, but never delete into a mount
    rm -rf "$STATE"
  fi
}

# ---------------------------------------------------------------------------------- up
write_host_files() {  # host n
  local h=$1 n=$2 ns etc k
  ns=$(ns_of "$h"); etc=/etc/netns/$ns
  mkdir -p "$etc/ssh"
  {
    echo "127.0.0.1 localhost"
    for k in $(seq 1 "$n"); do echo "$SUBNET.$((10 + k)) h$k"; done
  } > "$etc/hosts"
  ssh-keygen -q -t ed25519 -N '' -C "$h host key" -f "$etc/ssh/ssh_host_ed25519_key"
  cp "$STATE/id_ed25519" "$STATE/id_ed25519.pub" "$etc/ssh/"
  cp "$STATE/id_ed25519.pub" "$etc/ssh/authorized_keys"
  cat > "$etc/ssh/sshd_config" <<EOF
# sshd of test host $h (scripts/testcluster.sh)
ListenAddress $(addr_of "$h")
Port 22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile $STATE/$h.sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PrintMotd no
# horovodrun opens one session per worker and a few checks at once
MaxStartups 64:30:128
MaxSessions 64
EOF
  cat > "$etc/ssh/ssh_config" <<EOF
# ssh client of test host $h (scripts/testcluster.sh): the cluster key, every host's key known
Host *
  IdentityFile /etc/ssh/id_ed25519
  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts
  UserKnownHostsFile /etc/ssh/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
EOF
}

cmd_up() {
  need_root
  local n=${1:-}
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_HOSTS ] \
    || die "usage: $0 up N   (1 <= N <= $MAX_HOSTS hosts)"
  install_missing
  cmd_down                                      # a cluster left over is replaced
  # From here on a failure (or Ctrl-C) removes whatever was made.
  UP_DONE=0
  trap '[ "$UP_DONE" = 1 ] || { say "up failed; tearing down"; cmd_down; }' EXIT
  trap 'exit 130' INT TERM
  ip netns add "$PREFIX-probe" 2>/dev/null || die "cannot make network namespaces here (ip netns add failed)"
  ip netns del "$PREFIX-probe"
  if ip route show | grep -q "^$SUBNET\.0/"; then
    die "subnet $SUBNET.0/24 is already routed on this machine; set FASTNN_CLUSTER_SUBNET=10.x.y"
  fi

  mkdir -p "$STATE" "$LOCAL"
  chmod 700 "$STATE"
  if [ ! -d /run/sshd ]; then mkdir -p /run/sshd && touch "$STATE/made-run-sshd"; fi
  ssh-keygen -q -t ed25519 -N '' -C "fastnn test cluster" -f "$STATE/id_ed25519"

  ip link add "$BRIDGE" type bridge
  ip addr add "$SUBNET.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up

  local k h ns veth
  for k in $(seq 1 "$n"); do
    h=h$k; ns=$(ns_of "$h"); veth=$(veth_of "$h")
    ip netns add "$ns"
    ip link add "$veth" type veth peer name "$PREFIX-p$k"
    ip link set "$PREFIX-p$k" netns "$ns"
    ip -n "$ns" link set "$PREFIX-p$k" name eth0
    ip -n "$ns" addr add "$(addr_of "$h")/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip link set "$veth" master "$BRIDGE"
    ip link set "$veth" up
    write_host_files "$h" "$n"
  done
  # Every host knows every host's key, under its name and its address.
  local known
  known=$(for k in $(seq 1 "$n"); do
    echo "h$k,$SUBNET.$((10 + k)) $(cut -d' ' -f1,2 "/etc/netns/$(ns_of "h$k")/ssh/ssh_host_ed25519_key.pub")"
  done)
  for k in $(seq 1 "$n"); do
    echo "$known" > "/etc/netns/$(ns_of "h$k")/ssh/ssh_known_hosts"
    : > "/etc/netns/$(ns_of "h$k")/ssh/known_hosts"
  done
  for k in $(seq 1 "$n"); do
    h=h$k
    # `ip netns exec` gives the command a mount namespace of its own (with /etc/netns/<ns>/*
    # bound over /etc); the host's local disk is a tmpfs mounted there, so only this sshd and
    # the sessions it starts see it.
    # A UTS namespace gives the host its own name (`hostname` says h1, as on a real machine).
    ip netns exec "$(ns_of "$h")" unshare --uts sh -c \
      "hostname $h && mount -t tmpfs -o size=256m,mode=0755 fastnn-local-$h '$LOCAL' && exec /usr/sbin/sshd -f /etc/ssh/sshd_config -E '$STATE/$h.sshd.log'"
  done
  for k in $(seq 1 "$n"); do
    local tries=0
    until sshd_pid "h$k" >/dev/null; do
      tries=$((tries + 1))
      [ $tries -lt 50 ] || { cat "$STATE/h$k.sshd.log" >&2 || true; die "sshd of h$k did not start"; }
      sleep 0.1
    done
  done
  # The recipe's first check: password-less ssh from the launching host to every host by name.
  for k in $(seq 1 "$n"); do
    cmd_exec h1 ssh "h$k" true || die "ssh from h1 to h$k failed (see $STATE/h$k.sshd.log)"
  done
  UP_DONE=1
  say "up: $n host(s) $(seq -s' ' -f 'h%g' 1 "$n") on $SUBNET.0/24 (bridge $BRIDGE, $SUBNET.1 here); interface eth0; local disk $LOCAL"
}

# ---------------------------------------------------------------------------------- use
cmd_exec() {
  local h=${1:-}; shift || true
  [ -n "$h" ] && [ $# -gt 0 ] || die "usage: $0 exec HOST CMD [ARG...]"
  host_exists "$h" || die "host $h is not up (scripts/testcluster.sh up N)"
  local pid
  pid=$(sshd_pid "$h") || die "the sshd of $h is not running (killed?); run 'up' again"
  # The sshd's namespaces are the host: its network, name, /etc (hosts, ssh) and local disk.
  nsenter -t "$pid" -n -m -u -- sh -c 'cd "$0" && exec "$@"' "$PWD" "$@"
}

cmd_cut() {
  host_exists "$1" || die "host $1 is not up"
  ip link set "$(veth_of "$1")" down
}

cmd_mend() {
  host_exists "$1" || die "host $1 is not up"
  ip link set "$(veth_of "$1")" up
}

cmd_kill() {
  host_exists "$1" || die "host $1 is not up"
  # A machine that loses power sends nothing more: cut the link first, so that no FIN or RST
  # from its dying processes reaches the others.
  cmd_cut "$1"
  local pids
  pids=$(ip netns pids "$(ns_of "$1")" || true)
  [ -n "$pids" ] && kill -9 $pids 2>/dev/null || true
  rm -f "$STATE/$1.sshd.pid"
}

rate_bits() {  # 1gbit, 500mbit, 10gbit -> bits per second
  [[ $1 =~ ^([0-9]+)(k|m|g)?bit$ ]] || die "rate must look like 100mbit, 1gbit or 10gbit, got '$1'"
  local mult=1
  case ${BASH_REMATCH[2]} in k) mult=1000 ;; m) mult=1000000 ;; g) mult=1000000000 ;; esac
  echo $((BASH_REMATCH[1] * mult))
}

cmd_limit() {
  local rate=${1:-} h bits burst
  [ -n "$rate" ] || die "usage: $0 limit RATE|none"
  for h in $(up_hosts); do
    if [ "$rate" = none ]; then
      tc qdisc del dev "$(veth_of "$h")" root 2>/dev/null || true
      ip netns exec "$(ns_of "$h")" tc qdisc del dev eth0 root 2>/dev/null || true
      continue
    fi
    bits=$(rate_bits "$rate")
    # tbf's bucket must hold what arrives in one timer tick plus a full 64 KB GSO packet.
    burst=$((bits / 8 / 250 + 65536))
    # The root end's egress is the host's ingress; the host's eth0 egress is its upload.
    tc qdisc replace dev "$(veth_of "$h")" root tbf rate "$rate" burst "$burst" latency 50ms
    ip netns exec "$(ns_of "$h")" tc qdisc replace dev eth0 root tbf rate "$rate" burst "$burst" latency 50ms
  done
}

cmd_status() {
  local h
  for h in $(up_hosts); do
    echo "$h $(addr_of "$h") netns $(ns_of "$h") link $(cat "/sys/class/net/$(veth_of "$h")/operstate" 2>/dev/null || echo gone) sshd $(sshd_pid "$h" || echo none)"
  done
}

case ${1:-} in
  up) need_root; cmd_up "${2:-}" ;;
  down) cmd_down; say "down" ;;
  status) cmd_status ;;
  exec) need_root; shift; cmd_exec "$@" ;;
  kill) need_root; cmd_kill "${2:?host}" ;;
  cut) need_root; cmd_cut "${2:?host}" ;;
  mend) need_root; cmd_mend "${2:?host}" ;;
  limit) need_root; cmd_limit "${2:-}" ;;
  *) sed -n '2,15s/^# \{0,1\}//p' "$0" >&2; exit 2 ;;
esac
