#!/bin/sh
# @PACKAGE@: after removal. Serves as the Debian postrm ($1 = remove, purge, upgrade,
# abort-install, ...) and the RPM %postun ($1 = instances left: 0 on removal). Puts
# back the administrator's own @PLUGIN_DIR@/@PLUGIN_ID@.so that preinst kept as
# @BACKUP@; nothing else (an upgrade keeps it where it is).
set -e
root="${DPKG_ROOT:-}"
file=@PLUGIN_DIR@/@PLUGIN_ID@.so
backup=@BACKUP@
if [ -n "${DPKG_MAINTSCRIPT_PACKAGE:-}" ]; then
    case "${1:-}" in
        remove|abort-install|disappear) ;;
        *) exit 0 ;;
    esac
    [ "$(dpkg-divert --listpackage "$file")" = @PACKAGE@ ] || exit 0
    dpkg-divert --quiet --package @PACKAGE@ --divert @BACKUP@ --rename --remove @PLUGIN_DIR@/@PLUGIN_ID@.so
else
    [ "${1:-}" = 0 ] || exit 0
    [ -e "$backup" ] || [ -L "$backup" ] || exit 0
    if [ -e "$file" ] || [ -L "$file" ]; then
        echo "@PACKAGE@: $file exists again: the file that was there before @PACKAGE@ stays in $backup." >&2
        exit 0
    fi
    mv -f "$backup" "$file"
fi
rmdir "$root${backup%/*}" 2>/dev/null && rmdir "$root${backup%/*/*}" 2>/dev/null || :
echo "@PACKAGE@: put back $file, the file that was there before @PACKAGE@ was installed."
exit 0
