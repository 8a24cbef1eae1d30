"""Runs zig's <tool> (cc, c++) with ARGS for the wrappers beside it.

A link (no -c/-S/-E) runs from the ziglang package folder, with its relative
paths made absolute. zig builds its runtime (libc++, libc++abi, libunwind,
compiler-rt, glibc's start files) at the first link that needs it, in the
folder it runs in, and caches it: the source paths it records in the debug info
(also inside strings such as "(lambda at .../string:2716:46)", which no tool
after the link can rewrite) and the key of libunwind's cache entry depend on
that folder. From the package folder zig names its sources "lib/...", the same
for every clone, venv and build folder.

The compiler records that folder (DW_AT_comp_dir) as $PWD says when $PWD is the
same directory, so PWD is COMPILATION_DIR, one string for every clone. Staging
renames it to zig's canonical source folder (avkit/build/stage.py); debugedit
can only pad, not grow, the name in an assembler file's debug info, so it is
longer than any canonical name.
"""

import os
import shlex
import sys
from pathlib import Path

import ziglang

PACKAGE = Path(ziglang.__file__).resolve().parent
#: the current directory by another name (Linux), made long by naming "/" thrice over:
#: debugedit would drop "/./" padding, not a symbolic link's name
COMPILATION_DIR = "/proc/self/root" * 3 + "/proc/self/cwd"
#: what never links (-v does: CMake's compiler check links with it, building crt1.o)
COMPILE_ONLY = {"-c", "-S", "-E", "-M", "-MM", "--version", "-###"}
#: options whose next argument is a path
PATH_VALUED = {"-o", "-MF", "-Xlinker"}


def expand_response_files(args):
    out = []
    for a in args:
        if a.startswith("@") and os.path.isfile(a[1:]):
            out.extend(shlex.split(Path(a[1:]).read_text()))
        else:
            out.append(a)
    return out


def absolute(arg: str) -> str:
    return arg if os.path.isabs(arg) else os.path.abspath(arg)


def for_package_folder(args):
    """The same arguments, correct when run from the package folder."""
    out, previous = [], ""
    for a in args:
        if previous in PATH_VALUED and previous != "-Xlinker":
            a = absolute(a)
        elif previous == "-Xlinker" and not a.startswith("-") and os.path.exists(a):
            a = absolute(a)
        elif a.startswith("-L") and len(a) > 2:
            a = "-L" + absolute(a[2:])
        elif not a.startswith("-") and os.path.exists(a):
            a = absolute(a)
        out.append(a)
        previous = a if a.startswith("-") else ""
    return out


def main(tool, *args):
    cmd = [str(PACKAGE / "zig"), tool]  # what `python -m ziglang` runs, one Python start fewer
    if tool in ("cc", "c++") and not COMPILE_ONLY.intersection(args):
        args = for_package_folder(expand_response_files(args))
        if "-o" not in args:  # zig's default output, a.out, belongs where the caller is
            args += ["-o", os.path.abspath("a.out")]
        os.chdir(PACKAGE)
        os.environ["PWD"] = COMPILATION_DIR
    os.execv(cmd[0], cmd + list(args))


if __name__ == "__main__":
    main(*sys.argv[1:])
