#!/usr/bin/env bash
# make demo — the main job in one command.
#
# Starts recforkd (userspace data plane without root; with root the automatic
# choice, eBPF when it loads) with its built-in SRS and the embedded default
# app, a callee that answers with an 880 Hz tone, and places CALLS calls that
# send a 440 Hz tone. The app answers each call, records both directions over
# SIPREC and bridges the caller to the callee. Mid-call, the inbound direction
# of one call is muted through recforkctl (the same SIPREC path as a CCXML
# bvr.record: fork inactive, then a=inactive re-INVITE) and unmuted again.
# After the hang-up it checks the WAV files the SRS wrote: audio present in
# every stream, the right tone per direction, the muted window silent in the
# muted stream and nowhere else, and nothing left in the data plane. Mid-call
# it asks recforkd which path carries each call's media (recforkctl calls
# --paths): with the eBPF engine the kernel relays a joined call both ways
# and clones its copies; the first call offers RFC 4733 telephone-event, so
# recforkd taps its RTP for DTMF: the tap's relay is userspace (it takes the
# event packets only) and the caller's audio still goes through the kernel.
# Exit 0 only if all of that held.
set -euo pipefail
cd "$(dirname "$0")/.."

CALLS=${CALLS:-3}
DURATION=${DURATION:-9}   # seconds of media per call
DTMF_CALLS=${DTMF_CALLS:-1} # how many calls offer telephone-event
MUTE_AT=${MUTE_AT:-3}     # seconds into the calls
MUTE_FOR=${MUTE_FOR:-3}   # seconds muted
BIN=./bin
CTL="$BIN/recforkctl"
work=$(mktemp -d "${TMPDIR:-/tmp}/recfork-demo.XXXXXX")
admin="$work/admin.sock"
pids=()

cleanup() {
	local p
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

fail() {
	echo "demo: FAIL: $*" >&2
	echo "demo: logs and files are in $work" >&2
	tail -n 20 "$work/recforkd.log" >&2 2>/dev/null || true
	exit 1
}

# val KEY FILE: the values of a "key": value field of indented JSON, one a line.
val() { sed -n "s/^ *\"$1\": \"\{0,1\}\([^\",]*\)\"\{0,1\},\{0,1\}$/\1/p" "$2"; }

# wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds.
wait_for() {
	local secs=$1 what=$2 i
	shift 2
	for ((i = 0; i < secs * 20; i++)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.05
	done
	fail "timed out waiting for $what"
}

# Without root everything runs on loopback with the userspace data plane.
# With root the parties, the platform and the SRS each get a network
# namespace joined by veth pairs, so the eBPF data plane can fork (it clones
# copies out of a real interface to a remote recorder; it cannot on loopback).
netns=0
if [ "$(id -u)" = 0 ] && [ "${DATAPLANE:-auto}" != userspace ] && command -v ip >/dev/null; then
	netns=1
fi
ns_names=()
cleanup_ns() {
	local n
	for n in "${ns_names[@]}"; do ip netns delete "$n" 2>/dev/null || true; done
}
trap 'cleanup; cleanup_ns' EXIT

if [ "$netns" = 1 ]; then
	tag="rfd$$"
	ns_c="${tag}c" ns_p="${tag}p" ns_s="${tag}s"
	for n in "$ns_c" "$ns_p" "$ns_s"; do
		ip netns add "$n"
		ns_names+=("$n")
		ip -n "$n" link set lo up
	done
	ip link add "${tag}a" netns "$ns_c" type veth peer name "${tag}b" netns "$ns_p"
	ip link add "${tag}c" netns "$ns_s" type veth peer name "${tag}d" netns "$ns_p"
	ip -n "$ns_c" addr add 10.203.1.1/24 dev "${tag}a"
	ip -n "$ns_p" addr add 10.203.1.2/24 dev "${tag}b"
	ip -n "$ns_s" addr add 10.203.2.1/24 dev "${tag}c"
	ip -n "$ns_p" addr add 10.203.2.2/24 dev "${tag}d"
	ip -n "$ns_c" link set "${tag}a" up
	ip -n "$ns_p" link set "${tag}b" up
	ip -n "$ns_s" link set "${tag}c" up
	ip -n "$ns_p" link set "${tag}d" up
	ip -n "$ns_c" route add default via 10.203.1.2
	ip -n "$ns_s" route add default via 10.203.2.2
	in_parties=(ip netns exec "$ns_c")
	in_platform=(ip netns exec "$ns_p")
	in_srs=(ip netns exec "$ns_s")
	party_ip=10.203.1.1 platform_ip=10.203.1.2 srs_ip=10.203.2.1
	dataplane=${DATAPLANE:-auto}
else
	in_parties=() in_platform=() in_srs=()
	party_ip=127.0.0.1 platform_ip=127.0.0.1 srs_ip=""
	dataplane=userspace
fi

echo "demo: work directory $work"

# The callee: answers every call and plays 880 Hz until stopped.
"${in_parties[@]}" "$CTL" answer --listen "$party_ip:0" --tone 880 --json >"$work/callee.json" 2>"$work/callee.log" &
callee_pid=$!
pids+=("$callee_pid")
wait_for 10 "the callee" grep -q "listening on" "$work/callee.log"
callee=$(sed -n 's/.*listening on //p' "$work/callee.log")

srs_flag=()
if [ -n "$srs_ip" ]; then
	# The SRS in its own namespace: the built-in SRS as a separate process.
	"${in_srs[@]}" "$CTL" srs --listen "$srs_ip:5080" --dir "$work/recordings" >"$work/srs.log" 2>&1 &
	pids+=($!)
	srs_listening() { "${in_srs[@]}" ss -ltn "sport = :5080" | grep -q 5080; }
	wait_for 10 "the SRS" srs_listening
	srs_flag=(--srs "sip:srs@$srs_ip:5080")
fi

# The daemon: the embedded app, bridging to the callee, recording to the SRS
# (built in when no --srs is given).
"${in_platform[@]}" "$BIN/recforkd" --listen "$platform_ip:0" --media-ip "$platform_ip" --admin "$admin" \
	--recordings "$work/recordings" "${srs_flag[@]}" \
	--destination "sip:callee@$callee" --dataplane "$dataplane" --rtp-ports 31000-31999 \
	--log-level info 2>"$work/recforkd.log" &
pids+=($!)
wait_for 20 "recforkd's admin API" "$CTL" status --admin "$admin"
"$CTL" status --admin "$admin" --json >"$work/status.json"
sip=$(val sip "$work/status.json")
engine=$(val engine "$work/status.json")
srs=$(val srs "$work/status.json")
echo "demo: recforkd on sip:$sip, data plane $engine, SRS $srs"

# The calls: CALLS concurrent calls, 440 Hz each, DURATION seconds of media.
"${in_parties[@]}" "$CTL" call --ip "$party_ip" --to "sip:demo@$sip" --calls "$CALLS" --duration "${DURATION}s" --tone 440 \
	--telephone-event "$DTMF_CALLS" --json \
	>"$work/calls.json" 2>"$work/caller.log" &
caller_pid=$!
pids+=("$caller_pid")

active_streams() { [ "$("$CTL" recordings --admin "$admin" --json | grep -c '"mode": "active"')" -ge $((2 * CALLS)) ]; }
wait_for 20 "$CALLS recordings with both directions active" active_streams
sleep "$MUTE_AT"

"$CTL" recordings --admin "$admin" --json >"$work/recordings-before.json"
"$CTL" calls --admin "$admin" --paths >"$work/paths.txt"
conn=$(val connection_id "$work/recordings-before.json" | head -n 1)
echo "demo: muting the inbound direction of $conn for ${MUTE_FOR}s"
"$CTL" record mute "$conn" --direction inbound --admin "$admin" || fail "mute $conn"
sleep "$MUTE_FOR"
"$CTL" record unmute "$conn" --direction inbound --admin "$admin" || fail "unmute $conn"
"$CTL" recordings --admin "$admin" --json >"$work/recordings-during.json"

# Which files belong to the muted connection: the recording's Call-ID and
# each stream's label, looked up in the SRS's session.json files below.
awk '
	/"connection_id":/ { gsub(/[",]/, "", $2); conn = $2 }
	/"call_id":/       { gsub(/[",]/, "", $2); cid = $2 }
	/"direction":/     { gsub(/[",]/, "", $2); dir = $2 }
	/"label":/         { gsub(/[",]/, "", $2); print conn, cid, dir, $2 }
' "$work/recordings-during.json" >"$work/streams.txt"
muted_packets=$(awk -v c="$conn" '
	/"connection_id":/ { gsub(/[",]/, "", $2); conn = $2 }
	/"direction":/     { gsub(/[",]/, "", $2); dir = $2 }
	/"MutedPackets":/  { gsub(/[",]/, "", $2); if (conn == c && dir == "inbound") print $2 }
' "$work/recordings-during.json")
[ "${muted_packets:-0}" -gt 0 ] || fail "the data plane counted no muted packets for $conn"

caller_status=0
wait "$caller_pid" || caller_status=$?
[ "$caller_status" = 0 ] || fail "the caller reported a failed call: $(cat "$work/calls.json")"

no_calls() { "$CTL" calls --admin "$admin" --json | grep -q '^\[\]$'; }
wait_for 20 "every call to end" no_calls
no_recordings() { "$CTL" recordings --admin "$admin" --json | grep -q '^\[\]$'; }
wait_for 20 "every recording to end" no_recordings
"$CTL" stats --admin "$admin" --json >"$work/stats.json"
for k in Endpoints Joins Forks; do
	[ "$(val "$k" "$work/stats.json")" = 0 ] || fail "the data plane still holds $k: $(cat "$work/stats.json")"
done
copied=$(val CopiedPackets "$work/stats.json")
muted=$(val MutedPackets "$work/stats.json")

kill -TERM "$callee_pid"
wait "$callee_pid" || true

# What the parties heard: the caller the callee's tone, and back.
for hz in $(val heard_hz "$work/calls.json"); do
	awk -v h="$hz" 'BEGIN { exit !(h >= 860 && h <= 900) }' || fail "a caller heard ${hz} Hz, not the callee's 880 Hz"
done
for hz in $(val heard_hz "$work/callee.json"); do
	awk -v h="$hz" 'BEGIN { exit !(h >= 420 && h <= 460) }' || fail "the callee heard ${hz} Hz, not the caller's 440 Hz"
done

# The recordings.
shopt -s nullglob
summaries() { set -- "$work"/recordings/*/session.json; [ "$#" -ge "$CALLS" ]; }
wait_for 10 "the SRS's session summaries" summaries
wavs=("$work"/recordings/*/*.wav)
[ "${#wavs[@]}" = $((2 * CALLS)) ] || fail "want $((2 * CALLS)) WAV files, found ${#wavs[@]}"
"$CTL" wav --json "${wavs[@]}" >"$work/wav.json" || fail "unreadable WAV files"

summary="$work/summary.txt"
printf "%-12s %-9s %-6s %8s %8s %8s %9s %8s  %s\n" CONNECTION DIRECTION LABEL "SRS PKTS" SECONDS AUDIO "GAP" TONE FILE >"$summary"
problems=0
srs_total=0
while read -r c cid dir label; do
	# The SRS names sessions and files itself; session.json maps the
	# Call-ID and each stream label to its file.
	f=$(awk -v cid="$cid" -v label="$label" '
		/"CallID":/ { match($0, /"CallID": "[^"]*"/); mine = (substr($0, RSTART + 11, RLENGTH - 12) == cid) }
		/"Label":/  { match($0, /"Label": "[^"]*"/); want = mine && (substr($0, RSTART + 10, RLENGTH - 11) == label) }
		/"Path":/   { if (want) { match($0, /"Path": "[^"]*"/); print substr($0, RSTART + 9, RLENGTH - 10); exit } }
	' "$work"/recordings/*/session.json)
	line=$(awk -v f="$f" '
		/"file":/           { gsub(/[",]/, "", $2); cur = $2 }
		/"seconds":/        { gsub(/,/, "", $2); if (cur == f) s = $2 }
		/"active_seconds":/ { gsub(/,/, "", $2); if (cur == f) a = $2 }
		/"gap_seconds":/    { gsub(/,/, "", $2); if (cur == f) g = $2 }
		/"tone_hz":/        { gsub(/,/, "", $2); if (cur == f) t = $2 }
		END { if (s != "") print s, a, g, t }
	' "$work/wav.json")
	if [ -z "$line" ]; then
		echo "demo: no recording for $c $dir at $f" >&2
		problems=$((problems + 1))
		continue
	fi
	read -r secs audio gap tone <<<"$line"
	# RTP packets the SRS received on this stream (its session.json).
	pkts=$(awk -v l="$label" '
		/"Label":/   { gsub(/[",]/, "", $2); cur = $2 }
		/"Packets":/ { gsub(/,/, "", $2); if (cur == l) { print $2; exit } }
	' "${f%/*}/session.json" 2>/dev/null)
	srs_total=$((srs_total + ${pkts:-0}))
	printf "%-12s %-9s %-6s %8s %8.2f %8.2f %9.2f %6.0fHz  %s\n" "$c" "$dir" "$label" "${pkts:--}" "$secs" "$audio" "$gap" "$tone" "$f" >>"$summary"
	want=880
	[ "$dir" = inbound ] && want=440
	ok=$(awk -v a="$audio" -v g="$gap" -v t="$tone" -v w="$want" -v d="$DURATION" -v m="$MUTE_FOR" \
		-v muted="$([ "$c" = "$conn" ] && [ "$dir" = inbound ] && echo 1 || echo 0)" 'BEGIN {
		okTone = (t >= w - 20 && t <= w + 20)
		if (muted) okAudio = (a >= d - m - 2.5 && g >= m - 0.6 && g <= m + 1.5)
		else okAudio = (a >= d - 2.5 && g < 0.5)
		print (okTone && okAudio) ? "yes" : "no"
	}')
	if [ "$ok" != yes ]; then
		echo "demo: $c $dir ($f): audio ${audio}s, longest silence ${gap}s, tone ${tone} Hz — not as expected" >&2
		problems=$((problems + 1))
	fi
done <"$work/streams.txt"

echo
echo "demo: $CALLS calls bridged and recorded (data plane: $engine), inbound of $conn muted for ${MUTE_FOR}s"
cat "$summary"

# Which path each call's media took, from the table recforkd gave mid-call
# (CONNECTION MEDIA TO PATH WHY): the recorded connection is the caller's
# leg, joined to the callee's; "relay" rows are what a connection receives,
# sent out of TO.
echo
echo "demo: media paths mid-call (recforkctl calls --paths: relay = what a leg receives, sent out of TO; copies = to the SRS):"
cat "$work/paths.txt"
echo
tapped=0
for c in $(awk '{ print $1 }' "$work/streams.txt" | sort -u); do
	tap=$(awk -v t="dtmf-tap:$c" '$2 == "relay" && $3 == t { print t; exit }' "$work/paths.txt")
	[ -n "$tap" ] && tapped=$((tapped + 1))
	callee_leg=$(awk -v c="$c" '$1 == c && $2 == "relay" && $3 != c && $3 !~ /^dtmf-tap:/ { print $3; exit }' "$work/paths.txt")
	path_of() { awk -v c="$1" -v k="$2" -v to="$3" '$1 == c && $2 == k && $3 == to {
		why = ""; for (i = 5; i <= NF; i++) why = why (i > 5 ? " " : "") $i
		print $4 (why != "-" ? " (" why ")" : ""); exit }' "$work/paths.txt"; }
	up=$(path_of "$c" relay "$callee_leg")
	down=$(path_of "$callee_leg" relay "$c")
	cin=$(path_of "$c" copies inbound)
	cout=$(path_of "$c" copies outbound)
	echo "demo: $c: caller -> callee ${up:-unknown}; callee -> caller ${down:-unknown}; copies inbound ${cin:-unknown}, outbound ${cout:-unknown}"
	# What the engine must have done: the eBPF engine carries every call
	# in the kernel, a DTMF tap or not (only the tap's own relay, of the
	# event packets, is userspace); the userspace engine carries everything
	# in userspace.
	case "$engine" in
	ebpf)
		tap_path=kernel-free
		[ -n "$tap" ] && tap_path=$(path_of "$c" relay "$tap")
		[ "${up%% *}" = kernel ] && [ "${down%% *}" = kernel ] && [ "${cin%% *}" = kernel ] && [ "${cout%% *}" = kernel ] &&
			[ "${tap_path%% *}" != kernel ] ||
			{ echo "demo: $c did not take the paths the eBPF engine should give it (relays and copies in the kernel; a DTMF tap's relay in userspace)" >&2; problems=$((problems + 1)); }
		[ -n "$tap" ] && echo "demo: $c: DTMF tap ${tap_path}"
		;;
	userspace)
		for p in "$up" "$down" "$cin" "$cout"; do
			[ "${p%% *}" = userspace ] || { echo "demo: $c: a path other than userspace under the userspace engine: $p" >&2; problems=$((problems + 1)); }
		done
		;;
	esac
done
if [ "$tapped" != "$((DTMF_CALLS < CALLS ? DTMF_CALLS : CALLS))" ]; then
	echo "demo: $tapped calls have a DTMF tap, want $DTMF_CALLS (the calls offering telephone-event)" >&2
	problems=$((problems + 1))
fi

echo
echo "demo: packets copied to the SRS: $copied (the SRS received $srs_total); packets not copied while muted: $muted"
# The call's endpoint (and with it its forks) goes before the recording's
# BYE, so every copy should arrive; allow one per stream for a datagram still
# queued when the SRS closes the stream.
lost=$((copied - srs_total))
if [ "$lost" -lt 0 ] || [ "$lost" -gt $((2 * CALLS)) ]; then
	echo "demo: the SRS received $srs_total packets but the data plane copied $copied" >&2
	problems=$((problems + 1))
fi
[ "$problems" = 0 ] || fail "$problems recorded stream(s) not as expected"
echo "demo: PASS — every stream has its tone, the muted window is silent only where muted, nothing left in the data plane"
