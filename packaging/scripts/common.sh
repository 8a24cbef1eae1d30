# --- common to the maintainer scripts (packaging/scripts/common.sh, pasted in where a script says COMMON) ---
# Where an administrator's own @PLUGIN_ID@.so is kept while @PACKAGE@ is installed:
# "path=backup" pairs, the plugin folder of this version first, then the folders of
# earlier versions (an upgrade across a folder move puts back what they kept).
current=@PLUGIN_DIR@/@PLUGIN_ID@.so=@BACKUP@
former="@FORMER_PAIRS@"
base=@ADMIN_BACKUP_DIR@

say() { echo "@PACKAGE@: $*"; }
warn() { echo "@PACKAGE@: $*" >&2; }
present() { [ -e "$root$1" ] || [ -L "$root$1" ]; }
by_dpkg() { [ -n "${DPKG_MAINTSCRIPT_PACKAGE:-}" ]; }
diverted_here() { [ "$(dpkg-divert --listpackage "$1")" = @PACKAGE@ ]; }

# The folders from $base down to the folder of backup $1, one a line.
backup_folders() {
    rel=${1#"${base%/*}"/}
    d=${base%/*}
    old_ifs=$IFS
    IFS=/
    set -f
    for part in ${rel%/*}; do
        d="$d/$part"
        echo "$d"
    done
    set +f
    IFS=$old_ifs
}

# Creates the folders of backup $1 without ever following a symbolic link (mkdir does
# not follow one at the name it creates): a link planted there would send the
# administrator's file wherever it points.
make_backup_folders() {
    for d in $(backup_folders "$1"); do
        mkdir "$root$d" 2>/dev/null || :
        if [ -L "$root$d" ] || [ ! -d "$root$d" ]; then
            warn "$d is not a folder (a symbolic link or another kind of file): not keeping the administrator's file there. Remove $d (the package creates the folder) and install again."
            return 1
        fi
    done
}

# Whether the folders of backup $1 are real folders, not symbolic links.
backup_folders_safe() {
    for d in $(backup_folders "$1"); do
        if [ -L "$root$d" ]; then
            warn "$d is a symbolic link: not taking a plugin from where it points."
            return 1
        fi
    done
}

# Removes the emptied folders of backup $1, deepest first.
tidy_backup_folders() {
    deepest_first=""
    for d in $(backup_folders "$1"); do
        deepest_first="$d $deepest_first"
    done
    for d in $deepest_first; do
        rmdir "$root$d" 2>/dev/null || return 0
    done
}

# Puts the administrator's file kept as $2 back at $1, whatever is left of the
# diversion, the backup and the plugin folder (dpkg or rpm may have removed the
# emptied folder already): every step checks first, so a second run does nothing.
put_back() {
    file=$1 backup=$2
    if by_dpkg && diverted_here "$file"; then
        backup=$(dpkg-divert --truename "$file")
        safe=yes
        backup_folders_safe "$backup" || safe=no
        if [ $safe = yes ] && present "$backup" && ! present "$file"; then
            mkdir -p "$root${file%/*}"
            dpkg-divert --quiet --package @PACKAGE@ --rename --remove "$file"
            say "put back $file, the file that was there before @PACKAGE@ was installed."
            tidy_backup_folders "$backup"
            return 0
        fi
        # Nothing to rename (kept file gone), or it cannot go back: only the record goes.
        dpkg-divert --quiet --package @PACKAGE@ --remove "$file"
        [ $safe = yes ] || return 0
    elif ! backup_folders_safe "$backup"; then
        return 0
    fi
    if ! present "$backup"; then
        tidy_backup_folders "$backup"
        return 0
    fi
    if present "$file"; then
        warn "$file exists again: the file that was there before @PACKAGE@ stays in $backup."
        return 0
    fi
    mkdir -p "$root${file%/*}"
    mv -f "$root$backup" "$root$file"
    say "put back $file, the file that was there before @PACKAGE@ was installed."
    tidy_backup_folders "$backup"
}

# put_back for each "path=backup" pair given.
put_back_pairs() {
    for pair in "$@"; do
        put_back "${pair%%=*}" "${pair#*=}"
    done
}
# --- end of common ---
