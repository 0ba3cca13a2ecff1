"""File edges: YAML specs, trace files.  Every problem becomes an HwsimError naming the file."""
