"""``python -m junction.middleware.metrics <socket>``: the usage relay (relay.py), as ``junction
serve`` runs it beside its workers. Started as ``-m junction.middleware.metrics.relay`` instead, the
relay's module would run a second time beside the copy this package imports, and Python would say
so in a warning on every start."""

import sys

from junction.middleware.metrics.relay import main

if __name__ == "__main__":
    main(sys.argv[1])
