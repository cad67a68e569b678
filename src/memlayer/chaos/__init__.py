"""memlayer.chaos — the chaos run (``memlayer chaos``) and the parts it owns.

Several ``memlayer serve`` processes on one database of their own, each reaching Redis
(and Postgres) through a TCP proxy the run owns, one redis-server it started; readers and
writers over many users; faults on a schedule; every read checked against the log of
acknowledged writes. Module map: ``run`` (the command), ``rig`` (the processes, proxies,
database and Redis), ``workload`` (readers and writers over the API), ``faults``,
``history`` (the acknowledged writes and the staleness check), ``report`` (progress, the
summary, the consistency checker's figures). ``proxy``, ``redis_server``, ``server`` and
``database`` are also the test suite's launchers (``tests/support`` re-exports them).
"""
