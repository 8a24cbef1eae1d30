import sys

from avkit.cli import main

sys.exit(main())
