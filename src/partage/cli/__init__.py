"""The `partage` command line: operators' tools, the server and the demo territory."""
