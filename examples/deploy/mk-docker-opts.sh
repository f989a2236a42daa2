#!/bin/sh
# mk-docker-opts.sh: Docker daemon options from weft's (flanneld's) subnet.env, like
# flannel's script of the same name: --bip (the bridge address and prefix), --mtu, and
# --ip-masq=false when the agent masquerades itself (FLANNEL_IPMASQ=true), so that traffic
# is not NATed twice and container-to-container traffic across hosts keeps its source.
#
# Unlike flannel's, it never sources or evals the file: every line is parsed as KEY=VALUE and
# the values it uses are checked (an IPv4 address/prefix, a number, true/false) before they
# are written out. Anything else is an error naming the file and line, and nothing is written.
# POSIX sh; no bashisms.

set -eu

PROG=mk-docker-opts.sh
subnet_file=/run/flannel/subnet.env
out=/run/docker_opts.env
key=DOCKER_OPTS
combined=false
individual=false
with_ipmasq=true
wait_secs=0

usage() {
	cat <<EOF
Usage: $PROG [-f SUBNET_ENV] [-d OUTPUT] [-k KEY] [-c] [-i] [-m] [-w SECONDS]

Writes Docker daemon options derived from the agent's subnet.env.

  -f FILE   subnet.env to read (default /run/flannel/subnet.env)
  -d FILE   file to write, replaced atomically (default /run/docker_opts.env); - for stdout
  -k KEY    name of the combined variable (default DOCKER_OPTS)
  -c        write only the combined variable, KEY="--bip=... [--ip-masq=false] --mtu=..."
  -i        write only the individual ones: DOCKER_OPT_BIP, DOCKER_OPT_IPMASQ, DOCKER_OPT_MTU
            (without -c or -i, both are written)
  -m        never write --ip-masq
  -w SECS   wait up to SECS seconds for FILE to appear (the agent writes it once it holds
            a lease)
  -h        this help
EOF
}

die() {
	printf '%s: %s\n' "$PROG" "$*" >&2
	exit 1
}

# A decimal number without sign or leading zeros, at most $2 digits.
is_number() {
	case $1 in
	'' | *[!0-9]* | 0?*) return 1 ;;
	esac
	[ "${#1}" -le "$2" ]
}

# a.b.c.d/n with four octets 0..255 and n 0..32.
is_ipv4_prefix() {
	addr=${1%/*}
	len=${1#*/}
	[ "$addr" != "$1" ] || return 1
	is_number "$len" 2 && [ "$len" -le 32 ] || return 1
	# Only digits and single dots from here on, so the split below cannot glob.
	case $addr in
	*[!0-9.]* | .* | *. | *..*) return 1 ;;
	esac
	saved_ifs=$IFS
	IFS=.
	# shellcheck disable=SC2086
	set -- $addr
	IFS=$saved_ifs
	[ "$#" -eq 4 ] || return 1
	for octet in "$@"; do
		is_number "$octet" 3 && [ "$octet" -le 255 ] || return 1
	done
}

while getopts 'f:d:k:cimw:h' opt; do
	case $opt in
	f) subnet_file=$OPTARG ;;
	d) out=$OPTARG ;;
	k) key=$OPTARG ;;
	c) combined=true ;;
	i) individual=true ;;
	m) with_ipmasq=false ;;
	w) wait_secs=$OPTARG ;;
	h)
		usage
		exit 0
		;;
	*)
		usage >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
if [ "$#" -ne 0 ]; then
	usage >&2
	exit 2
fi
if [ "$combined" = false ] && [ "$individual" = false ]; then
	combined=true
	individual=true
fi
case $key in
'' | [!A-Za-z_]* | *[!A-Za-z0-9_]*) die "-k: not a variable name (letters, digits and _)" ;;
esac
is_number "$wait_secs" 5 || die "-w: not a number of seconds"
[ "$out" = - ] || [ ! -d "$out" ] || die "-d: $out is a directory"

waited=0
while [ ! -e "$subnet_file" ] && [ "$waited" -lt "$wait_secs" ]; do
	sleep 1
	waited=$((waited + 1))
done
[ -f "$subnet_file" ] && [ -r "$subnet_file" ] || die "$subnet_file: no such readable file"
# A NUL byte would be dropped silently by some shells' read: refuse the file instead.
[ "$(tr -d '\000' <"$subnet_file" | wc -c)" -eq "$(wc -c <"$subnet_file")" ] || die "$subnet_file: contains NUL bytes"

subnet=
mtu=
ipmasq=
lineno=0
while IFS= read -r line || [ -n "$line" ]; do
	lineno=$((lineno + 1))
	at="$subnet_file:$lineno"
	case $line in
	'' | '#'*) continue ;;
	esac
	name=${line%%=*}
	value=${line#*=}
	[ "$name" != "$line" ] || die "$at: not a KEY=VALUE line"
	case $name in
	'' | [!A-Z_]* | *[!A-Z0-9_]*) die "$at: not a variable name" ;;
	esac
	# Values are never printed: they may hold anything, terminal escapes included.
	case $name in
	FLANNEL_SUBNET)
		[ -z "$subnet" ] || die "$at: FLANNEL_SUBNET given twice"
		is_ipv4_prefix "$value" || die "$at: FLANNEL_SUBNET is not an IPv4 address/prefix"
		subnet=$value
		;;
	FLANNEL_MTU)
		[ -z "$mtu" ] || die "$at: FLANNEL_MTU given twice"
		is_number "$value" 5 && [ "$value" -ge 68 ] && [ "$value" -le 65535 ] || die "$at: FLANNEL_MTU is not a number from 68 to 65535"
		mtu=$value
		;;
	FLANNEL_IPMASQ)
		[ -z "$ipmasq" ] || die "$at: FLANNEL_IPMASQ given twice"
		case $value in
		true | false) ipmasq=$value ;;
		*) die "$at: FLANNEL_IPMASQ is not true or false" ;;
		esac
		;;
	FLANNEL_NETWORK)
		is_ipv4_prefix "$value" || die "$at: FLANNEL_NETWORK is not an IPv4 address/prefix"
		;;
	FLANNEL_IPV6_NETWORK | FLANNEL_IPV6_SUBNET)
		# Not used for Docker's options here; still only what an IPv6 prefix can hold.
		case $value in
		'' | *[!0-9a-fA-F:./]*) die "$at: $name is not an IPv6 address/prefix" ;;
		esac
		;;
	*) ;; # a line from a newer agent: not needed for Docker's options
	esac
done <"$subnet_file"
[ -n "$subnet" ] || die "$subnet_file: no FLANNEL_SUBNET"
[ -n "$mtu" ] || die "$subnet_file: no FLANNEL_MTU"

bip="--bip=$subnet"
mtu_opt="--mtu=$mtu"
masq_opt=
if [ "$ipmasq" = true ] && [ "$with_ipmasq" = true ]; then
	masq_opt=--ip-masq=false
fi

# Every value below was checked above: nothing in it needs escaping inside double quotes.
emit() {
	if [ "$individual" = true ]; then
		printf 'DOCKER_OPT_BIP="%s"\n' "$bip"
		printf 'DOCKER_OPT_IPMASQ="%s"\n' "$masq_opt"
		printf 'DOCKER_OPT_MTU="%s"\n' "$mtu_opt"
	fi
	if [ "$combined" = true ]; then
		printf '%s="%s%s %s"\n' "$key" "$bip" "${masq_opt:+ $masq_opt}" "$mtu_opt"
	fi
}

if [ "$out" = - ]; then
	emit
	exit 0
fi
# Written beside the target and renamed over it, so a reader never sees half a file.
tmp="$out.tmp.$$"
umask 022
(
	set -C
	: >"$tmp"
) 2>/dev/null || die "$tmp: cannot create"
if ! emit >"$tmp" || ! mv -f "$tmp" "$out"; then
	rm -f "$tmp"
	die "$out: cannot write"
fi
