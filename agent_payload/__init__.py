"""fleet's payload: a daemonless container engine shipped to each host as one zipapp (stdlib only)."""
