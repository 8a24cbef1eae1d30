#!/bin/sh
# @PACKAGE@: before install. Serves as the Debian preinst ($1 = install, upgrade or
# abort-upgrade) and the RPM %pre ($1 = number of instances once installed: 1 on first
# install, 2 on upgrade). A plugin an administrator put at @PLUGIN_DIR@/@PLUGIN_ID@.so
# by hand (no package owns it) would be overwritten by ours and deleted with it: it is
# moved aside to @BACKUP@ (outside the plugin folder, where the product loads every
# avir_*.so) and put back by postrm. dpkg does it with a diversion, Debian's way. A file
# another package owns is never touched: dpkg and rpm refuse that conflict themselves.
# An upgrade finds this package's own file there, unless the folder moved (then the
# new folder is checked like a first install).
set -e
root="${DPKG_ROOT:-}"
@COMMON@
file=${current%%=*}
backup=${current#*=}

# Whether a package lists the file (or diverted it already): not the administrator's.
packaged() {
    if by_dpkg; then
        dpkg-query -S "$file" >/dev/null 2>&1
    elif command -v rpm >/dev/null 2>&1; then
        rpm -qf "$file" >/dev/null 2>&1
    else
        # No rpm to ask (a bare chroot): on an upgrade the file is this package's own.
        [ "${1:-}" != 1 ]
    fi
}

if by_dpkg; then
    case "${1:-}" in
        install|upgrade) ;;
        *) exit 0 ;;
    esac
fi
present "$file" || exit 0
packaged "${1:-}" && exit 0
if present "$backup"; then
    warn "$file was not installed by a package, and $backup, where it would be kept, holds an earlier file already: move one of them elsewhere and install again."
    exit 1
fi
make_backup_folders "$backup" || exit 1
if by_dpkg; then
    dpkg-divert --quiet --package @PACKAGE@ --divert "$backup" --rename --add "$file"
else
    mv -f "$root$file" "$root$backup"
fi
say "$file was not installed by a package: kept as $backup, put back when @PACKAGE@ is removed."
exit 0
