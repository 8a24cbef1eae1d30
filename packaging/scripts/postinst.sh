#!/bin/sh
# @PACKAGE@: after install. Serves as the Debian postinst ($1 = configure,
# $2 = the version replaced, empty on first install) and the RPM %post ($1 = number
# of installed instances). Only informs: never fails, never touches @PRODUCT@.
set -e
root="${DPKG_ROOT:-}"
first=no
case "${1:-}" in
    configure) [ -n "${2:-}" ] || first=yes ;;
    1) first=yes ;;
    *) ;;
esac
if [ "$first" = yes ]; then
    echo "@PACKAGE@: installed @PLUGIN_DIR@/@PLUGIN_ID@.so"
    if [ -e "$root@PRODUCT_MARKER@" ]; then
        echo "@PACKAGE@: to use it, open the @CONSOLE@."
    else
        echo "@PACKAGE@: @PRODUCT@ is not installed here (no @PRODUCT_MARKER@); once it is, open the @CONSOLE@."
    fi
else
    echo "@PACKAGE@: updated @PLUGIN_DIR@/@PLUGIN_ID@.so; @PRODUCT@ uses the new version after its antivirus service restarts."
fi
exit 0
