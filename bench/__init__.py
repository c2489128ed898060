"""`make bench`: the gateway's overhead, measured against the simulator in one run."""
