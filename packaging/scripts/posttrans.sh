#!/bin/sh
# @PACKAGE@: RPM %posttrans (rpm only: dpkg's postinst does this), after the whole
# transaction, when an upgrade has removed the old version's files: a version that
# installed into an earlier folder kept the administrator's file from there, which
# goes back where it was. Never fails.
set -e
root=""
@COMMON@
put_back_pairs $former
exit 0
