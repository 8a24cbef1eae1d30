"""Temporary work folders of the jobs: the one place that makes them, and removes them.

    from avkit.workdir import Scratch

    with Scratch("avkit-soak-", keep=args.keep, drop_when_kept=["files"]) as scratch:
        work = scratch.path                      # /tmp/avkit-soak-XXXX
        ...
        if not good:
            scratch.keep_because("the soak failed")

At the end the folder is removed, unless it was asked for (keep=True, the commands'
--keep), the job raised, or the job called keep_because(); a kept folder is named on
stderr with the reason. `drop_when_kept` lists subfolders too big to be worth keeping
(generated inputs: the benchmark's 400 MB of files), removed even from a kept folder.
An interrupted job (Ctrl-C) removes its folder: nothing went wrong to look at.
"""

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def new_folder(prefix: str) -> Path:
    """A fresh folder under the system's temporary folder; the caller removes it
    (prefer Scratch, which does)."""
    return Path(tempfile.mkdtemp(prefix=prefix))


class Scratch:
    def __init__(self, prefix: str, keep: bool = False, drop_when_kept=(), log=_say):
        self.prefix = prefix
        self.keep = keep
        self.drop_when_kept = list(drop_when_kept)
        self.log = log
        self.path: Path = None
        self.reason: str = None

    def keep_because(self, reason: str) -> None:
        """Keep the folder at the end (the job failed; what is in it explains why)."""
        self.reason = self.reason or reason

    def __enter__(self) -> "Scratch":
        self.path = new_folder(self.prefix)
        return self

    def __exit__(self, exc_type, exc, tb) -> Literal[False]:
        if exc_type is not None and not issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            first = (str(exc).splitlines() or [""])[0]
            self.keep_because(f"the job failed ({exc_type.__name__}: {first})")
        if self.keep and not self.reason:
            self.log(
                f"kept {self.path} (asked for with --keep); remove it with: rm -rf {self.path}"
            )
        elif self.reason:
            dropped = [d for d in self.drop_when_kept if (self.path / d).exists()]
            for d in dropped:
                shutil.rmtree(self.path / d, ignore_errors=True)
            note = f" ({', '.join(dropped)} removed: regenerated on every run)" if dropped else ""
            self.log(
                f"kept {self.path}{note} because {self.reason}; remove it with: rm -rf {self.path}"
            )
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False
