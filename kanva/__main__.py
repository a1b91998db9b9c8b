import sys

from kanva.cli import main

sys.exit(main())
