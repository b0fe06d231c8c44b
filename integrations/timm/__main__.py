"""`python -m augshift.integrations.timm TRAIN_PY ...` (for `torchrun -m` and `accelerate launch -m`)."""
import sys

from .launcher import main

sys.exit(main())
