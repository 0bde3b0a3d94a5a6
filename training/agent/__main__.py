import sys

from training.agent.main import main

sys.exit(main())
