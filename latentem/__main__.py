import sys

from latentem.cli import main

sys.exit(main())
