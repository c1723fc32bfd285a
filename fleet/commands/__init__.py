"""Fleet-wide commands: select hosts, run one op everywhere, render one table."""
