"""Running the fleet: starting and watching processes (:mod:`~workers.fleet.processes`), the local fleet of
``mlc up`` (:mod:`~workers.fleet.local`) and the sample model it demonstrates with (:mod:`~workers.fleet.sample`)."""
