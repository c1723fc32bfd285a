"""`fleet check`: health checks across hosts for cron and monitoring (Nagios exit codes, Prometheus textfile).

model.py (rows, states, the worst state), config.py (what each host is checked for: its compose services, the
inventory's ``fleet_checks`` probes and ``fleet_check_thresholds``), run.py (one connection per host, the
``check`` op, a global deadline), formats.py (table, JSON, Nagios, Prometheus).
"""
