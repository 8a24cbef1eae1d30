#!/bin/sh
# @PACKAGE@: after removal. Serves as the Debian postrm ($1 = remove, purge, upgrade,
# abort-install, abort-upgrade, ...) and the RPM %postun ($1 = instances left: 0 on
# removal). Puts back the administrator's own @PLUGIN_ID@.so that preinst kept (see
# put_back: it works whatever dpkg or rpm already removed, and twice in a row); an
# upgrade keeps it where it is. Never fails: a failing postrm leaves the package
# half-removed, and every retry fails alike.
set -e
root="${DPKG_ROOT:-}"
@COMMON@
if by_dpkg; then
    case "${1:-}" in
        remove|purge|disappear) put_back_pairs $current $former ;;
        # A failed install or upgrade: only what this version's preinst kept (a
        # diversion of a file that is gone again), never the old version's diversion.
        abort-install|abort-upgrade)
            if diverted_here "${current%%=*}" && ! present "${current%%=*}"; then
                put_back_pairs $current
            fi ;;
        *) ;;
    esac
elif [ "${1:-}" = 0 ]; then
    put_back_pairs $current $former
fi
exit 0
