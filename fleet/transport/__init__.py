"""SSH transport: connections, the payload zipapp, and the one remote-call choke point."""
