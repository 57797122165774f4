"""The benchmark suite: sweeps (``run``), reports (``report``) and the paper's reference values (``paper``)."""
