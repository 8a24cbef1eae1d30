#!/bin/sh
# @PACKAGE@: before removal. Serves as the Debian prerm ($1 = remove, upgrade, ...)
# and the RPM %preun ($1 = instances left: 0 on removal). Only informs: never fails,
# never touches @PRODUCT@ or its configuration.
set -e
case "${1:-}" in
    remove|0)
        echo "@PACKAGE@: removing @PLUGIN_DIR@/@PLUGIN_ID@.so; if @PRODUCT@ uses '@PLUGIN_ID@', select another antivirus first in the @CONSOLE_PLACE@ (Select antivirus...)."
        ;;
    *) ;;
esac
exit 0
