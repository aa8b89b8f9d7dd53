"""Running the service: settings, the composition root, the command line, logging, scripts."""
