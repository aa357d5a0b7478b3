import sys

from avatarcast.cli import main

sys.exit(main())
