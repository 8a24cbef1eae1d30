#!/bin/sh
# @PACKAGE@: before install. Serves as the Debian preinst ($1 = install or upgrade)
# and the RPM %pre ($1 = number of instances once installed: 1 on first install).
# A plugin an administrator put at @PLUGIN_DIR@/@PLUGIN_ID@.so by hand (no package
# owns it) would be overwritten by ours and deleted with it: it is moved aside to
# @BACKUP@ (outside the plugin folder, where the product loads every avir_*.so)
# and put back by postrm. dpkg does it with a diversion, Debian's way. A file another
# package owns is never touched: dpkg and rpm refuse that conflict themselves.
# Upgrades find this package's own file: nothing to keep.
set -e
root="${DPKG_ROOT:-}"
file=@PLUGIN_DIR@/@PLUGIN_ID@.so
backup=@BACKUP@
[ -e "$root$file" ] || [ -L "$root$file" ] || exit 0
if [ -n "${DPKG_MAINTSCRIPT_PACKAGE:-}" ]; then
    [ "${1:-}" = install ] || exit 0
    # Listed by a package, or diverted already: not a file of the administrator's own.
    if dpkg-query -S "$file" >/dev/null 2>&1; then
        exit 0
    fi
    mkdir -p "$root${backup%/*}"
    dpkg-divert --quiet --package @PACKAGE@ --divert @BACKUP@ --rename --add @PLUGIN_DIR@/@PLUGIN_ID@.so
else
    [ "${1:-}" = 1 ] || exit 0
    if command -v rpm >/dev/null 2>&1 && rpm -qf "$file" >/dev/null 2>&1; then
        exit 0
    fi
    mkdir -p "${backup%/*}"
    mv -f "$file" "$backup"
fi
echo "@PACKAGE@: $file was not installed by a package: kept as $backup, put back when @PACKAGE@ is removed."
exit 0
