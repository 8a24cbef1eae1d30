#!/bin/sh
# The smoke test inside the VM, PID 1. Executes /smoke/plan, written by the host, one
# step a line, and prints what happened as lines the host parses:
#   AVSMOKE <check> PASS|FAIL <detail>   a check decided here (an exit code, a file)
#   AVSMOKE <check> OUT|ERR <line>       a scan's avhost output, judged by the host
#   AVSMOKE <check> SCAN rc=<n>          end of a scan (or of a reload: N rounds of one)
# before each step "AVSMOKE-RUN <check>",# at the end "AVSMOKE-END", then it powers off. Nothing here knows the expected verdicts.
S=/smoke
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C LC_ALL=C HOME=/root TMPDIR=/tmp
OUT=/tmp/avsmoke.out
exec </dev/null

say() { # check status detail...
    id=$1; st=$2; shift 2
    printf 'AVSMOKE %s %s %s\n' "$id" "$st" "$(printf '%s' "$*" | tr '\n\r\t' '   ' | cut -c1-400)"
}
verdict() { # check rc detail...: PASS when rc is 0
    if [ "$2" -eq 0 ]; then say "$1" PASS "$3"; else say "$1" FAIL "exit $2: $3"; fi
}
lastlines() { tail -n "${1:-3}" "$OUT" 2>/dev/null | tr '\n' ' '; }
each_line() { # check tag max-lines < stream
    n=0
    while [ $n -lt "$3" ] && IFS= read -r l; do printf 'AVSMOKE %s %s %s\n' "$1" "$2" "$l"; n=$((n+1)); done
}
poweroff_now() { sync; echo o > /proc/sysrq-trigger; sleep 60; }

setup() {
    mount -t tmpfs -o mode=1777 tmpfs /tmp
    mountpoint -q /run || mount -t tmpfs tmpfs /run
    mkdir -p /run/clamav /run/c-icap /run/lock
    ip link set lo up
    say guest/boot PASS "$(uname -r) $(uname -m), $(dpkg --print-architecture) userland"
}

start_clamd() { # check
    clamd --config-file=$S/clamd.conf >"$OUT" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then clamdscan --config-file=$S/clamd.conf --ping 60:1 >>"$OUT" 2>&1; rc=$?; fi
    verdict "$1" $rc "$(lastlines 2) $(tail -n 2 /run/clamav/clamd.log 2>/dev/null | tr '\n' ' ')"
}

clamd_scan() { # check file: clamdscan exits 1 when it finds a virus
    clamdscan --config-file=$S/clamd.conf --no-summary "$2" >"$OUT" 2>&1
    rc=$?
    if [ $rc -eq 1 ]; then say "$1" PASS "$(lastlines 1)"; else say "$1" FAIL "exit $rc, expected 1 (found): $(lastlines 2)"; fi
}

icap_client() { # port service [c-icap-client args...]: its report goes to $OUT
    port=$1; service=$2; shift 2
    timeout 30 c-icap-client -i 127.0.0.1 -p "$port" -s "$service" "$@" >"$OUT" 2>&1
}

start_cicap() { # check port service: c-icap forks into the background; wait for OPTIONS
    c-icap -f $S/c-icap.conf >"$OUT" 2>&1
    rc=$?
    n=0
    while [ $rc -eq 0 ] && [ $n -lt 60 ]; do
        icap_client "$2" "$3" -method OPTIONS
        grep -q 'ICAP/1.0 200' "$OUT" && break
        n=$((n+1)); sleep 1
    done
    if [ $rc -eq 0 ] && ! grep -q 'ICAP/1.0 200' "$OUT"; then rc=1; fi
    verdict "$1" $rc "$(grep -m1 -e 'Service:' -e 'ISTag' "$OUT") $(lastlines 2) $(tail -n 2 /run/c-icap/server.log 2>/dev/null | tr '\n' ' ')"
}

cicap_scan() { # check port service file: virus_scan answers with X-Infection-Found
    icap_client "$2" "$3" -f "$4" -resp "http://avsmoke/$(basename "$4")" -v -o /tmp/avsmoke.icap-body
    rc=$?
    found=$(grep -m1 'X-Infection-Found' "$OUT" | tr -d '\t')
    if [ -n "$found" ]; then say "$1" PASS "$found"; else say "$1" FAIL "exit $rc, no X-Infection-Found: $(lastlines 4)"; fi
}

install_pkg() { # check deb|rpm file
    case $2 in
        deb) dpkg -i "$3" >"$OUT" 2>&1 ;;
        rpm) rpm -i --nodeps "$3" >"$OUT.rpm" 2>&1 ;;
    esac
    rc=$?
    # Debian's rpm warns on every call that alien is the Debian way: noise, not a result
    [ "$2" = rpm ] && grep -v -e 'use Alien instead' -e 'assuming you know what you are doing' "$OUT.rpm" >"$OUT"
    verdict "$1" $rc "$(lastlines 5)"
}

guest_arch() { # check deb-arch: the VM booted is of the architecture under test
    got=$(dpkg --print-architecture)
    if [ "$got" = "$2" ]; then say "$1" PASS "$got, $(uname -m)"; else say "$1" FAIL "dpkg architecture $got, expected $2"; fi
}

present() { # check path
    if [ -f "$2" ]; then say "$1" PASS "$2"; else say "$1" FAIL "$2 is missing"; fi
}

scan() { # check plugin file [avhost args...], options in $SCAN_OPTS: avhost scan PLUGIN FILE -o Name=Value...
    id=$1; shift
    for opt in $SCAN_OPTS; do set -- "$@" -o "$opt"; done
    $S/bin/avhost scan "$@" >"$OUT" 2>/tmp/avsmoke.err
    rc=$?
    each_line "$id" OUT 400 <"$OUT"
    each_line "$id" ERR 20 </tmp/avsmoke.err
    say "$id" SCAN "rc=$rc"
}

admin_check() { # check plugin, options in $SCAN_OPTS: kerio-avir-check -o Name=Value... PLUGIN
    id=$1; plugin=$2
    set --
    for opt in $SCAN_OPTS; do set -- "$@" -o "$opt"; done
    kerio-avir-check "$@" "$plugin" >"$OUT" 2>&1
    rc=$?
    each_line "$id" OUT 60 <"$OUT"
    say "$id" SCAN "rc=$rc"
}

remove_pkg() { # check deb|rpm name: dpkg -r then --purge, or rpm -e
    case $2 in
        deb) dpkg -L "$3" >/tmp/files."$3" 2>/dev/null
             dpkg -r "$3" >"$OUT" 2>&1 && dpkg --purge "$3" >>"$OUT" 2>&1 ;;
        rpm) rpm -ql "$3" >/tmp/files."$3" 2>/dev/null
             rpm -e --nodeps "$3" >"$OUT.rpm" 2>&1 ;;
    esac
    rc=$?
    [ "$2" = rpm ] && grep -v -e 'use Alien instead' -e 'assuming you know what you are doing' "$OUT.rpm" >"$OUT"
    verdict "$1" $rc "$(lastlines 3)"
}

left_over() { # check deb|rpm name: no trace of the package in its database, its files, /opt/kerio
    left=""
    case $2 in
        deb) st=$(dpkg-query -W -f='${db:Status-Status}' "$3" 2>/dev/null)
             [ -z "$st" ] || [ "$st" = not-installed ] || left="dpkg status $st;" ;;
        rpm) rpm -q "$3" >/dev/null 2>&1 && left="still in the rpm database;" ;;
    esac
    while IFS= read -r f; do
        case $f in /opt/kerio*|/etc/*|/usr/*|/var/*) ;; *) continue ;; esac
        if [ -e "$f" ] && [ ! -d "$f" ]; then left="$left $f"; fi
    done </tmp/files."$3"
    [ -d /opt/kerio ] && left="$left $(find /opt/kerio -mindepth 1 | head -n 10 | tr '\n' ' ')"
    if [ -z "$(echo $left)" ]; then say "$1" PASS "nothing left"; else say "$1" FAIL "left: $left"; fi
}

set -f  # plan fields are words, never patterns
setup
while read -r step id a b c <&3; do
    echo "AVSMOKE-RUN $id"  # so that a hang names its check
    case $step in
        ''|'#'*) ;;
        arch) guest_arch "$id" "$a" ;;
        clamd) start_clamd "$id" ;;
        clamdscan) clamd_scan "$id" "$a" ;;
        cicap) start_cicap "$id" "$a" "$b" ;;
        cicap-eicar) cicap_scan "$id" "$a" "$b" "$c" ;;
        install) install_pkg "$id" "$a" "$b" ;;
        present) present "$id" "$a" ;;
        scan) SCAN_OPTS=$c; scan "$id" "$a" "$b" ;;
        reload) set -- $c; rounds=$1; shift; SCAN_OPTS="$*"; scan "$id" "$a" "$b" --reloads "$rounds" ;;
        admincheck) SCAN_OPTS="$b $c"; admin_check "$id" "$a" ;;
        remove) remove_pkg "$id" "$a" "$b" ;;
        clean) left_over "$id" "$a" "$b" ;;
        *) say "$id" FAIL "unknown plan step $step" ;;
    esac
done 3<$S/plan
echo AVSMOKE-END
poweroff_now
