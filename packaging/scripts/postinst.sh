#!/bin/sh
# @PACKAGE@: after install. Serves as the Debian postinst ($1 = configure, $2 = the
# version replaced, empty on first install) and the RPM %post ($1 = number of
# installed instances). Never fails, never touches @PRODUCT@. dpkg: an upgrade from a
# version that installed into an earlier folder puts back there the administrator's
# file that version kept (dpkg has removed the old plugin file by now, but not rpm,
# which does it in %posttrans).
set -e
root="${DPKG_ROOT:-}"
@COMMON@
first=no
case "${1:-}" in
    configure) [ -n "${2:-}" ] || first=yes ;;
    1) first=yes ;;
    *) ;;
esac
if by_dpkg && [ "${1:-}" = configure ]; then
    put_back_pairs $former
fi

# "01" (32-bit) or "02" (64-bit): the class byte of an ELF file $1, nothing otherwise.
elf_class() {
    set -- $(od -An -tx1 -N5 "$1" 2>/dev/null) ""
    if [ "${1:-}${2:-}${3:-}${4:-}" = 7f454c46 ]; then
        echo "$5"
    fi
}

# The product's avserver loads the plugin: a program of the other ELF class cannot.
check_product_class() {
    for bin in @PRODUCT_BINARIES@; do
        [ -f "$root$bin" ] || continue
        class=$(elf_class "$root$bin")
        [ -n "$class" ] || continue
        if [ "$class" != @ELF_CLASS@ ]; then
            if by_dpkg; then other="apt-get install @PACKAGE@:@OTHER_DEB_ARCH@"; else other="yum install @PACKAGE@.@OTHER_RPM_ARCH@"; fi
            warn "WARNING: $bin is a @OTHER_BITS@-bit program and this package's plugin is @BITS@-bit (@DEB_ARCH@/@RPM_ARCH@): @PRODUCT@ cannot load it. Install the @OTHER_BITS@-bit package instead ($other, the @OTHER_DEB_ARCH@ .deb or @OTHER_RPM_ARCH@ .rpm) and remove this one."
        fi
        return 0
    done
}

if [ "$first" = yes ]; then
    say "installed @PLUGIN_DIR@/@PLUGIN_ID@.so"
    if [ -e "$root@PRODUCT_MARKER@" ]; then
        say "to use it, open the @CONSOLE@."
    else
        say "@PRODUCT@ is not installed here (no @PRODUCT_MARKER@); once it is, open the @CONSOLE@."
    fi
else
    say "updated @PLUGIN_DIR@/@PLUGIN_ID@.so; @PRODUCT@ uses the new version after its antivirus service restarts."
fi
check_product_class
exit 0
